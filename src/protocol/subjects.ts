/**
 * Every NATS subject dMCP uses is built here, and nowhere else.
 *
 * Tokens (service names, instance ids, topic segments) are validated: a dot, a wildcard or white space
 * inside a token would silently change which subscribers receive a message.
 */
import { isPriorityLane, type PriorityLane } from "./delivery.js";

export const SUBJECT_ROOT = "dmcp.v1";

const TOKEN = /^[A-Za-z0-9_-]{1,128}$/;
/** A context topic: 1-16 dot-separated tokens. */
export const TOPIC_PATTERN = /^[A-Za-z0-9_-]{1,128}(\.[A-Za-z0-9_-]{1,128}){0,15}$/;
const TOPIC = TOPIC_PATTERN;

export function isValidTopic(topic: string): boolean {
  return TOPIC.test(topic);
}

export class InvalidSubjectTokenError extends Error {
  readonly code = "INVALID_SUBJECT_TOKEN";
  constructor(kind: string, value: string) {
    super(`invalid ${kind} ${JSON.stringify(value)}: use 1-128 characters from A-Z a-z 0-9 _ -`);
    this.name = "InvalidSubjectTokenError";
  }
}

export function isValidToken(value: string): boolean {
  return TOKEN.test(value);
}

export function assertToken(kind: string, value: string): string {
  if (!TOKEN.test(value)) throw new InvalidSubjectTokenError(kind, value);
  return value;
}

function assertTopic(topic: string): string {
  if (!TOPIC.test(topic)) {
    throw new InvalidSubjectTokenError("topic", topic);
  }
  return topic;
}

export const subjects = {
  /** Requests for a service; every replica subscribes with the service's queue group. */
  request: (service: string) => `${SUBJECT_ROOT}.req.${assertToken("service", service)}`,
  /** The queue group name shared by replicas of a service. */
  queueGroup: (service: string) => `dmcp-${assertToken("service", service)}`,
  /** Requests addressed to one executor instance (session pinning, cancellation). */
  instanceRequest: (service: string, instance: string) => `${SUBJECT_ROOT}.inst.${assertToken("service", service)}.${assertToken("instance", instance)}.req`,
  /**
   * Server-to-client traffic for the MCP client sessions one gateway instance holds: executors send
   * the upstream's requests (sampling, elicitation, roots) and session notifications (logging,
   * resources/updated) here.
   */
  gatewaySession: (gateway: string) => `${SUBJECT_ROOT}.gw.${assertToken("gateway", gateway)}.session`,
  /** A client's answers to a gateway's server-to-client requests that reached another gateway (PROTOCOL.md §19.2). */
  gatewayAnswer: (gateway: string) => `${SUBJECT_ROOT}.gw.${assertToken("gateway", gateway)}.answer`,
  /**
   * A client's cancellation of a call that reached a gateway which does not hold the call, for the
   * gateway that does (it sent the call, or looks for its answer: PROTOCOL.md §19.4). Every gateway subscribes.
   */
  gatewayCancel: `${SUBJECT_ROOT}.gw.cancel`,
  /** The SSE events of one stream of one HTTP session, kept in DMCP_SESSION_EVENTS (PROTOCOL.md §19.3). */
  sessionEvents: (session: string, stream: string) => `${SUBJECT_ROOT}.sse.${assertToken("session", session)}.${assertToken("stream", stream)}`,
  /** Every session's SSE events (the stream's subjects). */
  sessionEventsAll: () => `${SUBJECT_ROOT}.sse.>`,
  /**
   * Lookups of a direct call's answer by a gateway that did not send the call (the one that did died,
   * PROTOCOL.md §19.4). Every instance of the service subscribes, without a queue group.
   */
  recover: (service: string) => `${SUBJECT_ROOT}.recover.${assertToken("service", service)}`,
  /** What each gateway let through per client, for the rate limits all gateways share (PROTOCOL.md §19.1). */
  rateSpent: `${SUBJECT_ROOT}.rate.spent`,
  /** Cancellations of calls to a service; every instance subscribes (no queue group). */
  cancel: (service: string) => `${SUBJECT_ROOT}.cancel.${assertToken("service", service)}`,
  /** Context updates of a topic (topics may have dot-separated segments). */
  context: (topic: string) => `${SUBJECT_ROOT}.ctx.${assertTopic(topic)}`,
  contextAll: () => `${SUBJECT_ROOT}.ctx.>`,
  /** Context subjects matching a topic pattern with NATS wildcards (`*` one token, `>` the rest). */
  contextPattern: (pattern: string) => {
    if (!/^([A-Za-z0-9_-]{1,128}|\*)(\.([A-Za-z0-9_-]{1,128}|\*))*(\.>)?$|^>$/.test(pattern)) throw new InvalidSubjectTokenError("topic pattern", pattern);
    return `${SUBJECT_ROOT}.ctx.${pattern}`;
  },
  /** Liveness of one instance of a service. */
  heartbeat: (service: string, instance: string) => `${SUBJECT_ROOT}.hb.${assertToken("service", service)}.${assertToken("instance", instance)}`,
  heartbeatAll: () => `${SUBJECT_ROOT}.hb.>`,
  /** Error notifications raised by a component (reported, not answered). */
  errors: (sender: string) => `${SUBJECT_ROOT}.err.${assertToken("sender", sender)}`,
  errorsAll: () => `${SUBJECT_ROOT}.err.>`,
  /** Durable requests for a service, one subject per priority lane, kept in the work stream. */
  work: (service: string, lane: PriorityLane) => `${SUBJECT_ROOT}.work.${assertToken("service", service)}.${assertLane(lane)}`,
  workAll: () => `${SUBJECT_ROOT}.work.>`,
  /** Durable requests given up after their last attempt, kept in the dead-letter stream. */
  deadLetter: (service: string) => `${SUBJECT_ROOT}.dead.${assertToken("service", service)}`,
  deadLetterAll: () => `${SUBJECT_ROOT}.dead.>`,
  /** The server's advisory when a message of the work stream has used up its delivery attempts. */
  maxDeliveriesAdvisory: () => `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${WORK_STREAM}.*`,
  /** The server's advisory when the work stream has a new leader (after a server of its replicas was lost). */
  workLeaderElected: () => `$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.${WORK_STREAM}`,
  /** The server's advisory when a service's lane consumer has a new leader. */
  laneLeaderElected: (service: string, lane: PriorityLane) => `$JS.EVENT.ADVISORY.CONSUMER.LEADER_ELECTED.${WORK_STREAM}.${workConsumer(service, lane)}`,
  /** Purge notices of the gateway cache: every gateway drops what one names from its local cache. */
  cachePurge: () => `${SUBJECT_ROOT}.cache.purge`,
} as const;

/** Parses `dmcp.v1.hb.<service>.<instance>` back into its tokens. */
export function parseHeartbeatSubject(subject: string): { service: string; instance: string } | undefined {
  const parts = subject.split(".");
  if (parts.length !== 5 || `${parts[0]}.${parts[1]}` !== SUBJECT_ROOT || parts[2] !== "hb") return undefined;
  const [service, instance] = [parts[3]!, parts[4]!];
  // Anyone can publish here; a token we could not build a subject from must not get further.
  if (!TOKEN.test(service) || !TOKEN.test(instance)) return undefined;
  return { service, instance };
}

/** The topic of a context subject `dmcp.v1.ctx.<topic>`. */
export function topicOfSubject(subject: string): string | undefined {
  const prefix = `${SUBJECT_ROOT}.ctx.`;
  if (!subject.startsWith(prefix)) return undefined;
  const topic = subject.slice(prefix.length);
  return TOPIC.test(topic) ? topic : undefined;
}

/** The JetStream stream keeping context topics for replay. */
export const CONTEXT_STREAM = "DMCP_CONTEXT";

/** The MCP resource URI of a context topic. */
export const CONTEXT_URI_PREFIX = "dmcp://context/";
export const contextUri = (topic: string) => `${CONTEXT_URI_PREFIX}${assertTopic(topic)}`;
export function topicOfUri(uri: string): string | undefined {
  if (!uri.startsWith(CONTEXT_URI_PREFIX)) return undefined;
  const topic = uri.slice(CONTEXT_URI_PREFIX.length);
  return TOPIC.test(topic) ? topic : undefined;
}

/** The JetStream KV bucket holding the live registry of services. */
export const REGISTRY_BUCKET = "dmcp_registry";

/** KV key of one instance's announcement. */
export const registryKey = (service: string, instance: string) => `${assertToken("service", service)}.${assertToken("instance", instance)}`;

export function parseRegistryKey(key: string): { service: string; instance: string } | undefined {
  const parts = key.split(".");
  if (parts.length !== 2 || !TOKEN.test(parts[0]!) || !TOKEN.test(parts[1]!)) return undefined;
  return { service: parts[0]!, instance: parts[1]! };
}

/** The JetStream work-queue stream holding durable requests until an executor has answered them. */
export const WORK_STREAM = "DMCP_WORK";
/** The stream keeping durable requests that failed on every attempt, with the reason. */
export const DEAD_LETTER_STREAM = "DMCP_DEAD_LETTERS";
/** The JetStream KV bucket holding the answer of each durable call, by correlation id. */
export const RESULTS_BUCKET = "dmcp_results";

/** The durable consumer that the replicas of a service share for one lane. */
export const workConsumer = (service: string, lane: PriorityLane) => `dmcp-work-${assertToken("service", service)}-${assertLane(lane)}`;

/** Parses `dmcp.v1.work.<service>.<lane>` back into its tokens. */
export function parseWorkSubject(subject: string): { service: string; lane: PriorityLane } | undefined {
  const parts = subject.split(".");
  if (parts.length !== 5 || `${parts[0]}.${parts[1]}` !== SUBJECT_ROOT || parts[2] !== "work") return undefined;
  const [service, lane] = [parts[3]!, parts[4]!];
  return TOKEN.test(service) && isPriorityLane(lane) ? { service, lane } : undefined;
}

function assertLane(lane: string): PriorityLane {
  if (!isPriorityLane(lane)) throw new InvalidSubjectTokenError("priority lane", lane);
  return lane;
}

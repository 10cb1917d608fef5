/**
 * The JetStream side of durable delivery (PROTOCOL.md §15): the work-queue stream that keeps requests
 * until an executor has answered them, the dead-letter stream, the lane consumers the replicas of a
 * service share, and what the connected server can do (2.9 lacks per-message TTL and term reasons).
 */
import { AckPolicy, DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType, type JetStreamManager, type StreamConfig } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { DEAD_LETTER_STREAM, subjects, WORK_STREAM, workConsumer, type PriorityLane } from "../../protocol/index.js";
import { natsConnectionOf, type Bus } from "../connection.js";
import { jetStreamManagerOf, streamPlacementOf, type StreamPlacement } from "../jetstream.js";
import { ensureStream, type StreamSpec } from "../streams.js";

/** How a service's durable requests are retried; set by its executors (the last one started wins). */
export interface DurableSettings {
  /** Delivery attempts before a request is dead-lettered. */
  maxDeliver: number;
  /** A delivery not acknowledged (nor reported in progress) within this time goes to another replica. */
  ackWaitMs: number;
  /** Delays before the 2nd, 3rd, ... attempt after a failed one (the last value repeats). */
  backoffMs: number[];
  /** Durable calls one executor runs at once. */
  concurrency: number;
}

export const DEFAULT_DURABLE_SETTINGS: DurableSettings = {
  maxDeliver: 5,
  ackWaitMs: 10_000,
  backoffMs: [1_000, 5_000, 15_000],
  concurrency: 16,
};

/** Requests older than this leave the work stream whatever their state (nobody waits that long). */
const WORK_MAX_AGE_MS = 24 * 3600_000;
/** A request re-published within this window (the same `Nats-Msg-Id`) is stored once. */
export const WORK_DUPLICATE_WINDOW_MS = 5 * 60_000;
const DEAD_LETTER_MAX_AGE_MS = 7 * 24 * 3600_000;
const NANOS_PER_MS = 1_000_000;

/** Features that depend on the server's version: used where present, never required. */
export interface ServerFeatures {
  version: string;
  /** Per-message TTL (`Nats-TTL`, stream `allow_msg_ttl`): 2.11+. */
  messageTtl: boolean;
  /** A reason on AckTerm (`+TERM <reason>`): 2.10.4+. Older servers ignore such a term and redeliver. */
  termReason: boolean;
  /** The `sync_interval` server option (fsync policy): 2.10+. */
  syncInterval: boolean;
}

export function serverFeatures(nc: NatsConnection): ServerFeatures {
  const version = nc.info?.version ?? "0.0.0";
  const [major = 0, minor = 0, patch = 0] = version.split(/[.-]/).map((part) => Number.parseInt(part, 10) || 0);
  const atLeast = (a: number, b: number, c: number) => major > a || (major === a && (minor > b || (minor === b && patch >= c)));
  return { version, messageTtl: atLeast(2, 11, 0), termReason: atLeast(2, 10, 4), syncInterval: atLeast(2, 10, 0) };
}

/** The streams of durable delivery, as executors and gateways expect them (streams.ts). */
export const WORK_STREAMS: StreamSpec[] = [
  { name: WORK_STREAM, subjects: [subjects.workAll()], retention: RetentionPolicy.Workqueue },
  { name: DEAD_LETTER_STREAM, subjects: [subjects.deadLetterAll()], retention: RetentionPolicy.Limits },
];

/**
 * The gateway's: creates the work and dead-letter streams unless they exist, and checks them. On a
 * server with per-message TTL the work stream allows it, so that a request leaves the stream at its
 * deadline even with no executor. Resolves whether requests may carry a TTL.
 */
export async function ensureWorkStreams(jsm: JetStreamManager, features: ServerFeatures, placement: StreamPlacement): Promise<{ messageTtl: boolean }> {
  const [workSpec, deadSpec] = WORK_STREAMS as [StreamSpec, StreamSpec];
  const work: StreamConfigInput = {
    name: WORK_STREAM,
    subjects: workSpec.subjects,
    retention: workSpec.retention,
    storage: StorageType.File,
    max_age: WORK_MAX_AGE_MS * NANOS_PER_MS,
    duplicate_window: WORK_DUPLICATE_WINDOW_MS * NANOS_PER_MS,
    ...(features.messageTtl ? { allow_msg_ttl: true } : {}),
  };
  const existing = (await ensureStream(jsm, workSpec, (num_replicas) => jsm.streams.add({ ...work, num_replicas }), placement)).config;
  let messageTtl = existing.allow_msg_ttl === true;
  if (features.messageTtl && !messageTtl) {
    // Created by an older server: a TTL can be allowed later (never taken back).
    messageTtl = await jsm.streams.update(WORK_STREAM, { ...existing, allow_msg_ttl: true }).then(
      () => true,
      () => false,
    );
  }
  const deadLetters: StreamConfigInput = {
    name: DEAD_LETTER_STREAM,
    subjects: deadSpec.subjects,
    retention: deadSpec.retention,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: DEAD_LETTER_MAX_AGE_MS * NANOS_PER_MS,
    duplicate_window: WORK_DUPLICATE_WINDOW_MS * NANOS_PER_MS,
  };
  await ensureStream(jsm, deadSpec, (num_replicas) => jsm.streams.add({ ...deadLetters, num_replicas }), placement);
  return { messageTtl };
}

type StreamConfigInput = Partial<StreamConfig> & { name: string };

/** ensureWorkStreams on the bus's server, with what that server can do. */
export async function provisionWorkStreams(bus: Bus): Promise<{ messageTtl: boolean }> {
  const nc = natsConnectionOf(bus);
  return ensureWorkStreams(await jetStreamManagerOf(bus), serverFeatures(nc), streamPlacementOf(bus));
}

/**
 * Creates (or updates to these settings) the pull consumer a service's replicas share for one lane.
 * Redelivery delays after failures are the executor's (nak with delay); the server redelivers a lost
 * executor's request after `ack_wait`.
 */
export async function ensureLaneConsumer(jsm: JetStreamManager, service: string, lane: PriorityLane, settings: DurableSettings): Promise<string> {
  const name = workConsumer(service, lane);
  const config = {
    durable_name: name,
    filter_subject: subjects.work(service, lane),
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: settings.ackWaitMs * NANOS_PER_MS,
    max_deliver: settings.maxDeliver,
    max_ack_pending: 10_000,
  };
  const existing = await jsm.consumers.info(WORK_STREAM, name).catch(() => undefined);
  if (!existing) {
    try {
      await jsm.consumers.add(WORK_STREAM, config);
      return name;
    } catch (err) {
      if (!(await jsm.consumers.info(WORK_STREAM, name).catch(() => undefined))) throw err;
    }
  }
  const current = existing?.config;
  if (current && (current.ack_wait !== config.ack_wait || current.max_deliver !== config.max_deliver)) {
    await jsm.consumers.update(WORK_STREAM, name, { ack_wait: config.ack_wait, max_deliver: config.max_deliver });
  }
  return name;
}

/** The delay before the next attempt after `attempt` failed (1-based). */
export function backoffDelay(settings: DurableSettings, attempt: number): number {
  const delays = settings.backoffMs.length > 0 ? settings.backoffMs : [0];
  return delays[Math.min(attempt - 1, delays.length - 1)]!;
}

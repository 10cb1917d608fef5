/**
 * The dMCP v0.1 envelope and its five message types, as zod schemas (the source of the JSON Schemas in
 * `schemas/`). Objects are loose: fields this version does not know survive a hop, so newer agents
 * can add fields without breaking older ones.
 */
import { randomUUID } from "node:crypto";
import * as z from "zod";
import { DeliveryPlan } from "./delivery.js";
import { DmcpError, ErrorCode } from "./errors.js";
import { TOPIC_PATTERN } from "./subjects.js";

export const DMCP_VERSION = "0.1";

export const MESSAGE_TYPES = [
  "context_update",
  "prompt_request",
  "prompt_response",
  "error_notification",
  "agent_heartbeat",
] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

const Timestamp = z.iso.datetime({ offset: true });
const JsonObject = z.record(z.string(), z.unknown());
const Name = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, "use 1-128 characters from A-Z a-z 0-9 _ -");

/** An MCP request carried across the bus: the JSON-RPC request minus `jsonrpc` and `id`. */
export const PromptRequestPayload = z.looseObject({
  service: Name.describe("the service (queue group) the request is addressed to"),
  method: z.string().min(1).describe("the MCP method, e.g. tools/call"),
  params: JsonObject.optional().describe("the MCP params, forwarded unchanged"),
});

/** The JSON-RPC `result` of the request, unchanged. */
export const PromptResponsePayload = z.looseObject({
  result: JsonObject.describe("the MCP result object, forwarded unchanged"),
});

export const ErrorNotificationPayload = z.looseObject({
  code: z.string().min(1).describe("a stable dMCP error code, e.g. NO_RESPONDERS (see PROTOCOL.md)"),
  message: z.string(),
  jsonrpc_code: z.number().int().optional().describe("the JSON-RPC error code an MCP client sees"),
  data: z.unknown().optional(),
});

/**
 * The `context_update.payload.method` of a receipt: an executor sends it to the reply subject as soon as
 * it takes a request, so the caller knows which instance holds the call (and can fail the call at once
 * if that instance leaves the bus).
 */
export const ACCEPTED_METHOD = "dmcp/accepted";

/**
 * The `context_update.payload.method` of a cancellation, published on `dmcp.v1.cancel.<service>` with
 * the cancelled call's `correlation_id`: the instance that holds the call stops it.
 */
export const CANCEL_METHOD = "notifications/cancelled";

/**
 * The `prompt_request.payload.method` a gateway sends to the replica a client session is pinned to when
 * that session ends: the replica closes the matching upstream session (PROTOCOL.md §16).
 */
export const SESSION_CLOSE_METHOD = "dmcp/session/close";

/**
 * Client notifications that a gateway passes on, as a `prompt_request` with the notification's method
 * (answered `{}`), to the replicas holding the client session's upstream sessions (PROTOCOL.md §16).
 */
export const RELAYED_CLIENT_NOTIFICATIONS: ReadonlySet<string> = new Set(["notifications/roots/list_changed"]);

/**
 * A `context_update` on a call's reply subject: the upstream closed the call's SSE stream before its
 * answer, to be polled (SEP-1699); the answer follows. A gateway may close its client's stream for
 * the request too, if the client can resume it (PROTOCOL.md §5.6).
 */
export const STREAM_CLOSED_METHOD = "dmcp/stream/closed";

/** A context topic: dot-separated tokens, e.g. `plant.pressure`; its subject is `dmcp.v1.ctx.<topic>`. */
export const TopicName = z.string().regex(TOPIC_PATTERN, "use 1-16 dot-separated tokens of A-Z a-z 0-9 _ -");

export const ContextUpdatePayload = z.looseObject({
  topic: TopicName.optional().describe("the context topic, for dMCP context streams (equals the subject's topic)"),
  method: z.string().optional().describe("the MCP notification method, when the update carries one"),
  params: JsonObject.optional(),
  data: z.unknown().optional(),
});

export const InstanceStatus = z.enum(["starting", "ready", "degraded", "stopping"]);
export type InstanceStatus = z.infer<typeof InstanceStatus>;

const Liveness = {
  service: Name,
  instance: Name,
  status: InstanceStatus,
  interval_ms: z.number().int().positive().describe("heartbeats follow at this interval; 3 missed mean gone"),
};

export const HeartbeatPayload = z.looseObject({
  kind: z.literal("heartbeat"),
  ...Liveness,
  inflight: z.number().int().nonnegative().describe("calls being executed now"),
  handled: z.number().int().nonnegative().describe("calls answered since start"),
});

/** MCP requires a tool's inputSchema to be a JSON Schema object of type "object". */
export const ToolEntry = z.looseObject({
  name: z.string().min(1),
  inputSchema: z.looseObject({ type: z.literal("object") }),
});

export const Catalog = z.looseObject({
  tools: z.array(z.looseObject({ name: z.string().min(1) })).default([]),
  resources: z.array(z.looseObject({ uri: z.string().min(1) })).default([]),
  resource_templates: z.array(z.looseObject({ uriTemplate: z.string().min(1) })).default([]),
  prompts: z.array(z.looseObject({ name: z.string().min(1) })).default([]),
});
export type Catalog = z.infer<typeof Catalog>;

/** Who a native dMCP agent is (executors that wrap MCP servers may leave it out). */
export const AgentProfile = z.looseObject({
  id: z.string().min(1).max(256).describe("stable id of the agent, e.g. its name plus a host"),
  name: z.string().min(1).max(256),
  version: z.string().min(1).max(64),
  description: z.string().optional(),
  publishes: z.array(TopicName).default([]).describe("context topics it publishes"),
  consumes: z.array(TopicName).default([]).describe("context topics it subscribes to"),
});
export type AgentProfile = z.infer<typeof AgentProfile>;

/** A capability announcement: who the instance is and what it offers. Kept in the registry. */
export const AnnouncePayload = z.looseObject({
  kind: z.literal("announce"),
  ...Liveness,
  started_at: Timestamp,
  server_info: JsonObject.optional().describe("the upstream MCP server's serverInfo"),
  protocol_version: z.string().optional().describe("the MCP revision negotiated with the upstream"),
  capabilities: JsonObject.default({}).describe("the upstream MCP server's capabilities"),
  stateless_capabilities: JsonObject.optional().describe("the capabilities the upstream declared to a 2026-07-28 server/discover, when it speaks that revision (PROTOCOL.md §17: the tasks extension there means it keeps its own tasks)"),
  instructions: z.string().optional(),
  catalog: Catalog,
  profile: AgentProfile.optional(),
  delivery: DeliveryPlan.optional().describe("how tools/call requests for this service travel (absent: all direct)"),
  client_sessions: z.boolean().optional().describe("true: the instance keeps an upstream session per MCP client session, and gateways pin client sessions to it (PROTOCOL.md §16)"),
  seal_key: z.string().regex(/^X[A-Z2-7]{55}$/).optional().describe("public curve key (xkey) that requests to this service may be sealed to"),
});

export const AgentHeartbeatPayload = z.discriminatedUnion("kind", [HeartbeatPayload, AnnouncePayload]);

/** Appended as the last field by a signer (PROTOCOL.md §14.1): the signature covers every byte before it. */
export const Signature = z.strictObject({
  alg: z.literal("ed25519"),
  key: z.string().regex(/^[A-Z2-7]{56}$/).describe("the signer's public nkey"),
  sig: z.string().regex(/^[A-Za-z0-9_-]{86}$/).describe("the ed25519 signature, base64url without padding"),
});

const envelopeFields = {
  dMCP_version: z.literal(DMCP_VERSION),
  id: z.string().min(1).max(256).describe("unique per message, for de-duplication"),
  correlation_id: z.string().min(1).max(256).optional().describe("pairs a response with its request"),
  session_id: z.string().max(256).optional().describe("optional session grouping"),
  timestamp: Timestamp,
  sender_id: z.string().min(1).max(256),
  deadline: Timestamp.optional().describe("after this instant nobody waits for the answer"),
  signature: Signature.optional(),
};

/**
 * Who made a call at the MCP edge, as the gateway authenticated them: for executors' audit logs and
 * upstream decisions. The raw bearer token travels only when the gateway is configured to forward it.
 */
export const Caller = z.looseObject({
  kind: z.string().min(1).max(32).describe('how the gateway knows the caller: "token", "jwt", "local" (stdio) or "anonymous"'),
  subject: z.string().min(1).max(256).describe("the token's name, the JWT's sub, or the local identity"),
  issuer: z.string().max(1024).optional().describe("the JWT's iss"),
  claims: JsonObject.optional().describe("the JWT claims the gateway is configured to forward"),
  token: z.string().optional().describe("the raw bearer token, only when the gateway forwards it"),
});
export type Caller = z.infer<typeof Caller>;

/**
 * The MCP client session a request belongs to (PROTOCOL.md §16): the executor keeps a matching upstream
 * session per client session, declares the client's capabilities to it, and sends its server-to-client
 * traffic to the gateway instance's session subject.
 */
export const ClientSession = z.looseObject({
  gateway: Name.describe("the gateway instance holding the client session (dmcp.v1.gw.<gateway>.session)"),
  capabilities: JsonObject.default({}).describe("the client's capabilities from its initialize (sampling, elicitation, roots)"),
  log_level: z.string().optional().describe("the client's logging/setLevel, applied to the upstream session"),
});
export type ClientSession = z.infer<typeof ClientSession>;

export const PromptRequest = z.looseObject({
  ...envelopeFields,
  type: z.literal("prompt_request"),
  caller: Caller.optional(),
  client_session: ClientSession.optional(),
  payload: PromptRequestPayload,
  receipt: z.boolean().optional().describe(`true: the executor first sends a "${"dmcp/accepted"}" context_update to the reply subject`),
  reply_to: z
    .string()
    .min(1)
    .max(256)
    .optional()
    .describe("durable requests: the subject for receipts, notifications and the answer (a JetStream message's own reply subject is its ack subject)"),
});
export const PromptResponse = z.looseObject({ ...envelopeFields, type: z.literal("prompt_response"), payload: PromptResponsePayload });
export const ErrorNotification = z.looseObject({ ...envelopeFields, type: z.literal("error_notification"), payload: ErrorNotificationPayload });
export const ContextUpdate = z.looseObject({ ...envelopeFields, type: z.literal("context_update"), payload: ContextUpdatePayload });
export const AgentHeartbeat = z.looseObject({ ...envelopeFields, type: z.literal("agent_heartbeat"), payload: AgentHeartbeatPayload });

export const Envelope = z.discriminatedUnion("type", [PromptRequest, PromptResponse, ErrorNotification, ContextUpdate, AgentHeartbeat]);

/**
 * An envelope whose `payload` (and `caller`) travel sealed to the recipient's curve key (PROTOCOL.md
 * §14.3): its form on the wire; receivers open it into one of the envelopes above.
 */
export const SealedEnvelope = z.looseObject({
  ...envelopeFields,
  type: z.enum(["prompt_request", "prompt_response", "error_notification", "context_update"]),
  receipt: z.boolean().optional(),
  sealed: z.strictObject({
    from: z.string().regex(/^X[A-Z2-7]{55}$/).describe("the sender's public curve key"),
    to: z.string().regex(/^X[A-Z2-7]{55}$/).describe("the recipient's public curve key"),
    data: z.string().regex(/^[A-Za-z0-9_-]+$/).describe("the xkv1 box of the sealed fields' JSON, base64url without padding"),
  }),
  payload: z.never().optional().describe("absent: it is inside `sealed`"),
});

export type Envelope = z.infer<typeof Envelope>;
export type PromptRequest = z.infer<typeof PromptRequest>;
export type PromptResponse = z.infer<typeof PromptResponse>;
export type ErrorNotification = z.infer<typeof ErrorNotification>;
export type ContextUpdate = z.infer<typeof ContextUpdate>;
export type AgentHeartbeat = z.infer<typeof AgentHeartbeat>;
export type HeartbeatPayload = z.infer<typeof HeartbeatPayload>;
export type AnnouncePayload = z.infer<typeof AnnouncePayload>;

type PayloadOf<T extends MessageType> = Extract<Envelope, { type: T }>["payload"];
type InputPayloadOf<T extends MessageType> = z.input<typeof Envelope> extends infer E
  ? E extends { type: T; payload: infer P }
    ? P
    : never
  : never;

export interface EnvelopeOptions {
  sender: string;
  /** The message id; a fresh UUID unless given (a request correlates to its own id). */
  id?: string | undefined;
  correlationId?: string | undefined;
  sessionId?: string | undefined;
  deadline?: Date | string | undefined;
  /** Who made the call (prompt_request only). */
  caller?: Caller | undefined;
}

/** Builds a new envelope with a fresh id and the current time. */
export function createEnvelope<T extends MessageType>(
  type: T,
  payload: InputPayloadOf<T>,
  options: EnvelopeOptions,
): Extract<Envelope, { type: T }> {
  // Ids come before the payload: a reader of an envelope too large to parse finds them in its head.
  const envelope: Record<string, unknown> = { dMCP_version: DMCP_VERSION, type, id: options.id ?? randomUUID() };
  if (options.correlationId !== undefined) envelope.correlation_id = options.correlationId;
  if (options.sessionId !== undefined) envelope.session_id = options.sessionId;
  envelope.timestamp = new Date().toISOString();
  envelope.sender_id = options.sender;
  if (options.deadline !== undefined) {
    envelope.deadline = typeof options.deadline === "string" ? options.deadline : options.deadline.toISOString();
  }
  if (options.caller !== undefined) envelope.caller = options.caller;
  envelope.payload = payload;
  return envelope as Extract<Envelope, { type: T }>;
}

export type { PayloadOf };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeEnvelope(envelope: Envelope | Record<string, unknown>): Uint8Array {
  return encoder.encode(JSON.stringify(envelope));
}

/** The default upper bound for one envelope; NATS' own default max_payload is 1 MiB. */
export const DEFAULT_MAX_ENVELOPE_BYTES = 1024 * 1024;

export type DecodeResult = { ok: true; envelope: Envelope } | { ok: false; error: DmcpError; raw: unknown };

/**
 * Decodes and validates one envelope. Never throws: a bad message becomes an INVALID_ENVELOPE or
 * PAYLOAD_TOO_LARGE error that names what is wrong, with the parsed JSON (if any) kept in `raw` so that
 * the caller can still answer the sender's correlation id.
 */
export function decodeEnvelope(bytes: Uint8Array, maxBytes = DEFAULT_MAX_ENVELOPE_BYTES): DecodeResult {
  if (bytes.byteLength > maxBytes) {
    return {
      ok: false,
      raw: peekIds(bytes),
      error: new DmcpError(ErrorCode.PayloadTooLarge, `envelope of ${bytes.byteLength} bytes exceeds the limit of ${maxBytes} bytes`),
    };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(decoder.decode(bytes));
  } catch (cause) {
    return { ok: false, raw: undefined, error: new DmcpError(ErrorCode.InvalidEnvelope, "envelope is not valid JSON", { cause }) };
  }
  return validateEnvelope(raw);
}

/**
 * The ids of an envelope too large to parse, read from its head: enough to pair the error with the
 * request. Envelopes written by this package put the ids before the payload.
 */
function peekIds(bytes: Uint8Array): Record<string, string> {
  const head = decoder.decode(bytes.subarray(0, 64 * 1024));
  const ids: Record<string, string> = {};
  for (const field of ["correlation_id", "id", "sender_id"]) {
    const match = new RegExp(`"${field}"\\s*:\\s*"([^"\\\\]{1,256})"`).exec(head);
    if (match) ids[field] = match[1]!;
  }
  return ids;
}

/** How many validation issues an INVALID_ENVELOPE error lists in its data. */
export const MAX_REPORTED_ISSUES = 20;

export function validateEnvelope(raw: unknown): DecodeResult {
  const parsed = Envelope.safeParse(raw);
  if (parsed.success) return { ok: true, envelope: parsed.data };
  return {
    ok: false,
    raw,
    error: new DmcpError(ErrorCode.InvalidEnvelope, `invalid envelope: ${formatIssues(parsed.error.issues)}`, {
      // The first issues only: 20,000 bad catalog entries would make an answer larger than the bus takes.
      data: { issues: parsed.error.issues.slice(0, MAX_REPORTED_ISSUES).map((i) => ({ path: i.path.join("."), message: i.message })) },
    }),
  };
}

/** Renders zod issues as `path: message; path: message`, the path in dotted form. */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .flatMap((issue) => explainUnion(issue))
    .slice(0, 5)
    .map((issue) => `${issue.path.length ? issue.path.join(".") : "(root)"}: ${issue.message}`)
    .join("; ");
}

/**
 * A value that fits no branch of a union yields one vague issue. When one branch is clearly the one
 * meant (fewest issues, then the deepest path), its issues, under the union's path, say exactly what
 * is wrong.
 */
function explainUnion(issue: z.core.$ZodIssue): { path: PropertyKey[]; message: string }[] {
  if (issue.code !== "invalid_union" || !("errors" in issue) || issue.errors.length === 0) return [issue];
  const score = (branch: z.core.$ZodIssue[]) => [branch.length, -Math.max(0, ...branch.map((i) => i.path.length))] as const;
  const ranked = [...issue.errors].sort((a, b) => score(a)[0] - score(b)[0] || score(a)[1] - score(b)[1]);
  const [best, second] = ranked;
  if (!best || best.length === 0) return [issue];
  if (second && score(best)[0] === score(second)[0] && score(best)[1] === score(second)[1]) return [issue];
  return best.flatMap((inner) => explainUnion(inner)).map((inner) => ({ path: [...issue.path, ...inner.path], message: inner.message }));
}

/** Reads `correlation_id`/`id`/`sender_id` from a message that failed validation, where they are present and fit an envelope. */
export function salvageIds(raw: unknown): { correlationId?: string; sender?: string } {
  if (typeof raw !== "object" || raw === null) return {};
  const record = raw as Record<string, unknown>;
  // Only ids an envelope may carry: an answer that echoed a 10 kB "id" would itself be invalid.
  const correlationId = isEnvelopeId(record.correlation_id) ? record.correlation_id : isEnvelopeId(record.id) ? record.id : undefined;
  const sender = isEnvelopeId(record.sender_id) ? record.sender_id : undefined;
  return { ...(correlationId ? { correlationId } : {}), ...(sender ? { sender } : {}) };
}

/** A string that fits an envelope's id fields (1-256 characters). */
function isEnvelopeId(value: unknown): value is string {
  return typeof value === "string" && value.length >= 1 && value.length <= 256;
}

/**
 * The dMCP v0.1 envelope and its five message types, as zod schemas (the source of the JSON Schemas in
 * `schemas/`). Objects are loose: fields this version does not know survive a hop, so newer agents
 * can add fields without breaking older ones.
 */
import * as z from "zod";
import { CachePlan } from "./cache.js";
import { DeliveryPlan } from "./delivery.js";
import { TOPIC_PATTERN } from "./subjects.js";

export const DMCP_VERSION = "0.1";

export const MESSAGE_TYPES = ["context_update", "prompt_request", "prompt_response", "error_notification", "agent_heartbeat"] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

const Timestamp = z.iso.datetime({ offset: true });
/** The pattern Timestamp checks (an ISO 8601 date-time with Z or an offset), for envelope-check.ts. */
export const TIMESTAMP_PATTERN: RegExp = Timestamp._zod.def.pattern!;
const JsonObject = z.record(z.string(), z.unknown());
/** A service or instance name. */
export const NAME_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;
const Name = z.string().regex(NAME_PATTERN, "use 1-128 characters from A-Z a-z 0-9 _ -");

/** The most characters an envelope's ids (`id`, `correlation_id`, `sender_id`, `session_id`) have (PROTOCOL.md §2, §10). */
export const MAX_ENVELOPE_ID_CHARS = 256;
const EnvelopeId = z.string().min(1).max(MAX_ENVELOPE_ID_CHARS);

/**
 * A string that fits an envelope's `id`, `correlation_id` or `sender_id` (1-256 characters): the one
 * rule for a correlation id wherever one is read, in an envelope or out of one (a recover lookup, a
 * call record on a session stream, ids salvaged from a message that failed validation).
 */
export function isEnvelopeId(value: unknown): value is string {
  return typeof value === "string" && value.length >= 1 && fitsIdLength(value);
}

/** At most 256 characters counted as the schemas count them: code points (an emoji is one, in two UTF-16 units). */
function fitsIdLength(value: string): boolean {
  return value.length <= MAX_ENVELOPE_ID_CHARS || (value.length <= 2 * MAX_ENVELOPE_ID_CHARS && [...value].length <= MAX_ENVELOPE_ID_CHARS);
}

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
  stateless_capabilities: JsonObject.optional().describe(
    "the capabilities the upstream declared to a 2026-07-28 server/discover, when it speaks that revision (PROTOCOL.md §17: the tasks extension there means it keeps its own tasks)",
  ),
  instructions: z.string().optional(),
  catalog: Catalog,
  profile: AgentProfile.optional(),
  delivery: DeliveryPlan.optional().describe("how tools/call requests for this service travel (absent: all direct)"),
  cache: CachePlan.optional().describe("opt-in TTLs for the answers of read-only tools and resources, by pattern (absent: only the upstream's own ttlMs)"),
  client_sessions: z.boolean().optional().describe("true: the instance keeps an upstream session per MCP client session, and gateways pin client sessions to it (PROTOCOL.md §16)"),
  seal_key: z
    .string()
    .regex(/^X[A-Z2-7]{55}$/)
    .optional()
    .describe("public curve key (xkey) that requests to this service may be sealed to"),
});

export const AgentHeartbeatPayload = z.discriminatedUnion("kind", [HeartbeatPayload, AnnouncePayload]);

/** A signer's public nkey, and an ed25519 signature in base64url without padding. */
export const SIGNER_KEY_PATTERN = /^[A-Z2-7]{56}$/;
export const SIGNATURE_PATTERN = /^[A-Za-z0-9_-]{86}$/;

/** Appended as the last field by a signer (PROTOCOL.md §14.1): the signature covers every byte before it. */
export const Signature = z.strictObject({
  alg: z.literal("ed25519"),
  key: z.string().regex(SIGNER_KEY_PATTERN).describe("the signer's public nkey"),
  sig: z.string().regex(SIGNATURE_PATTERN).describe("the ed25519 signature, base64url without padding"),
});

const envelopeFields = {
  dMCP_version: z.literal(DMCP_VERSION),
  id: EnvelopeId.describe("unique per message, for de-duplication"),
  correlation_id: EnvelopeId.optional().describe("pairs a response with its request"),
  session_id: z.string().max(MAX_ENVELOPE_ID_CHARS).optional().describe("optional session grouping"),
  timestamp: Timestamp,
  sender_id: EnvelopeId,
  deadline: Timestamp.optional().describe("after this instant nobody waits for the answer"),
  signature: Signature.optional(),
};

/**
 * Who made a call at the MCP edge, as the gateway authenticated them: for executors' audit logs and
 * upstream decisions. The raw bearer token travels only when the gateway is configured to forward it.
 */
export const Caller = z.looseObject({
  kind: z.string().min(1).max(32).describe('how the gateway knows the caller: "token", "jwt", "local" (stdio), "nostr" (a Nostr client) or "anonymous"'),
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
  gateway: Name.describe("the gateway instance sending this call of the client session (dmcp.v1.gw.<gateway>.session)"),
  origin: Name.optional().describe(
    "the gateway that opened the client session, when gateways share it (PROTOCOL.md §19): with session_id, the key of its upstream sessions (default: gateway)",
  ),
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
    from: z
      .string()
      .regex(/^X[A-Z2-7]{55}$/)
      .describe("the sender's public curve key"),
    to: z
      .string()
      .regex(/^X[A-Z2-7]{55}$/)
      .describe("the recipient's public curve key"),
    data: z
      .string()
      .regex(/^[A-Za-z0-9_-]+$/)
      .describe("the xkv1 box of the sealed fields' JSON, base64url without padding"),
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

export type PayloadOf<T extends MessageType> = Extract<Envelope, { type: T }>["payload"];

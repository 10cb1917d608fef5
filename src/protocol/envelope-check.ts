/**
 * A quick check of the envelopes every call sends (prompt_request, prompt_response,
 * error_notification, context_update), by the rules of their zod schemas in envelope.ts. The schema
 * builds a copy of each envelope, record by record, on every hop; this reads the fields and keeps
 * the parsed object. It says yes only where the schema would accept the value and return it
 * unchanged (no default to fill in, no key it would drop); everything else (heartbeats, context
 * topics, a client session without capabilities, anything doubtful or wrong)
 * goes to the schema, which decides and names the issues.
 */
import { DMCP_VERSION, type Envelope, isEnvelopeId, MAX_ENVELOPE_ID_CHARS, NAME_PATTERN, SIGNATURE_PATTERN, SIGNER_KEY_PATTERN, TIMESTAMP_PATTERN } from "./envelope.js";

type Fields = Record<string, unknown>;

/** True when `raw` is an envelope of a call that the schema would accept as it is. */
export function isPlainCallEnvelope(raw: unknown): raw is Envelope {
  if (!isPlainRecord(raw) || raw.dMCP_version !== DMCP_VERSION || !(raw.signature === undefined || isSignature(raw.signature))) return false;
  if (!isEnvelopeId(raw.id) || !isEnvelopeId(raw.sender_id) || !(raw.correlation_id === undefined || isEnvelopeId(raw.correlation_id))) return false;
  if (!(raw.session_id === undefined || isString(raw.session_id, 0, MAX_ENVELOPE_ID_CHARS))) return false;
  if (!isTimestamp(raw.timestamp) || !(raw.deadline === undefined || isTimestamp(raw.deadline))) return false;
  const payload = raw.payload;
  if (!isPlainRecord(payload)) return false;
  switch (raw.type) {
    case "prompt_request":
      return isPlainRequest(raw, payload);
    case "prompt_response":
      return isPlainRecord(payload.result);
    case "error_notification":
      return isString(payload.code, 1) && typeof payload.message === "string" && (payload.jsonrpc_code === undefined || Number.isSafeInteger(payload.jsonrpc_code));
    case "context_update":
      // A topic (context streams) is left to the schema: not a call's message.
      return payload.topic === undefined && (payload.method === undefined || typeof payload.method === "string") && isOptionalRecord(payload.params);
    default:
      return false;
  }
}

function isPlainRequest(raw: Fields, payload: Fields): boolean {
  if (!isName(payload.service) || !isString(payload.method, 1) || !isOptionalRecord(payload.params)) return false;
  if (!(raw.receipt === undefined || typeof raw.receipt === "boolean") || !(raw.reply_to === undefined || isId(raw.reply_to))) return false;
  const caller = raw.caller;
  if (caller !== undefined) {
    if (!isPlainRecord(caller) || !isString(caller.kind, 1, 32) || !isId(caller.subject)) return false;
    if (!(caller.issuer === undefined || isString(caller.issuer, 0, 1024)) || !isOptionalRecord(caller.claims)) return false;
    if (!(caller.token === undefined || typeof caller.token === "string")) return false;
  }
  const session = raw.client_session;
  if (session === undefined) return true;
  // Capabilities must be there: the schema would fill in a default.
  return (
    isPlainRecord(session) &&
    isName(session.gateway) &&
    (session.origin === undefined || isName(session.origin)) &&
    isPlainRecord(session.capabilities) &&
    (session.log_level === undefined || typeof session.log_level === "string")
  );
}

/** The schema's Signature is strict: these three fields and no other. */
function isSignature(value: unknown): boolean {
  if (!isPlainRecord(value) || Object.keys(value).length !== 3) return false;
  const { alg, key, sig } = value;
  return alg === "ed25519" && typeof key === "string" && SIGNER_KEY_PATTERN.test(key) && typeof sig === "string" && SIGNATURE_PATTERN.test(sig);
}

/**
 * An object as JSON.parse makes them, that the schema copies key by key unchanged: a plain object
 * with neither a `__proto__` key (the schema drops it) nor a `constructor` key (the schema's test
 * for a plain object reads it).
 */
function isPlainRecord(value: unknown): value is Fields {
  return (
    typeof value === "object" && value !== null && Object.getPrototypeOf(value) === Object.prototype && !Object.hasOwn(value, "__proto__") && !Object.hasOwn(value, "constructor")
  );
}

function isOptionalRecord(value: unknown): boolean {
  return value === undefined || isPlainRecord(value);
}

function isString(value: unknown, min: number, max = Number.POSITIVE_INFINITY): value is string {
  return typeof value === "string" && value.length >= min && value.length <= max;
}

/** `reply_to` and a caller's subject: 1-256 characters, as their schemas say. */
function isId(value: unknown): value is string {
  return isString(value, 1, 256);
}

function isName(value: unknown): boolean {
  return typeof value === "string" && NAME_PATTERN.test(value);
}

function isTimestamp(value: unknown): boolean {
  return typeof value === "string" && TIMESTAMP_PATTERN.test(value);
}

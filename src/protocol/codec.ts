/**
 * Envelopes to bytes and back. Decoding never throws: a bad message becomes an error that names what is
 * wrong, and the ids it carries are salvaged so that the sender can still be answered.
 */
import { ErrorCode } from "./error-codes.js";
import { BusError, RequestError, type DmcpError } from "./errors.js";
import { Envelope, isEnvelopeId, MAX_ENVELOPE_ID_CHARS } from "./envelope.js";
import { isPlainCallEnvelope } from "./envelope-check.js";
import { formatIssues } from "./zod-issues.js";

const decoder = new TextDecoder();

export function encodeEnvelope(envelope: Envelope | Record<string, unknown>): Uint8Array {
  // Buffer.from takes a small string's bytes from Node's shared pool: less than half the CPU of a
  // TextEncoder, which allocates an ArrayBuffer per envelope (TextDecoder stays: it decodes faster).
  return Buffer.from(JSON.stringify(envelope), "utf8");
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
      error: new BusError(ErrorCode.PayloadTooLarge, `envelope of ${bytes.byteLength} bytes exceeds the limit of ${maxBytes} bytes`),
    };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(decoder.decode(bytes));
  } catch (cause) {
    return { ok: false, raw: undefined, error: new RequestError(ErrorCode.InvalidEnvelope, "envelope is not valid JSON", { cause }) };
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
    // With the u flag a character is a code point, as the schemas count them.
    const match = new RegExp(`"${field}"\\s*:\\s*"([^"\\\\]{1,${MAX_ENVELOPE_ID_CHARS}})"`, "u").exec(head);
    if (match) ids[field] = match[1]!;
  }
  return ids;
}

/** How many validation issues an INVALID_ENVELOPE error lists in its data. */
export const MAX_REPORTED_ISSUES = 20;

export function validateEnvelope(raw: unknown): DecodeResult {
  // The envelopes of a call, well formed, pass a quick check; the schema decides the rest.
  if (isPlainCallEnvelope(raw)) return { ok: true, envelope: raw };
  const parsed = Envelope.safeParse(raw);
  if (parsed.success) return { ok: true, envelope: parsed.data };
  return {
    ok: false,
    raw,
    error: new RequestError(ErrorCode.InvalidEnvelope, `invalid envelope: ${formatIssues(parsed.error.issues)}`, {
      // The first issues only: 20,000 bad catalog entries would make an answer larger than the bus takes.
      data: { issues: parsed.error.issues.slice(0, MAX_REPORTED_ISSUES).map((i) => ({ path: i.path.join("."), message: i.message })) },
    }),
  };
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

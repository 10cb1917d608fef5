/**
 * Sealed envelopes (PROTOCOL.md §14.3): the fields that carry a call's content, `payload` and (when
 * present) `caller`, travel as `sealed`, an xkv1 box from the sender's curve key to the recipient's,
 * so that the broker and anyone else on the subject see ciphertext. Everything that routes and
 * correlates (type, ids, timestamps, deadline, subjects, headers) stays in clear.
 */
import { ErrorCode, SecurityError } from "../protocol/index.js";
import type { CurveKey } from "./keys.js";

/** The envelope fields that go inside the box. */
export const SEALED_FIELDS: readonly string[] = ["payload", "caller"];

/** Who sealed a message to whom: a reply is sealed the other way round. */
export interface SealInfo {
  from: string;
  to: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The envelope with its sealed fields replaced by `sealed`, the other fields in their order. */
export function sealEnvelope(envelope: Record<string, unknown>, from: CurveKey, to: string): Record<string, unknown> {
  const inside: Record<string, unknown> = {};
  const out: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(envelope)) {
    if (SEALED_FIELDS.includes(field)) inside[field] = value;
    else out[field] = value;
  }
  const box = from.seal(encoder.encode(JSON.stringify(inside)), to);
  out.sealed = { from: from.publicKey, to, data: Buffer.from(box).toString("base64url") };
  return out;
}

/**
 * Opens `raw.sealed` in place: the box's fields return to the envelope. `keyFor` gives this process's
 * curve key with that public key, if it has one. Throws DECRYPTION_FAILED.
 */
export function openEnvelope(raw: Record<string, unknown>, keyFor: (publicKey: string) => CurveKey | undefined): SealInfo {
  const fail = (why: string) => new SecurityError(ErrorCode.DecryptionFailed, `cannot open the sealed payload: ${why}`);
  const sealed = raw.sealed as { from?: unknown; to?: unknown; data?: unknown } | null;
  if (typeof sealed !== "object" || sealed === null || typeof sealed.from !== "string" || typeof sealed.to !== "string" || typeof sealed.data !== "string") {
    throw fail("sealed needs the strings from, to and data");
  }
  if ("payload" in raw) throw fail("a sealed envelope carries no payload outside the box");
  const key = keyFor(sealed.to);
  if (!key) throw fail(`it is sealed to ${sealed.to}, a key this receiver does not hold`);
  let plain: Uint8Array | null;
  try {
    plain = key.open(Buffer.from(sealed.data, "base64url"), sealed.from);
  } catch (cause) {
    throw new SecurityError(ErrorCode.DecryptionFailed, `cannot open the sealed payload: ${(cause as Error).message}`, { cause });
  }
  if (!plain) throw fail("the box does not open with these keys (altered, or sealed by another sender)");
  let inside: unknown;
  try {
    inside = JSON.parse(decoder.decode(plain));
  } catch (cause) {
    throw new SecurityError(ErrorCode.DecryptionFailed, "the sealed payload is not JSON", { cause });
  }
  if (typeof inside !== "object" || inside === null || Array.isArray(inside)) throw fail("the box holds no JSON object");
  delete raw.sealed;
  for (const field of SEALED_FIELDS) if (field in inside) raw[field] = (inside as Record<string, unknown>)[field];
  return { from: sealed.from, to: sealed.to };
}

/**
 * Sealed envelopes (PROTOCOL.md §14.3): the fields that carry a call's content, `payload` and (when
 * present) `caller`, travel as `sealed`, an xkv1 box from the sender's curve key to the recipient's,
 * so that the broker and anyone else on the subject see ciphertext. Everything that routes and
 * correlates (type, ids, timestamps, deadline, subjects, headers) stays in clear.
 */
import { ErrorCode, SecurityError } from "../protocol/index.js";
import { isJsonObject } from "../util/index.js";
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

/** A sealed value as it travels: who sealed it, to whom, and the xkv1 box of its JSON (base64url). */
export interface SealedBox {
  from: string;
  to: string;
  data: string;
}

/** The xkv1 box of `value`'s JSON from `from` to `to`. */
export function sealValue(value: unknown, from: CurveKey, to: string): SealedBox {
  const box = from.seal(encoder.encode(JSON.stringify(value)), to);
  return { from: from.publicKey, to, data: Buffer.from(box).toString("base64url") };
}

/**
 * The JSON object in a sealed box. `keyFor` gives this process's curve key with that public key, if
 * it has one. Throws DECRYPTION_FAILED.
 */
export function openValue(sealed: unknown, keyFor: (publicKey: string) => CurveKey | undefined): { value: Record<string, unknown>; seal: SealInfo } {
  const fail = (why: string) => new SecurityError(ErrorCode.DecryptionFailed, `cannot open the sealed payload: ${why}`);
  const box = sealed as { from?: unknown; to?: unknown; data?: unknown } | null;
  if (typeof box !== "object" || box === null || typeof box.from !== "string" || typeof box.to !== "string" || typeof box.data !== "string") {
    throw fail("sealed needs the strings from, to and data");
  }
  const key = keyFor(box.to);
  if (!key) throw fail(`it is sealed to ${box.to}, a key this receiver does not hold`);
  let plain: Uint8Array | null;
  try {
    plain = key.open(Buffer.from(box.data, "base64url"), box.from);
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
  if (!isJsonObject(inside)) throw fail("the box holds no JSON object");
  return { value: inside, seal: { from: box.from, to: box.to } };
}

/** The envelope with its sealed fields replaced by `sealed`, the other fields in their order. */
export function sealEnvelope(envelope: Record<string, unknown>, from: CurveKey, to: string): Record<string, unknown> {
  const inside: Record<string, unknown> = {};
  const out: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(envelope)) {
    if (SEALED_FIELDS.includes(field)) inside[field] = value;
    else out[field] = value;
  }
  out.sealed = sealValue(inside, from, to);
  return out;
}

/**
 * Opens `raw.sealed` in place: the box's fields return to the envelope. `keyFor` gives this process's
 * curve key with that public key, if it has one. Throws DECRYPTION_FAILED.
 */
export function openEnvelope(raw: Record<string, unknown>, keyFor: (publicKey: string) => CurveKey | undefined): SealInfo {
  if ("payload" in raw) throw new SecurityError(ErrorCode.DecryptionFailed, "cannot open the sealed payload: a sealed envelope carries no payload outside the box");
  const { value: inside, seal } = openValue(raw.sealed, keyFor);
  delete raw.sealed;
  for (const field of SEALED_FIELDS) if (field in inside) raw[field] = inside[field];
  return seal;
}

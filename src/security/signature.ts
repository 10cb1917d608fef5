/**
 * The wire form of a signed envelope (PROTOCOL.md §14.1). The signer serializes the envelope without a
 * signature (bytes B: a JSON object ending in `}`), signs exactly B, and sends B with its final `}`
 * replaced by a fixed-length tail, `,"signature":{"alg":"ed25519","key":"<nkey>","sig":"<base64url>"}}`.
 * The receiver cuts that tail off, restores B byte for byte and verifies it: nothing is re-serialized,
 * so any JSON encoder can sign and any receiver can verify, in any language.
 */
const HEAD = ',"signature":{"alg":"ed25519","key":"';
const MIDDLE = '","sig":"';
const END = '"}}';
const KEY_LENGTH = 56;
/** 64 signature bytes in base64url without padding. */
const SIG_LENGTH = 86;
/** Every signed message ends with exactly this many bytes of signature. */
export const SIGNATURE_TAIL_LENGTH = HEAD.length + KEY_LENGTH + MIDDLE.length + SIG_LENGTH + END.length;
const TAIL = /^,"signature":\{"alg":"ed25519","key":"([A-Z2-7]{56})","sig":"([A-Za-z0-9_-]{86})"\}\}$/;
const CLOSE_BRACE = 0x7d;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** B with its signature appended as the last field. */
export function appendSignature(signed: Uint8Array, publicKey: string, signature: Uint8Array): Uint8Array {
  if (signed[signed.byteLength - 1] !== CLOSE_BRACE) throw new TypeError("only a JSON object ending in } can be signed");
  const tail = encoder.encode(HEAD + publicKey + MIDDLE + Buffer.from(signature).toString("base64url") + END);
  const out = new Uint8Array(signed.byteLength - 1 + tail.byteLength);
  out.set(signed.subarray(0, signed.byteLength - 1));
  out.set(tail, signed.byteLength - 1);
  return out;
}

/** The signed bytes B, the signer's key and the signature; undefined when the message has no signature tail. */
export function splitSignature(bytes: Uint8Array): { signed: Uint8Array; publicKey: string; signature: Uint8Array } | undefined {
  if (bytes.byteLength <= SIGNATURE_TAIL_LENGTH) return undefined;
  const cut = bytes.byteLength - SIGNATURE_TAIL_LENGTH;
  const match = TAIL.exec(decoder.decode(bytes.subarray(cut)));
  if (!match) return undefined;
  const signed = new Uint8Array(cut + 1);
  signed.set(bytes.subarray(0, cut));
  signed[cut] = CLOSE_BRACE;
  return { signed, publicKey: match[1]!, signature: Buffer.from(match[2]!, "base64url") };
}

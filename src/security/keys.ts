/**
 * Keys in the NATS nkeys format: ed25519 signing keys (seed `SU…`/`SA…`/`SN…`, public key `U…`/`A…`/
 * `N…`) and curve25519 sealing keys, "xkeys" (seed `SX…`, public key `X…`). nkeys parses and checks
 * them (prefix, CRC-16) and seals with xkv1 boxes; the ed25519 arithmetic runs in node:crypto, which
 * signs and verifies about a hundred times faster than nkeys' pure-JavaScript implementation.
 */
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
// The one @nats-io package outside src/bus: nkeys is key encoding and crypto only, no I/O, no connection.
import { createCurve, createUser, fromCurveSeed, fromPublic, fromSeed, type KeyPair } from "@nats-io/nkeys";

export class KeyError extends Error {
  readonly code = "INVALID_KEY";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "KeyError";
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
// DER prefixes of an ed25519 private key (PKCS#8) and public key (SPKI) around the 32 raw bytes.
const PKCS8_ED25519 = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_ED25519 = Buffer.from("302a300506032b6570032100", "hex");

/** An ed25519 key that signs this process's messages. */
export class SigningKey {
  readonly publicKey: string;
  private readonly key: KeyObject;

  private constructor(
    /** The nkey seed (`S…`), for writing a key file. */
    readonly seed: string,
  ) {
    let pair: KeyPair;
    try {
      pair = fromSeed(encoder.encode(seed));
      this.publicKey = pair.getPublicKey();
    } catch (cause) {
      throw new KeyError("not an nkey seed (expected S followed by 57 base32 characters)", { cause });
    }
    if (this.publicKey.startsWith("X")) throw new KeyError("a curve (xkey) seed cannot sign: use a user, account or server nkey seed");
    // Seeds decode to two prefix bytes, the 32-byte ed25519 seed and a CRC-16.
    this.key = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, base32Decode(seed).subarray(2, 34)]), format: "der", type: "pkcs8" });
  }

  static fromSeed(seed: string): SigningKey {
    return new SigningKey(seed.trim());
  }

  static generate(): SigningKey {
    return new SigningKey(decoder.decode(createUser().getSeed()));
  }

  sign(bytes: Uint8Array): Uint8Array {
    return sign(null, bytes, this.key);
  }
}

const publicKeys = new Map<string, KeyObject>();

/** Checks an ed25519 signature by a public nkey (an invalid key verifies nothing). */
export function verifySignature(publicKey: string, bytes: Uint8Array, signature: Uint8Array): boolean {
  let key = publicKeys.get(publicKey);
  if (!key) {
    if (!isSigningPublicKey(publicKey)) return false;
    key = createPublicKey({ key: Buffer.concat([SPKI_ED25519, base32Decode(publicKey).subarray(1, 33)]), format: "der", type: "spki" });
    // Only trusted keys are verified, so the cache stays as small as the trust list.
    publicKeys.set(publicKey, key);
  }
  return verify(null, bytes, key, signature);
}

/** A well-formed public nkey of a signing kind (not a curve key): checked prefix and CRC. */
export function isSigningPublicKey(value: string): boolean {
  return /^[ACNOU][A-Z2-7]{55}$/.test(value) && isPublicKey(value);
}

/** A well-formed public curve key (`X…`). */
export function isCurvePublicKey(value: string): boolean {
  return /^X[A-Z2-7]{55}$/.test(value) && isPublicKey(value);
}

function isPublicKey(value: string): boolean {
  try {
    fromPublic(value);
    return true;
  } catch {
    return false;
  }
}

/** A curve25519 key pair (xkey) that seals and opens payloads (nkeys' xkv1 boxes). */
export class CurveKey {
  /** Computed once: nkeys derives it anew (a scalar multiplication) on every call. */
  readonly publicKey: string;

  private constructor(private readonly pair: KeyPair) {
    this.publicKey = pair.getPublicKey();
  }

  static fromSeed(seed: string): CurveKey {
    try {
      return new CurveKey(fromCurveSeed(encoder.encode(seed.trim())));
    } catch (cause) {
      throw new KeyError("not a curve nkey seed (expected SX followed by 56 base32 characters)", { cause });
    }
  }

  static generate(): CurveKey {
    return new CurveKey(createCurve());
  }

  get seed(): string {
    return decoder.decode(this.pair.getSeed());
  }

  seal(bytes: Uint8Array, recipient: string): Uint8Array {
    return this.pair.seal(bytes, recipient);
  }

  /** The plaintext, or null when the box was not sealed by `sender` for this key, or was altered. */
  open(box: Uint8Array, sender: string): Uint8Array | null {
    return this.pair.open(box, sender);
  }
}

/** The seed in a key file: its first line that looks like an nkey seed (nsc and nk files have comments). */
export function readSeedFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (cause) {
    throw new KeyError(`cannot read key file ${path}: ${(cause as Error).message}`, { cause });
  }
  const seed = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .find((line) => /^S[A-Z2-7]{57}$/.test(line));
  if (!seed) throw new KeyError(`${path} holds no nkey seed (a line S… of 58 base32 characters)`);
  return seed;
}

/** RFC 4648 base32 without padding, as nkeys writes keys; the caller has checked the alphabet. */
function base32Decode(text: string): Buffer {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const char of text) {
    value = (value << 5) | alphabet.indexOf(char);
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

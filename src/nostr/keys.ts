/** Nostr keys as the CLI takes them: a secret key in a file (hex or nsec), a public key as hex or npub. */
import { readFileSync } from "node:fs";
import { generateSecretKey, getPublicKey, nip19 } from "nostr-tools";

const HEX_KEY = /^[0-9a-f]{64}$/;

/** A secret key read from `file`: 64 hex digits or an `nsec1…` string, surrounding whitespace ignored. */
export function readSecretKey(file: string, flag: string): string {
  let text: string;
  try {
    text = readFileSync(file, "utf8").trim();
  } catch (err) {
    throw new Error(`${flag}: cannot read ${file}: ${(err as Error).message}`);
  }
  const key = parseSecretKey(text);
  if (!key) throw new Error(`${flag}: ${file} holds no Nostr secret key (64 hex digits or nsec1…)`);
  return key;
}

function parseSecretKey(text: string): string | undefined {
  if (HEX_KEY.test(text.toLowerCase())) return text.toLowerCase();
  if (!text.startsWith("nsec1")) return undefined;
  try {
    const decoded = nip19.decode(text);
    return decoded.type === "nsec" ? Buffer.from(decoded.data).toString("hex") : undefined;
  } catch {
    return undefined;
  }
}

/** A public key given as 64 hex digits or `npub1…`, as hex; throws naming `what` otherwise. */
export function parsePublicKey(text: string, what: string): string {
  const trimmed = text.trim();
  if (HEX_KEY.test(trimmed.toLowerCase())) return trimmed.toLowerCase();
  try {
    const decoded = nip19.decode(trimmed);
    if (decoded.type === "npub") return decoded.data;
  } catch {
    // Falls through to the error below.
  }
  throw new Error(`${what} must be a Nostr public key (64 hex digits or npub1…), got ${JSON.stringify(text)}`);
}

/** A fresh secret key, as hex, for a process that was given none (its identity lasts as long as it runs). */
export function generateSecretKeyHex(): string {
  return Buffer.from(generateSecretKey()).toString("hex");
}

export function publicKeyOf(secretKeyHex: string): string {
  return getPublicKey(Buffer.from(secretKeyHex, "hex"));
}

/** The Nostr keys and relay URLs the CLI takes: hex or NIP-19 (npub, nsec), and clear errors otherwise. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateSecretKey, getPublicKey, nip19 } from "nostr-tools";
import { afterAll, describe, expect, it } from "vitest";
import { parsePublicKey, parseRelayUrls, publicKeyOf, readSecretKey } from "../../src/nostr/index.js";

describe("Nostr keys and relay URLs", () => {
  const dir = mkdtempSync(join(tmpdir(), "dmcp-nostr-keys-"));
  const secret = generateSecretKey();
  const hex = Buffer.from(secret).toString("hex");
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("reads a secret key as hex or nsec, with surrounding whitespace", () => {
    writeFileSync(join(dir, "hex.key"), `  ${hex.toUpperCase()}\n`);
    writeFileSync(join(dir, "nsec.key"), `${nip19.nsecEncode(secret)}\n`);
    expect(readSecretKey(join(dir, "hex.key"), "--nostr-key")).toBe(hex);
    expect(readSecretKey(join(dir, "nsec.key"), "--nostr-key")).toBe(hex);
    expect(publicKeyOf(hex)).toBe(getPublicKey(secret));
  });

  it("refuses a file that holds no key, naming the flag and the file", () => {
    writeFileSync(join(dir, "bad.key"), "npub1notasecret\n");
    expect(() => readSecretKey(join(dir, "bad.key"), "--nostr-key")).toThrow(`--nostr-key: ${join(dir, "bad.key")} holds no Nostr secret key`);
    expect(() => readSecretKey(join(dir, "missing.key"), "--nostr-key")).toThrow("--nostr-key: cannot read");
  });

  it("takes a public key as hex or npub, and refuses anything else", () => {
    const pubkey = getPublicKey(secret);
    expect(parsePublicKey(pubkey, "--nostr")).toBe(pubkey);
    expect(parsePublicKey(nip19.npubEncode(pubkey), "--nostr")).toBe(pubkey);
    expect(() => parsePublicKey(nip19.nsecEncode(secret), "--nostr")).toThrow("--nostr must be a Nostr public key");
    expect(() => parsePublicKey("abc", "--nostr")).toThrow("--nostr must be a Nostr public key");
  });

  it("takes ws:// and wss:// relay URLs once each", () => {
    expect(parseRelayUrls(["wss://a.example", "ws://127.0.0.1:7000", "wss://a.example"], "--relay")).toEqual(["wss://a.example", "ws://127.0.0.1:7000"]);
    expect(() => parseRelayUrls(["https://a.example"], "--relay")).toThrow('--relay needs a ws:// or wss:// URL, got "https://a.example"');
  });
});

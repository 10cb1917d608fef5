/**
 * `--nostr-dialect auto`: which dialect a server speaks, told by its announcements on the relays
 * given: a DVMCP server announcement (kind 31316) and no ContextVM one (11316) means DVMCP; anything
 * else (a ContextVM announcement, none at all: a private server) means ContextVM.
 */
import { ApplesauceRelayPool } from "@contextvm/sdk/relay";
import { verifyEvent, type NostrEvent } from "nostr-tools";
import { ANNOUNCEMENT_KINDS, DVMCP_ANNOUNCEMENT_KINDS, type NostrDialect } from "../../../src/nostr/index.js";

/** How long the relays get to say what they hold. */
const PROBE_TIMEOUT_MS = 5_000;

export async function probeDialect(serverPubkey: string, relayUrls: readonly string[]): Promise<NostrDialect> {
  const pool = new ApplesauceRelayPool([...relayUrls]);
  const kinds = new Set<number>();
  try {
    await pool.connect();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, PROBE_TIMEOUT_MS);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      const filter = { kinds: [ANNOUNCEMENT_KINDS.server, DVMCP_ANNOUNCEMENT_KINDS.server], authors: [serverPubkey] };
      // Only signed announcements by the server count: the relay's word is not taken for them.
      void pool.subscribe([filter], (event: NostrEvent) => event.pubkey === serverPubkey && verifyEvent(event) && kinds.add(event.kind), done).catch(done);
    });
  } finally {
    await pool.disconnect().catch(() => undefined);
  }
  return kinds.has(DVMCP_ANNOUNCEMENT_KINDS.server) && !kinds.has(ANNOUNCEMENT_KINDS.server) ? "dvmcp" : "contextvm";
}

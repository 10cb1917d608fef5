/**
 * Test helper: a real Nostr relay (@nostr-relay/core behind a `ws` WebSocket server, as its docs show)
 * on a random loopback port. Events are kept in memory: the relay takes a storage of the user's
 * choosing, and the tests need no more than a process's lifetime of it.
 */
import type { AddressInfo } from "node:net";
import { NostrRelay } from "@nostr-relay/core";
import { type Event, EventRepository, type EventRepositoryUpsertResult, EventUtils, type Filter } from "@nostr-relay/common";
import { Validator } from "@nostr-relay/validator";
import { type WebSocket, WebSocketServer } from "ws";

export interface TestRelay {
  readonly url: string;
  /** WebSocket connections the relay has taken so far. */
  readonly connections: number;
  /** Hands `event` to every open subscription, unchecked and whatever their filters: a dishonest relay. */
  pushToEverySubscription(event: unknown): void;
  stop(): Promise<void>;
}

/** Replaceable (10000–19999, 0, 3) and addressable (30000–39999) events replace older ones; ephemeral ones are not kept. */
class MemoryEventRepository extends EventRepository {
  private events: Event[] = [];

  isSearchSupported(): boolean {
    return false;
  }

  upsert(event: Event): EventRepositoryUpsertResult {
    if (this.events.some((e) => e.id === event.id)) return { isDuplicate: true };
    const replaces = (e: Event) => {
      if (e.kind !== event.kind || e.pubkey !== event.pubkey) return false;
      if (event.kind === 0 || event.kind === 3 || (event.kind >= 10000 && event.kind < 20000)) return true;
      if (event.kind >= 30000 && event.kind < 40000) return EventUtils.extractDTagValue(e) === EventUtils.extractDTagValue(event);
      return false;
    };
    this.events = this.events.filter((e) => !replaces(e));
    this.events.push(event);
    return { isDuplicate: false };
  }

  find(filter: Filter): Event[] {
    const matching = this.events.filter((e) => EventUtils.isMatchingFilter(e, filter)).reverse();
    return filter.limit === undefined ? matching : matching.slice(0, filter.limit);
  }

  async destroy(): Promise<void> {
    this.events = [];
  }
}

export async function startTestRelay(): Promise<TestRelay> {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise<void>((resolve, reject) => {
    wss.once("listening", resolve);
    wss.once("error", reject);
  });
  const relay = new NostrRelay(new MemoryEventRepository());
  const validator = new Validator();
  const subscriptions = new Map<WebSocket, Set<string>>();
  let connections = 0;
  wss.on("connection", (ws) => {
    connections++;
    relay.handleConnection(ws);
    subscriptions.set(ws, new Set());
    ws.on("message", async (data) => {
      noteSubscription(subscriptions.get(ws)!, data.toString());
      try {
        await relay.handleMessage(ws, await validator.validateIncomingMessage(data));
      } catch (err) {
        ws.send(JSON.stringify(["NOTICE", (err as Error).message]));
      }
    });
    ws.on("close", () => {
      subscriptions.delete(ws);
      relay.handleDisconnect(ws);
    });
    ws.on("error", () => ws.close());
  });
  const { port } = wss.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}`,
    get connections() {
      return connections;
    },
    pushToEverySubscription(event) {
      for (const [ws, ids] of subscriptions) for (const id of ids) ws.send(JSON.stringify(["EVENT", id, event]));
    },
    async stop() {
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await relay.destroy();
    },
  };
}

/** Keeps the ids of a connection's open subscriptions (REQ opens one, CLOSE ends it). */
function noteSubscription(ids: Set<string>, text: string): void {
  try {
    const [type, id] = JSON.parse(text) as [unknown, unknown];
    if (type === "REQ" && typeof id === "string") ids.add(id);
    if (type === "CLOSE" && typeof id === "string") ids.delete(id);
  } catch {
    // Not JSON: the relay answers it with a NOTICE.
  }
}

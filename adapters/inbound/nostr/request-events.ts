/**
 * The SDK's server transport swaps a request's JSON-RPC id for the id of the event that carried it,
 * and the gateway session knows the request by that; a client's notifications/cancelled still names
 * its own id. This remembers, per client key, which event carried which request id, so that the
 * cancellation can be made to name the event.
 */
import type { JSONRPCMessage } from "@modelcontextprotocol/server";
import type { NostrEvent } from "nostr-tools";

/** Requests remembered at most (the oldest forgotten first). */
const REMEMBERED = 10_000;

export class RequestEvents {
  private readonly events = new Map<string, string>();

  /** A message let through from a relay: remembered when it is a request. */
  note(message: NostrEvent): void {
    let parsed: { id?: unknown; method?: unknown };
    try {
      parsed = JSON.parse(message.content) as typeof parsed;
    } catch {
      return;
    }
    if (typeof parsed.method !== "string" || (typeof parsed.id !== "string" && typeof parsed.id !== "number")) return;
    this.events.set(key(message.pubkey, parsed.id), message.id);
    if (this.events.size > REMEMBERED) this.events.delete(this.events.keys().next().value as string);
  }

  /** `message` with a cancellation's request id swapped for the id of the request's event, when known. */
  naming(clientPubkey: string, message: JSONRPCMessage): JSONRPCMessage {
    if (!("method" in message) || message.method !== "notifications/cancelled" || "id" in message || !message.params) return message;
    const params = message.params as { requestId?: unknown };
    if (typeof params.requestId !== "string" && typeof params.requestId !== "number") return message;
    const eventId = this.events.get(key(clientPubkey, params.requestId));
    return eventId ? { ...message, params: { ...params, requestId: eventId } } : message;
  }
}

function key(pubkey: string, id: string | number): string {
  return `${pubkey} ${typeof id} ${id}`;
}

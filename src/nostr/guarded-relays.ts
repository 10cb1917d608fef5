/**
 * The relays of a Nostr adapter, handed to the ContextVM SDK in place of its own: every subscribed
 * event passes an EventGuard first. The adapter builds the pool on exactly the URLs it was given, so
 * the SDK's discovery and bootstrap relays are never used. An event `divert` takes (DVMCP's, which
 * the SDK does not speak) goes there instead of to the subscriber.
 */
import type { RelayHandler } from "@contextvm/sdk/core";
import type { NostrEvent } from "nostr-tools";
import type { EventGuard } from "./event-guard.js";

export class GuardedRelays implements RelayHandler {
  constructor(
    private readonly pool: RelayHandler,
    private readonly guard: EventGuard,
    private readonly divert: (event: NostrEvent) => boolean = () => false,
  ) {}

  connect(): Promise<void> {
    return this.pool.connect();
  }

  disconnect(): Promise<void> {
    return this.pool.disconnect();
  }

  publish(...args: Parameters<RelayHandler["publish"]>): Promise<void> {
    return this.pool.publish(...args);
  }

  subscribe(...[filters, onEvent, onEose]: Parameters<RelayHandler["subscribe"]>): Promise<() => void> {
    return this.pool.subscribe(
      filters,
      (event) => {
        if (this.guard.admit(event) && !this.divert(event)) onEvent(event);
      },
      onEose,
    );
  }

  unsubscribe(): void {
    this.pool.unsubscribe();
  }

  getRelayUrls(): string[] {
    return this.pool.getRelayUrls();
  }
}

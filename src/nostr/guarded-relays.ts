/**
 * The relays of a Nostr adapter, handed to the ContextVM SDK in place of its own: every subscribed
 * event passes an EventGuard first. The adapter builds the pool on exactly the URLs it was given, so
 * the SDK's discovery and bootstrap relays are never used.
 */
import type { RelayHandler } from "@contextvm/sdk/core";
import type { EventGuard } from "./event-guard.js";

export class GuardedRelays implements RelayHandler {
  constructor(
    private readonly pool: RelayHandler,
    private readonly guard: EventGuard,
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
        if (this.guard.admit(event)) onEvent(event);
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

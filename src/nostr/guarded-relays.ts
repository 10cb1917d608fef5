/**
 * The relays of a Nostr adapter: exactly the URLs it was given (the SDK's own discovery and bootstrap
 * relays are never used), with every subscribed event passed through an EventGuard first.
 */
import type { RelayHandler } from "@contextvm/sdk/core";
import { ApplesauceRelayPool } from "@contextvm/sdk/relay";
import type { EventGuard } from "./event-guard.js";

export class GuardedRelays implements RelayHandler {
  private readonly pool: ApplesauceRelayPool;

  constructor(
    private readonly urls: readonly string[],
    private readonly guard: EventGuard,
  ) {
    this.pool = new ApplesauceRelayPool([...urls]);
  }

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
    return [...this.urls];
  }
}

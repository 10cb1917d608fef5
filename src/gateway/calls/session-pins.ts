/**
 * Which executor replica holds a client session's upstream session, per service (PROTOCOL.md §16).
 * The gateway picks the replica before the session's first call to the service leaves, so that calls
 * sent at once all go to it; a replica is `reached` once one of the session's calls got an answer or
 * receipt from it (from then on its upstream session may hold state the client relies on).
 */
export class SessionPins {
  private readonly pins = new Map<string, { instance: string; reached: boolean }>();

  /** `onReached`: a replica became reached for a service (its upstream session now exists), told once per pin. */
  constructor(private readonly onReached?: () => void) {}

  /** The replica pinned for `service`; pins `choose()`'s pick first when there is none (none to pick: undefined). */
  pinFor(service: string, choose: () => string | undefined): string | undefined {
    const pinned = this.pins.get(service);
    if (pinned) return pinned.instance;
    const chosen = choose();
    if (chosen !== undefined) this.pins.set(service, { instance: chosen, reached: false });
    return chosen;
  }

  get(service: string): string | undefined {
    return this.pins.get(service)?.instance;
  }

  /** Whether a call of the session has reached the replica pinned for `service`. */
  isReached(service: string): boolean {
    return this.pins.get(service)?.reached === true;
  }

  /** A call of the session was taken by `instance`: it holds the session's upstream session (pinned now, if nothing was). */
  reached(service: string, instance: string): void {
    const pinned = this.pins.get(service);
    if (!pinned) this.pins.set(service, { instance, reached: true });
    else if (pinned.instance === instance && !pinned.reached) pinned.reached = true;
    else return;
    this.onReached?.();
  }

  /** The replicas a call of the session reached, by service: what another gateway serving the session pins too. */
  reachedPins(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [service, pinned] of this.pins) if (pinned.reached) out[service] = pinned.instance;
    return out;
  }

  /** Pins what another gateway's calls of the session reached, for the services this gateway has not pinned yet. */
  adopt(reached: Record<string, string>): void {
    for (const [service, instance] of Object.entries(reached)) if (!this.pins.has(service)) this.pins.set(service, { instance, reached: true });
  }

  /**
   * Unpins `instance` (if it is still the pin) as it left the bus: the session's next call to the
   * service picks again. True when a call of the session had reached it (its upstream session is lost).
   */
  release(service: string, instance: string): boolean {
    const pinned = this.pins.get(service);
    if (pinned?.instance !== instance) return false;
    this.pins.delete(service);
    return pinned.reached;
  }

  entries(): [service: string, instance: string][] {
    return [...this.pins].map(([service, pinned]) => [service, pinned.instance]);
  }

  clear(): void {
    this.pins.clear();
  }
}

/**
 * Cancellations that reached an instance before the call they cancel started there. A durable request
 * is read in the result store between its delivery and its start (PROTOCOL.md §15.5 step 2); its
 * caller's cancellation can arrive during that read, ahead of the CANCELLED answer the caller stores
 * (§15.8). Kept for a while, so that such a call is answered CANCELLED instead of running.
 */
export const EARLY_CANCELLATION_MS = 30_000;
const MAX_KEPT = 10_000;

export class EarlyCancellations {
  /** When each cancellation arrived, by correlation id, oldest first. */
  private readonly arrived = new Map<string, number>();

  add(correlationId: string): void {
    this.forgetExpired();
    this.arrived.delete(correlationId);
    this.arrived.set(correlationId, Date.now());
    // Every cancellation of the service reaches every instance: keep the newest only.
    if (this.arrived.size > MAX_KEPT) this.arrived.delete(this.arrived.keys().next().value!);
  }

  /** Whether the call was cancelled before it started (consumes the cancellation). */
  take(correlationId: string): boolean {
    const at = this.arrived.get(correlationId);
    this.arrived.delete(correlationId);
    return at !== undefined && Date.now() - at < EARLY_CANCELLATION_MS;
  }

  private forgetExpired(): void {
    const oldest = Date.now() - EARLY_CANCELLATION_MS;
    for (const [correlationId, at] of this.arrived) {
      if (at >= oldest) break;
      this.arrived.delete(correlationId);
    }
  }
}

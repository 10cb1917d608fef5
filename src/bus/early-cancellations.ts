/**
 * Cancellations that reached an instance before the call they cancel started there. A durable request
 * is read in the result store between its delivery and its start (PROTOCOL.md §15.5 step 2); its
 * caller's cancellation can arrive during that read, ahead of the CANCELLED answer the caller stores
 * (§15.8). Kept for a while, so that such a call is answered CANCELLED instead of running.
 */
import type { DmcpError } from "../protocol/index.js";

export const EARLY_CANCELLATION_MS = 30_000;
const MAX_KEPT = 10_000;

export class EarlyCancellations {
  /** When each cancellation arrived and what it said, by correlation id, oldest first. */
  private readonly arrived = new Map<string, { at: number; error: DmcpError }>();

  add(correlationId: string, error: DmcpError): void {
    this.forgetExpired();
    this.arrived.delete(correlationId);
    this.arrived.set(correlationId, { at: Date.now(), error });
    // Every cancellation of the service reaches every instance: keep the newest only.
    if (this.arrived.size > MAX_KEPT) this.arrived.delete(this.arrived.keys().next().value!);
  }

  /** The cancellation of a call cancelled before it started, if any (consumes it). */
  take(correlationId: string): DmcpError | undefined {
    const kept = this.arrived.get(correlationId);
    this.arrived.delete(correlationId);
    return kept !== undefined && Date.now() - kept.at < EARLY_CANCELLATION_MS ? kept.error : undefined;
  }

  private forgetExpired(): void {
    const oldest = Date.now() - EARLY_CANCELLATION_MS;
    for (const [correlationId, { at }] of this.arrived) {
      if (at >= oldest) break;
      this.arrived.delete(correlationId);
    }
  }
}

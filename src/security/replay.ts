/**
 * Replay protection of signed messages (PROTOCOL.md §14.2). A message is fresh when its timestamp lies
 * within the window around the receiver's clock (live messages) or around the time the server stored
 * it (messages read from a stream or bucket, which are re-read legitimately long after), and new when
 * its receiver has not accepted its id before. A stored message read again under the same sequence is
 * the same message (a redelivery, a second read of history), not a replay.
 */
export const DEFAULT_REPLAY_WINDOW_MS = 2 * 60 * 1000;
const DEFAULT_MAX_IDS = 100_000;

/** Where a stored message was read from: the server's storage time and its sequence (or revision). */
export interface StoredAt {
  at: Date;
  tag: number | string;
}

export class ReplayGuard {
  /** Insertion order is expiry order: every entry lives for one window. */
  private readonly seen = new Map<string, { until: number; tag: number | string | undefined }>();

  constructor(
    readonly windowMs = DEFAULT_REPLAY_WINDOW_MS,
    private readonly maxIds = DEFAULT_MAX_IDS,
  ) {}

  /** Undefined when the message is fresh and new (its id is then remembered); otherwise why it is a replay. */
  check(receiver: string, id: string, timestamp: string, stored?: StoredAt): string | undefined {
    const reference = stored ? stored.at.getTime() : Date.now();
    const skew = Date.parse(timestamp) - reference;
    if (!(Math.abs(skew) <= this.windowMs)) {
      const against = stored ? "the time the server stored it" : "the receiver's clock";
      return `its timestamp ${timestamp} is ${Math.round(Math.abs(skew) / 1000)} s from ${against}, outside the window of ${Math.round(this.windowMs / 1000)} s`;
    }
    this.expire();
    // Receivers are independent: the replicas of one process, two subscriptions to overlapping topics.
    const key = `${receiver}\u0000${id}`;
    const known = this.seen.get(key);
    if (known) return known.tag !== undefined && known.tag === stored?.tag ? undefined : `its id ${id} was accepted before`;
    this.seen.set(key, { until: Date.now() + this.windowMs, tag: stored?.tag });
    // Past the bound the oldest ids go; their timestamps still bound how late a replay can come.
    if (this.seen.size > this.maxIds) this.seen.delete(this.seen.keys().next().value!);
    return undefined;
  }

  private expire(): void {
    const now = Date.now();
    for (const [key, entry] of this.seen) {
      if (entry.until > now) return;
      this.seen.delete(key);
    }
  }
}

/**
 * The answers of direct calls one instance gave lately, kept in its memory for a while (bounded in
 * age, bytes and count), so that a gateway can still hand them to the client when the gateway that
 * sent the call died before the answer reached it (PROTOCOL.md §19.4). The client resumes its stream
 * on another gateway, which asks every instance of the service for the answer by correlation id: the
 * instance that has it answers with it; one still running the call says so (a receipt) and sends the
 * answer when it has it; the others stay silent.
 */

/** How long an answer is kept after it was sent. */
export const RECENT_ANSWERS_MS = 60_000;
/** At most this many bytes of answers are kept (the oldest go first). */
export const RECENT_ANSWERS_MAX_BYTES = 16 * 1024 * 1024;
export const RECENT_ANSWERS_MAX_COUNT = 10_000;

export interface RecentAnswersLimits {
  maxAgeMs: number;
  maxBytes: number;
  maxCount: number;
}

/** What an instance makes of a lookup. */
export type LookupOutcome = { answer: Uint8Array } | "waiting" | "unknown";

export class RecentAnswers {
  /** By correlation id, oldest first. */
  private readonly answers = new Map<string, { data: Uint8Array; at: number }>();
  private bytes = 0;
  /** The reply subjects of gateways waiting for the answer of a call still running here. */
  private readonly waiting = new Map<string, Set<string>>();

  constructor(
    /** Sends an answer to a waiting gateway. */
    private readonly send: (subject: string, data: Uint8Array) => void,
    private readonly limits: RecentAnswersLimits = { maxAgeMs: RECENT_ANSWERS_MS, maxBytes: RECENT_ANSWERS_MAX_BYTES, maxCount: RECENT_ANSWERS_MAX_COUNT },
  ) {}

  /** Keeps the answer of a direct call (its encoded envelope) and sends it to the gateways that asked meanwhile. */
  answered(correlationId: string, data: Uint8Array): void {
    const waiting = this.waiting.get(correlationId);
    if (waiting) {
      this.waiting.delete(correlationId);
      for (const reply of waiting) this.send(reply, data);
    }
    const now = Date.now();
    this.evict(now);
    if (data.byteLength > this.limits.maxBytes) return;
    this.forget(correlationId);
    this.answers.set(correlationId, { data, at: now });
    this.bytes += data.byteLength;
    this.evict(now);
  }

  /**
   * A gateway's lookup of call `correlationId`, to be answered on `reply`: the kept answer; or, for a
   * call `running` here, "waiting" (the answer goes to `reply` when it comes); else "unknown".
   */
  lookup(correlationId: string, reply: string, running: boolean): LookupOutcome {
    this.evict(Date.now());
    const kept = this.answers.get(correlationId);
    if (kept) return { answer: kept.data };
    if (!running) return "unknown";
    let waiting = this.waiting.get(correlationId);
    if (!waiting) {
      waiting = new Set();
      this.waiting.set(correlationId, waiting);
    }
    waiting.add(reply);
    return "waiting";
  }

  /** A call ended here (a durable one's answer is not kept: it is in the result store): nobody waits for it here any more. */
  ended(correlationId: string): void {
    if (this.waiting.size > 0) this.waiting.delete(correlationId);
  }

  get size(): number {
    return this.answers.size;
  }

  private forget(correlationId: string): void {
    const kept = this.answers.get(correlationId);
    if (!kept) return;
    this.answers.delete(correlationId);
    this.bytes -= kept.data.byteLength;
  }

  private evict(now: number): void {
    const { maxAgeMs, maxBytes, maxCount } = this.limits;
    for (const [correlationId, kept] of this.answers) {
      if (now - kept.at <= maxAgeMs && this.bytes <= maxBytes && this.answers.size <= maxCount) return;
      this.answers.delete(correlationId);
      this.bytes -= kept.data.byteLength;
    }
  }
}

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

/** One kept answer; the queue may hold an entry the map no longer does (answered again, or forgotten). */
interface Kept {
  readonly correlationId: string;
  readonly data: Uint8Array;
  readonly at: number;
}

export class RecentAnswers {
  /** By correlation id. */
  private readonly answers = new Map<string, Kept>();
  /**
   * The same answers, oldest first, for eviction: iterating the map from its start would step over
   * every entry deleted since its last rehash (thousands once the count bound is reached), on every call.
   */
  private queue: (Kept | undefined)[] = [];
  private head = 0;
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
    if (this.waiting.size > 0) {
      const waiting = this.waiting.get(correlationId);
      if (waiting) {
        this.waiting.delete(correlationId);
        for (const reply of waiting) this.send(reply, data);
      }
    }
    const now = Date.now();
    if (data.byteLength > this.limits.maxBytes) {
      this.evict(now);
      return;
    }
    this.forget(correlationId);
    // An envelope encoded from Node's shared pool is a view of a larger buffer, which keeping it would
    // keep whole: a copy of its own keeps the bytes the bounds count, and no more.
    const own = data.byteLength === data.buffer.byteLength ? data : new Uint8Array(data);
    const kept: Kept = { correlationId, data: own, at: now };
    this.answers.set(correlationId, kept);
    this.queue.push(kept);
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

  /** Drops the oldest answers while one is too old or the bounds are exceeded. */
  private evict(now: number): void {
    const { maxAgeMs, maxBytes, maxCount } = this.limits;
    const queue = this.queue;
    while (this.head < queue.length) {
      const kept = queue[this.head]!;
      const current = this.answers.get(kept.correlationId) === kept;
      if (current && now - kept.at <= maxAgeMs && this.bytes <= maxBytes && this.answers.size <= maxCount) break;
      if (current) this.forget(kept.correlationId);
      queue[this.head++] = undefined;
    }
    // The queue's dropped head is cut off once it is most of the queue (amortized: each entry is copied about once).
    if (this.head > 1024 && this.head * 2 > queue.length) {
      this.queue = queue.slice(this.head);
      this.head = 0;
    }
  }
}

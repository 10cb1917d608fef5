/**
 * Answers published together, once the event loop has run the I/O callbacks at hand. nats.js writes
 * what was published within one microtask turn in one socket write, but a serving instance finishes
 * its calls in separate I/O callbacks (one per upstream response), so each answer cost a write of
 * its own. Queued and published in one `setImmediate`, the answers finished in one turn of the loop
 * share one write. The answer waits for nothing else: the loop's check phase follows its poll phase
 * (and the endpoint flushes at once the answer of the only call in flight).
 */
import type { Logger } from "../util/index.js";

/** Publishes one answer (a NATS reply). */
type Send = () => void;

export class ReplyBatch {
  private queue: Send[] = [];
  private scheduled = false;

  constructor(private readonly logger: Logger) {}

  /** Publishes `send` with the other answers of this turn of the event loop. */
  add(send: Send): void {
    this.queue.push(send);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  /** Publishes what is queued now (when the endpoint stops, before its connection may close). */
  flush(): void {
    this.scheduled = false;
    const queue = this.queue;
    if (queue.length === 0) return;
    this.queue = [];
    for (const send of queue) {
      try {
        send();
      } catch (err) {
        // The connection closed meanwhile: the caller's wait ends by its deadline or the instance's loss.
        this.logger.debug({ err }, "could not send an answer");
      }
    }
  }
}

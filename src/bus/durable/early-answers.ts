/**
 * Answers sent before they are stored (PROTOCOL.md §15.5): while the result store elects a leader
 * (seconds, after the node leading it died) it takes no writes, and waiting for it would stop every
 * durable answer. An answer whose store write was refused for want of a leader is sent at once and
 * kept here until the store takes it; its request is acknowledged only then, so a replica that dies
 * meanwhile leaves the request in the queue, as before.
 *
 * One call probes the store at a time, so that a thousand waiting answers do not each ask every
 * 250 ms; once one is stored, the rest are stored together.
 */
import { causedBy, isNoResponders } from "../connection.js";
import { sleep, type Logger } from "../../util/index.js";

/** An answer sent before it was stored. */
export interface EarlyAnswer {
  /** Stores the answer (the first stored for its call stays the answer). */
  store: () => Promise<unknown>;
  /** Reports progress to the server, so that the request is not delivered again meanwhile. */
  keepAlive: () => void;
  /** Stored: the request may be acknowledged. */
  stored: () => void;
  /** Until when storing is tried; then the request is left to be delivered again. */
  until: number;
}

export interface EarlyAnswersOptions {
  keepAliveMs: number;
  retryMs: number;
  logger: Logger;
}

export class EarlyAnswers {
  /** Not stored yet, in the order they came: the first is the probe. */
  private readonly waiting: EarlyAnswer[] = [];
  /** Not stored yet, including those being stored now: their requests' progress is reported. */
  private readonly held = new Set<EarlyAnswer>();
  private flushing: Promise<void> | undefined;

  constructor(private readonly options: EarlyAnswersOptions) {}

  /** Keeps storing `answer` until the store takes it; resolves once the store took every answer kept, or they were given up. */
  add(answer: EarlyAnswer): Promise<void> {
    this.waiting.push(answer);
    this.held.add(answer);
    this.flushing ??= this.flush();
    return this.flushing;
  }

  private async flush(): Promise<void> {
    const keepAlive = setInterval(() => {
      for (const answer of this.held) answer.keepAlive();
    }, this.options.keepAliveMs);
    try {
      while (this.waiting.length > 0) {
        const probe = this.waiting[0]!;
        if (await this.tryStore(probe)) {
          // The store takes writes again: the rest together.
          if (this.waiting.length > 0) this.options.logger.debug({ answers: this.waiting.length + 1 }, "the result store takes writes again: storing the answers sent before");
          await Promise.all(this.waiting.splice(0).map(async (answer) => (await this.tryStore(answer)) || this.waiting.push(answer)));
        }
        if (this.waiting.length > 0) await sleep(this.options.retryMs);
      }
    } finally {
      clearInterval(keepAlive);
      // In the same turn as the loop's last look at `waiting`: an answer added later starts a new flush.
      this.flushing = undefined;
    }
  }

  /** Stores one answer; resolves whether it is settled (stored, or given up on). */
  private async tryStore(answer: EarlyAnswer): Promise<boolean> {
    try {
      await answer.store();
      this.remove(answer);
      answer.stored();
      return true;
    } catch (err) {
      if (Date.now() < answer.until) return false;
      this.remove(answer);
      this.options.logger.warn({ err }, "could not store an answer already sent; its request will be delivered again");
      return true;
    }
  }

  private remove(answer: EarlyAnswer): void {
    this.held.delete(answer);
    const index = this.waiting.indexOf(answer);
    if (index >= 0) this.waiting.splice(index, 1);
  }
}

/**
 * Whether a write was refused for want of a stream leader: a server refuses it at once (no
 * responders) while the stream elects one. nats.js wraps the refusal in a "JetStream not enabled"
 * error whose cause says so. A write that went unanswered is not counted: it may still be stored.
 */
export function isLeaderless(error: unknown): boolean {
  return causedBy(error, isNoResponders);
}

/**
 * One subscription of an agent to a context topic (or topic pattern): live (core NATS, only what is
 * published from now on) or durable (a JetStream consumer that remembers its position, so the agent
 * catches up on what it missed while it was away). Either way the handler sees updates one at a time,
 * in order.
 */
import type { BadContextMessage, BusSubscription, ContextEntry, ContextStreams, ReplayFrom } from "../bus/index.js";
import type { ContextUpdate } from "../protocol/index.js";
import type { Logger } from "../util/index.js";

/** One context update as a handler sees it. */
export interface ContextEvent {
  topic: string;
  /** The stream sequence (durable subscriptions and history; live updates have none). */
  seq?: number;
  time: Date;
  /** `payload.data` of the update. */
  data: unknown;
  /** Who published it. */
  sender: string;
  envelope: ContextUpdate;
}

export type ContextHandler = (event: ContextEvent) => unknown;

export interface SubscribeOptions {
  /**
   * false (default): live, only updates published while subscribed. true: a durable consumer (named
   * after the agent, so replicas share it) that delivers what was published while the agent was away;
   * an update whose handler throws is delivered again.
   */
  durable?: boolean;
  /** Durable only: another consumer name, for a second durable subscription to the same topic. */
  durableName?: string;
  /** Durable only: where a new consumer starts ("new" by default); an existing one keeps its position. */
  from?: ReplayFrom;
}

export interface AgentSubscription {
  /** Resolves once updates flow (the agent starts subscriptions made before start() itself). */
  readonly ready: Promise<void>;
  stop(): Promise<void>;
}

export function toEvent(entry: ContextEntry | Omit<ContextEntry, "seq">): ContextEvent {
  return {
    topic: entry.topic,
    ...("seq" in entry ? { seq: entry.seq } : {}),
    time: entry.time,
    data: entry.envelope.payload.data,
    sender: entry.envelope.sender_id,
    envelope: entry.envelope,
  };
}

export interface TopicSubscriptionOptions {
  streams: ContextStreams;
  pattern: string;
  handler: ContextHandler;
  durable: boolean;
  durableName: string;
  from?: ReplayFrom | undefined;
  logger: Logger;
  onBad: (bad: BadContextMessage) => void;
  /** Waits until the server has the live subscription, so that ready means "nothing is missed from now". */
  flush: () => Promise<void>;
  /** How long stop() waits for a handler still running. */
  graceMs: number;
}

export class TopicSubscription {
  /** Settles when the subscription opened (or failed to); resolves too if it is stopped before opening. */
  readonly ready: Promise<void>;
  private settleReady!: { resolve: () => void; reject: (err: unknown) => void };
  private live: BusSubscription | undefined;
  private consumer: { stop(): Promise<void> } | undefined;
  /** Live updates are chained so that a slow handler does not see them out of order. */
  private queue: Promise<void> = Promise.resolve();
  private started: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly options: TopicSubscriptionOptions) {
    this.ready = new Promise<void>((resolve, reject) => (this.settleReady = { resolve, reject }));
  }

  /** Opens the subscription (once); failures reject `ready` as well. */
  start(): Promise<void> {
    this.started ??= this.open().then(this.settleReady.resolve, (err: unknown) => {
      this.settleReady.reject(err);
      throw err;
    });
    return this.started;
  }

  private async open(): Promise<void> {
    const { streams, pattern, onBad } = this.options;
    if (this.options.durable) {
      const consumer = await streams.consume(this.options.durableName, pattern, (entry) => this.run(toEvent(entry), true), {
        ...(this.options.from !== undefined ? { from: this.options.from } : {}),
        onBad,
      });
      this.consumer = consumer;
    } else {
      this.live = streams.watch(pattern, (entry) => this.enqueue(toEvent(entry)), onBad);
      await this.options.flush();
    }
    // stop() may have come while the consumer was being created.
    if (this.stopped) await this.close();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (!this.started) this.settleReady.resolve();
    else await this.started.catch(() => undefined);
    await this.close();
  }

  private async close(): Promise<void> {
    this.live?.unsubscribe();
    this.live = undefined;
    const consumer = this.consumer;
    this.consumer = undefined;
    const grace = new Promise<void>((resolve) => setTimeout(resolve, this.options.graceMs).unref());
    await Promise.race([Promise.all([this.queue, consumer?.stop()]), grace]);
  }

  private enqueue(event: ContextEvent): void {
    this.queue = this.queue.then(() => this.run(event, false));
  }

  /** Live: a failed handler is logged and the next update goes on. Durable: it throws, so the update is redelivered. */
  private async run(event: ContextEvent, rethrow: boolean): Promise<void> {
    try {
      await this.options.handler(event);
    } catch (err) {
      if (rethrow) throw err;
      this.options.logger.warn({ err, topic: event.topic }, "context handler failed");
    }
  }
}

/**
 * Context streams (dMCP-Streams): every `context_update` on `dmcp.v1.ctx.<topic>` is kept in one
 * JetStream stream with limits (age, size, count), so that topics can be read (latest value),
 * replayed from a sequence or a time, in order, and consumed durably by agents that were away.
 */
import { AckPolicy, DeliverPolicy, RetentionPolicy, type ConsumerMessages, type JetStreamClient, type JetStreamManager, type JsMsg } from "@nats-io/jetstream";
import { BusError, CONTEXT_STREAM, createEnvelope, type DmcpError, ErrorCode, RequestError, subjects, topicOfSubject, type ContextUpdate } from "../protocol/index.js";
import { Counter, type Registry } from "prom-client";
import { shared } from "../metrics/index.js";
import { isPermissionDenied, natsConnectionOf, type Bus, type BusSubscription } from "./connection.js";
import { jetStreamManagerOf, jetStreamOf, streamPlacementOf } from "./jetstream.js";
import { ensureStream, type StreamSpec } from "./streams.js";

/** How many earlier stream messages `latest` looks through for a valid update when a topic's newest is invalid. */
const LATEST_LOOKBACK = 256;

export interface ContextRetention {
  /** Updates older than this are dropped. */
  maxAgeMs?: number;
  /** The stream keeps at most this many bytes (oldest dropped first). */
  maxBytes?: number;
  /** The stream keeps at most this many updates. */
  maxMessages?: number;
  /** Each topic keeps at most this many updates. */
  maxMessagesPerTopic?: number;
}

export const DEFAULT_RETENTION: Required<ContextRetention> = {
  maxAgeMs: 7 * 24 * 3600 * 1000,
  maxBytes: 1024 * 1024 * 1024,
  maxMessages: 1_000_000,
  maxMessagesPerTopic: 10_000,
};

/** One stored update: the envelope plus where and when the stream stored it. */
export interface ContextEntry {
  topic: string;
  seq: number;
  time: Date;
  envelope: ContextUpdate;
}

/** A message on a context subject that is not a valid context_update for that topic. */
export interface BadContextMessage {
  subject: string;
  seq?: number;
  error: DmcpError;
}

export type ReplayFrom = { seq: number } | { time: Date } | "all" | "new";

const NANOS_PER_MS = 1_000_000;
const DEFAULT_MAX_DELIVER = 5;

/**
 * The durable consumer of an agent and a topic pattern. `_` escapes, so that different patterns
 * (`a.b_c` and `a.b.c`, `x.*` and `x.>`) never share a consumer.
 */
export function durableName(agent: string, pattern: string): string {
  const escaped = pattern.replace(/[_.*>]/g, (c) => ({ _: "_u", ".": "_d", "*": "_s", ">": "_g" })[c]!);
  return `${agent.replace(/_/g, "_u")}-${escaped}`;
}
const DUPLICATE_WINDOW_MS = 2 * 60 * 1000;

export const CONTEXT_STREAM_SPEC: StreamSpec = { name: CONTEXT_STREAM, subjects: [subjects.contextAll()], retention: RetentionPolicy.Limits };

export class ContextStreams {
  private jsm: JetStreamManager | undefined;
  private readonly js: JetStreamClient;
  private readonly metrics: ConsumerMetrics | undefined;
  private watches = 0;

  /** `metrics`: where durable consumers count redeliveries and updates given up (dead letters). */
  constructor(
    private readonly bus: Bus,
    private readonly sender: string,
    metrics?: Registry,
  ) {
    this.js = jetStreamOf(bus);
    this.metrics = metrics ? shared(metrics, "context-consumers", () => new ConsumerMetrics(metrics)) : undefined;
  }

  /**
   * The gateway's: creates the stream unless it exists and checks it (streams.ts); sets its limits when
   * `retention` is given (the gateway owns them), else leaves an existing stream's limits as they are.
   */
  async ensureStream(retention?: ContextRetention): Promise<void> {
    const jsm = await this.manager();
    const limits = { ...DEFAULT_RETENTION, ...retention };
    const config = {
      name: CONTEXT_STREAM,
      subjects: CONTEXT_STREAM_SPEC.subjects,
      retention: CONTEXT_STREAM_SPEC.retention,
      max_age: limits.maxAgeMs * NANOS_PER_MS,
      max_bytes: limits.maxBytes,
      max_msgs: limits.maxMessages,
      max_msgs_per_subject: limits.maxMessagesPerTopic,
      duplicate_window: Math.min(DUPLICATE_WINDOW_MS, limits.maxAgeMs) * NANOS_PER_MS,
    };
    const info = await ensureStream(jsm, CONTEXT_STREAM_SPEC, (num_replicas) => jsm.streams.add({ ...config, num_replicas }), streamPlacementOf(this.bus));
    // Made just now, by this call or another participant's, or long ago: the limits are the gateway's,
    // the replicas the stream's own (an update without them would shrink it to one).
    if (retention) await jsm.streams.update(CONTEXT_STREAM, { ...config, num_replicas: info.config.num_replicas });
  }

  /** Publishes one update; resolves with the stream sequence once JetStream stored it. */
  async publish(topic: string, data: unknown, options: { sessionId?: string; correlationId?: string } = {}): Promise<{ seq: number; envelope: ContextUpdate }> {
    const envelope = createEnvelope("context_update", { topic, data }, { sender: this.sender, ...options });
    const subject = subjects.context(topic);
    const ack = await this.js.publish(subject, this.bus.codec.encode(envelope), { msgID: envelope.id }).catch((cause: unknown) => {
      if (isPermissionDenied(cause)) {
        throw new RequestError(ErrorCode.Forbidden, `the NATS server denied publishing to ${subject}: this participant's NATS user may not publish on ${topic}`, {
          cause,
          data: { topic, subject },
        });
      }
      throw new BusError(ErrorCode.BusUnavailable, `could not store the update of ${topic}: ${(cause as Error).message}`, { cause });
    });
    return { seq: ack.seq, envelope };
  }

  /**
   * The latest valid update of a topic, or undefined when it has none. An invalid newest message is
   * reported through `onBad` and passed over for the valid one before it (looked for among the stream's
   * previous LATEST_LOOKBACK messages), so that one bad publisher cannot hide a topic; with none
   * there, its error is thrown.
   */
  async latest(topic: string, onBad?: (bad: BadContextMessage) => void): Promise<ContextEntry | undefined> {
    const jsm = await this.manager();
    const subject = subjects.context(topic);
    const stored = await jsm.streams.getMessage(CONTEXT_STREAM, { last_by_subj: subject }).catch(() => null);
    if (!stored) return undefined;
    const newest = this.toEntry(stored.subject, stored.seq, stored.time, stored.data);
    if (!("error" in newest)) return newest;
    onBad?.({ subject, seq: stored.seq, error: newest.error });
    for (let seq = stored.seq - 1; seq > 0 && seq >= stored.seq - LATEST_LOOKBACK; seq--) {
      const earlier = await jsm.streams.getMessage(CONTEXT_STREAM, { seq }).catch(() => null);
      if (earlier?.subject !== subject) continue;
      const entry = this.toEntry(earlier.subject, earlier.seq, earlier.time, earlier.data);
      if (!("error" in entry)) return entry;
      onBad?.({ subject, seq, error: entry.error });
    }
    throw newest.error;
  }

  /** Every topic the stream holds, with its number of stored updates. */
  async topics(): Promise<Map<string, number>> {
    const jsm = await this.manager();
    const info = await jsm.streams.info(CONTEXT_STREAM, { subjects_filter: subjects.contextAll() }).catch(() => undefined);
    const out = new Map<string, number>();
    for (const [subject, count] of Object.entries(info?.state.subjects ?? {})) {
      const topic = topicOfSubject(subject);
      if (topic) out.set(topic, count);
    }
    return out;
  }

  /**
   * Stored updates of a topic, oldest first, from a sequence or a time, at most `limit`. Invalid
   * messages are skipped and reported through `onBad`.
   */
  async history(topic: string, options: { from?: ReplayFrom; limit?: number; onBad?: (bad: BadContextMessage) => void } = {}): Promise<ContextEntry[]> {
    const limit = Math.max(1, Math.min(options.limit ?? 100, 10_000));
    const consumer = await this.js.consumers.get(CONTEXT_STREAM, {
      filter_subjects: subjects.context(topic),
      ...deliverFrom(options.from ?? "all"),
    });
    const pending = (await consumer.info()).num_pending;
    const entries: ContextEntry[] = [];
    if (pending === 0) return entries;
    const batch = await consumer.fetch({ max_messages: Math.min(limit, pending), expires: 5000 });
    for await (const msg of batch) {
      const entry = this.toEntry(msg.subject, msg.seq, new Date(msg.info.timestampNanos / NANOS_PER_MS), msg.data);
      if ("error" in entry) options.onBad?.({ subject: msg.subject, seq: msg.seq, error: entry.error });
      else entries.push(entry);
      if (msg.info.pending === 0 || entries.length >= limit) break;
    }
    await batch.close().catch(() => undefined);
    return entries;
  }

  /** Live updates of topics matching a pattern (`*` and `>` wildcards), as they are published. */
  watch(pattern: string, onUpdate: (entry: Omit<ContextEntry, "seq">) => void, onBad?: (bad: BadContextMessage) => void): BusSubscription {
    // Each watch is a receiver of its own: two watches may see the same update (overlapping patterns).
    const receiver = `${this.sender}-watch-${++this.watches}`;
    return natsConnectionOf(this.bus).subscribe(subjects.contextPattern(pattern), {
      callback: (err, msg) => {
        if (err) return;
        try {
          const entry = this.toEntry(msg.subject, 0, new Date(), msg.data, receiver);
          if ("error" in entry) onBad?.({ subject: msg.subject, error: entry.error });
          else onUpdate(entry);
        } catch (error) {
          this.bus.logger.warn({ err: error, subject: msg.subject }, "context watcher failed");
        }
      },
    });
  }

  /**
   * A durable subscription: the stream remembers what `name` has processed, so updates published
   * while it was away are delivered when it returns, in order. Each update is acknowledged after
   * `onUpdate` resolves; one that throws is delivered again (up to `maxDeliver` times).
   */
  async consume(
    name: string,
    pattern: string,
    onUpdate: (entry: ContextEntry) => Promise<void> | void,
    options: { from?: ReplayFrom; maxDeliver?: number; onBad?: (bad: BadContextMessage) => void } = {},
  ): Promise<{ stop(): Promise<void>; done: Promise<void> }> {
    const jsm = await this.manager();
    const durable = durableName(name, pattern);
    await jsm.consumers
      .add(CONTEXT_STREAM, {
        durable_name: durable,
        filter_subject: subjects.contextPattern(pattern),
        ack_policy: AckPolicy.Explicit,
        // One update outstanding at a time: a failed update is retried before any later one.
        max_ack_pending: 1,
        ack_wait: 30_000 * NANOS_PER_MS,
        max_deliver: options.maxDeliver ?? DEFAULT_MAX_DELIVER,
        ...deliverFrom(options.from ?? "new"),
      })
      .catch(async (err: unknown) => {
        // It exists already: keep its position (that is the point of a durable).
        if (!(await jsm.consumers.info(CONTEXT_STREAM, durable).catch(() => undefined))) throw err;
      });
    const consumer = await this.js.consumers.get(CONTEXT_STREAM, durable);
    // One message at a time: handlers run in order and may be slow, and a prefetched message would
    // sit out its ack wait in our buffer and be delivered twice.
    const messages: ConsumerMessages = await consumer.consume({ max_messages: 1 });
    const done = (async () => {
      for await (const msg of messages) await this.deliver(durable, msg, onUpdate, options.onBad, options.maxDeliver ?? DEFAULT_MAX_DELIVER);
    })().catch((err: unknown) => this.bus.logger.warn({ err, durable }, "durable context consumer ended"));
    return {
      done,
      async stop() {
        await messages.close().catch(() => undefined);
        await done;
      },
    };
  }

  private async deliver(
    consumer: string,
    msg: JsMsg,
    onUpdate: (entry: ContextEntry) => Promise<void> | void,
    onBad: ((bad: BadContextMessage) => void) | undefined,
    maxDeliver: number,
  ): Promise<void> {
    const entry = this.toEntry(msg.subject, msg.seq, new Date(msg.info.timestampNanos / NANOS_PER_MS), msg.data);
    if ("error" in entry) {
      // A bad message is reported once and acknowledged: redelivering it cannot make it valid.
      onBad?.({ subject: msg.subject, seq: msg.seq, error: entry.error });
      msg.ack();
      return;
    }
    // A long handler tells the server it is still working, so the update is not redelivered meanwhile.
    const working = setInterval(() => msg.working(), 10_000);
    try {
      await onUpdate(entry);
      msg.ack();
    } catch (err) {
      if (msg.info.deliveryCount >= maxDeliver) {
        // The server delivers it no more; say so loudly rather than lose it in silence.
        this.bus.logger.error({ err, topic: entry.topic, seq: msg.seq, attempts: msg.info.deliveryCount }, "context handler failed on every attempt; giving up on this update");
        msg.term();
        this.metrics?.deadLetters.inc({ consumer });
        return;
      }
      this.metrics?.redeliveries.inc({ consumer });
      this.bus.logger.warn({ err, topic: entry.topic, seq: msg.seq }, "context handler failed; the update will be delivered again");
      msg.nak(1000);
    } finally {
      clearInterval(working);
    }
  }

  /**
   * Verifies and validates one message: a context_update envelope whose topic is its subject's. A live
   * message (`liveReceiver` given) is judged by the reader's clock, a stored one by the time the
   * stream stored it: history is re-read legitimately long after it was published.
   */
  private toEntry(subject: string, seq: number, time: Date, data: Uint8Array, liveReceiver?: string): ContextEntry | { error: DmcpError } {
    const topic = topicOfSubject(subject);
    if (!topic) return { error: new RequestError(ErrorCode.InvalidEnvelope, `${subject} is not a context subject`) };
    const decoded = this.bus.codec.decode(data, liveReceiver ? { receiver: liveReceiver } : { receiver: `${this.sender}-stored`, stored: { at: time, tag: seq } });
    if (!decoded.ok) return { error: decoded.error };
    const envelope = decoded.envelope;
    if (envelope.type !== "context_update") {
      return { error: new RequestError(ErrorCode.InvalidEnvelope, `expected a context_update on ${subject}, got ${envelope.type}`) };
    }
    if (envelope.payload.topic !== undefined && envelope.payload.topic !== topic) {
      return { error: new RequestError(ErrorCode.InvalidEnvelope, `payload.topic ${envelope.payload.topic} does not match the subject's topic ${topic}`) };
    }
    return { topic, seq, time, envelope };
  }

  private async manager(): Promise<JetStreamManager> {
    this.jsm ??= await jetStreamManagerOf(this.bus);
    return this.jsm;
  }
}

class ConsumerMetrics {
  readonly redeliveries: Counter<string>;
  readonly deadLetters: Counter<string>;

  constructor(registry: Registry) {
    this.redeliveries = new Counter({
      name: "dmcp_context_redeliveries_total",
      help: "Context updates handed back for redelivery after their handler failed, by durable consumer",
      labelNames: ["consumer"],
      registers: [registry],
    });
    this.deadLetters = new Counter({
      name: "dmcp_context_dead_letters_total",
      help: "Context updates given up after their last delivery attempt failed, by durable consumer",
      labelNames: ["consumer"],
      registers: [registry],
    });
  }
}

function deliverFrom(from: ReplayFrom): { deliver_policy: DeliverPolicy; opt_start_seq?: number; opt_start_time?: string } {
  if (from === "all") return { deliver_policy: DeliverPolicy.All };
  if (from === "new") return { deliver_policy: DeliverPolicy.New };
  if ("seq" in from) return { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: Math.max(1, from.seq) };
  return { deliver_policy: DeliverPolicy.StartTime, opt_start_time: from.time.toISOString() };
}

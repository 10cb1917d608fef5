/**
 * The executor side of durable delivery (PROTOCOL.md §15): takes a service's requests from its two
 * lane consumers of the work stream, serves each through the service's ServiceEndpoint (the same
 * decoding, checks and execution as a direct request), and only then settles it:
 *
 * - an answer (a result, a tool error, an upstream JSON-RPC error, an expired deadline) is stored in
 *   the result store, published to the request's `reply_to`, and acknowledged, in that order (while
 *   the store has no leader, published first and stored as soon as it has one: early-answers.ts);
 * - a failure of this replica or its upstream (down, closed mid-call, shutting down) is handed back
 *   with a delay (nak) for another attempt, until the last attempt, which is dead-lettered; how each
 *   delivery ended is recorded in the result store, so that the dead letter can say what happened;
 * - a request whose answer is already stored (it ran before, or was cancelled) is answered from the
 *   store and not run again.
 */
import type { Consumer, ConsumerMessages, JetStreamClient, JsMsg } from "@nats-io/jetstream";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import {
  decodeEnvelope,
  type DmcpError,
  ErrorCode,
  PRIORITY_LANES,
  RequestError,
  salvageIds,
  subjects,
  WORK_STREAM,
  workConsumer,
  type PriorityLane,
  type PromptRequest,
} from "../../protocol/index.js";
import { sleep, type Logger } from "../../util/index.js";
import { Counter, type Registry } from "prom-client";
import { shared } from "../../metrics/index.js";
import { Admission } from "./admission.js";
import { natsConnectionOf, type Bus } from "../connection.js";
import { jetStreamManagerOf, jetStreamOf } from "../jetstream.js";
import { DeadLetters, retriesExhausted } from "./dead-letters.js";
import { EarlyAnswers, isLeaderless } from "./early-answers.js";
import type { Delivery, ServiceEndpoint } from "../endpoint.js";
import { deliveryOutcomes, isSuspect, markSuspect, recordDelivery, ResultStore, type DeliveryOutcome } from "./result-store.js";
import { backoffDelay, ensureLaneConsumer, serverFeatures, type DurableSettings, type ServerFeatures } from "./work-queue.js";

/**
 * Pull requests of 5 s with idle heartbeats every 2.5 s (nats.js's default for that expiry): a pull
 * left on a server that died, or on a consumer leader that died, is seen missing after two heartbeats
 * and made again at once (the consumer is bound, below). Shorter heartbeats would see it sooner, but a
 * server drops the pull of an executor that died at its next heartbeat, and the max-deliveries
 * advisory of a request that executor held on its last attempt needs a pull still waiting when the
 * ack wait ends (PROTOCOL.md §15.6): with none left, the request stays in the queue.
 */
const PULL_EXPIRES_MS = 5_000;
const PULL_HEARTBEAT_MS = 2_500;
/** Missed heartbeats (at PULL_HEARTBEAT_MS) after which the worker checks that its consumer still exists. */
const CHECK_CONSUMER_AFTER_MISSED = 4;
/** How long asking for the lane consumer may take, and the pause before asking again (it may be electing a leader). */
const CONSUMER_INFO_TIMEOUT_MS = 1_000;
const CONSUMER_RETRY_MS = 250;
/** How long an answer is retried into the result store through a loss of the server, and the pause between tries. */
const STORE_RETRY_MS = 30_000;
const STORE_RETRY_PAUSE_MS = 250;

/** How long a durable call that found its upstream down waits for it before being handed back. */
const UPSTREAM_WAIT_MS = 30_000;

/** Failures of this replica or its upstream, not answers: another attempt may succeed. */
const RETRYABLE = new Set<string>([ErrorCode.UpstreamUnavailable, ErrorCode.UpstreamClosed, ErrorCode.ShuttingDown, ErrorCode.BusUnavailable, ErrorCode.Internal]);
/** Failures that come before the call reaches the upstream: the delivery did not run it. */
const NOT_RUN = new Set<string>([ErrorCode.UpstreamUnavailable, ErrorCode.ShuttingDown]);

export interface DurableWorkerOptions {
  bus: Bus;
  service: string;
  instance: string;
  logger: Logger;
  endpoint: ServiceEndpoint;
  settings: DurableSettings;
  /** False while the upstream is down: no work is taken then (each delivery would use up an attempt). */
  canServe: () => boolean;
  /** Where to count what happens to durable requests (`dmcp_durable_requests_total`). */
  metrics?: Registry | undefined;
}

/** What a worker did since it started. */
export interface DurableWorkerStats {
  answered: number;
  /** Answered from the result store instead of running again. */
  replayed: number;
  /** Handed back for another attempt. */
  retried: number;
  deadLettered: number;
}

export class DurableWorker {
  private readonly nc: NatsConnection;
  /** Asks for lane consumers with a short timeout: while one has no leader, the loop asks again soon. */
  private readonly js: JetStreamClient;
  private readonly admission: Admission;
  /** Each lane's current messages: ended when a leader is elected (the lane pulls again at once) and when the worker stops. */
  private readonly pulling = new Map<PriorityLane, ConsumerMessages>();
  private readonly elections: Subscription[] = [];
  private readonly inflight = new Set<Promise<void>>();
  private readonly loops: Promise<void>[] = [];
  private results: ResultStore | undefined;
  private readonly earlyAnswers: EarlyAnswers;
  private deadLetters: DeadLetters | undefined;
  private features: ServerFeatures | undefined;
  private stopping = false;
  /** Suspects (calls whose upstream died while they ran) run one at a time on this replica. */
  private suspectQueue: Promise<void> = Promise.resolve();
  readonly stats: DurableWorkerStats = { answered: 0, replayed: 0, retried: 0, deadLettered: 0 };
  private readonly counter: Counter<string> | undefined;

  constructor(private readonly options: DurableWorkerOptions) {
    this.nc = natsConnectionOf(options.bus);
    this.js = jetStreamOf(options.bus, { timeout: CONSUMER_INFO_TIMEOUT_MS });
    this.admission = new Admission(options.settings.concurrency, options.canServe);
    this.earlyAnswers = new EarlyAnswers({ keepAliveMs: keepAliveOf(options.settings), retryMs: STORE_RETRY_PAUSE_MS, logger: options.logger });
    const registry = options.metrics;
    this.counter = registry
      ? shared(
          registry,
          "durable-requests",
          () =>
            new Counter({
              name: "dmcp_durable_requests_total",
              help: "Durable requests settled by this executor, by outcome: answered, replayed (from the result store), retried, dead_lettered",
              labelNames: ["service", "outcome"],
              registers: [registry],
            }),
        )
      : undefined;
  }

  private count(outcome: keyof DurableWorkerStats): void {
    this.stats[outcome]++;
    this.counter?.inc({ service: this.options.service, outcome: outcome === "deadLettered" ? "dead_lettered" : outcome });
  }

  get inflightCount(): number {
    return this.inflight.size;
  }

  /** Takes work from the streams and the result store a gateway created (WORK_STREAMS, RESULTS_STREAM). */
  async start(): Promise<void> {
    const { bus, service, settings } = this.options;
    this.features = serverFeatures(this.nc);
    const jsm = await jetStreamManagerOf(bus);
    for (const lane of PRIORITY_LANES) await ensureLaneConsumer(jsm, service, lane, settings);
    this.results = await ResultStore.bind(bus);
    this.deadLetters = new DeadLetters(bus, this.options.instance, this.results);
    bus.tolerateDenial(subjects.maxDeliveriesAdvisory(), "this executor may not take max-deliveries advisories; gateways take them (deploy/nats/dmcp-permissions.conf)");
    this.deadLetters.watch();
    this.watchElections();
    for (const lane of PRIORITY_LANES) this.loops.push(this.consume(lane));
    this.options.logger.info({ server: this.features.version, ...settings }, "taking durable requests");
  }

  /** The executor can serve again (or no longer): admit waiting work accordingly. */
  wake(): void {
    this.admission.wake();
  }

  /** Takes no more work (a request held for a slot goes back to the queue); waits for the calls running. */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    this.admission.close();
    await Promise.allSettled([...this.pulling.values()].map((messages) => messages.close()));
    this.deadLetters?.stop();
    for (const subscription of this.elections) subscription.unsubscribe();
    const grace = new Promise((resolve) => setTimeout(resolve, graceMs).unref());
    await Promise.race([Promise.allSettled([...this.inflight, ...this.loops]), grace]);
  }

  /**
   * One lane's loop. It holds at most one message while that waits for a slot (kept alive with
   * `working()`); the backlog stays in the stream, where other replicas can take it.
   */
  private async consume(lane: PriorityLane): Promise<void> {
    const { service, settings, logger } = this.options;
    const keepAliveMs = keepAliveOf(settings);
    let failures = 0;
    // Kept across pulls refused for want of a leader: asking for it again would wait for the election too.
    let consumer: Consumer | undefined;
    while (!this.stopping) {
      try {
        consumer ??= await this.js.consumers.get(WORK_STREAM, workConsumer(service, lane));
        failures = 0;
        // Bound, nats.js pulls again at once after a reconnection or missed heartbeats, where it would
        // otherwise first ask for the consumer's info: while the consumer has no leader (an election,
        // seconds) that request times out, and nats.js then waits 0.5 to 1.5 times `expires` to ask again.
        // Whether the consumer is there is checked here instead (watchStatus).
        const messages = await consumer.consume({ max_messages: 1, expires: PULL_EXPIRES_MS, idle_heartbeat: PULL_HEARTBEAT_MS, bind: true });
        this.pulling.set(lane, messages);
        const watched = this.watchStatus(messages, lane);
        if (this.stopping) await messages.close();
        for await (const msg of messages) {
          // A request on its last attempt is held rather than handed back: handing it back would use that attempt up.
          const maxHoldMs = msg.info.deliveryCount >= settings.maxDeliver ? Number.POSITIVE_INFINITY : settings.ackWaitMs;
          const admitted = await this.admission.enter(lane, () => msg.working(), keepAliveMs, maxHoldMs);
          if (!admitted) {
            // Another replica may serve it now; this one pulls nothing more until it can serve.
            // Still reporting progress: a delivery that timed out meanwhile would go to another replica, and
            // this nak would then hand back that replica's delivery (the server matches it by sequence).
            const holding = setInterval(() => msg.working(), keepAliveMs);
            await this.record(correlationOfMessage(msg), msg.info.deliveryCount, notRun(this.stopping)).finally(() => clearInterval(holding));
            msg.nak();
            await this.admission.untilServing(UPSTREAM_WAIT_MS * 10);
            continue;
          }
          this.track(this.process(msg).finally(() => this.admission.leave()));
        }
        this.pulling.delete(lane);
        // Ended by watchStatus (the consumer had no leader, or is gone): a pause before asking again.
        const ended = await Promise.race([watched, sleep(CONSUMER_RETRY_MS).then(() => "stopped" as const)]);
        if (ended === "gone") consumer = undefined;
        if (!this.stopping && ended !== "stopped") await sleep(CONSUMER_RETRY_MS);
      } catch (err) {
        if (this.stopping) break;
        consumer = undefined;
        failures++;
        // An election fails a few requests in a row: said once, then at debug level.
        if (failures === 1) logger.warn({ err, lane }, "durable consumer failed; retrying");
        else logger.debug({ err, lane, failures }, "durable consumer failed again; retrying");
        await sleep(CONSUMER_RETRY_MS);
        // The consumer may have been deleted (or the stream): make them again.
        if (/not found/i.test((err as Error).message)) {
          await jetStreamManagerOf(this.options.bus)
            .then((jsm) => ensureLaneConsumer(jsm, service, lane, settings))
            .catch(() => undefined);
        }
      }
    }
  }

  /**
   * What the pull consumer reports besides messages (missed heartbeats, pulls refused), at debug
   * level, and when to give up on these messages so that the loop asks for the consumer again:
   *
   * - a pull refused for want of a responder (a current server says so at once while the consumer
   *   elects a leader): nats.js would pull again at once, hundreds of times a second;
   * - the consumer deleted, or not found after many missed heartbeats (a bound consumer does not
   *   notice that it is gone).
   *
   * Resolves "stopped" when the messages ended otherwise.
   */
  private async watchStatus(messages: ConsumerMessages, lane: PriorityLane): Promise<"refused" | "gone" | "stopped"> {
    const { service, logger } = this.options;
    for await (const status of messages.status()) {
      // A pull, a heartbeat, and a pull that expired empty (408) come every second or two: only what departs from them is told.
      if (status.type === "next" || status.type === "heartbeat" || status.type === "discard" || (status.type === "debug" && status.code === 408)) continue;
      logger.debug({ lane, status }, "durable consumer status");
      if (this.stopping) continue;
      if (status.type === "no_responders") {
        await messages.close().catch(() => undefined);
        return "refused";
      }
      const suspicious = status.type === "consumer_deleted" || (status.type === "heartbeats_missed" && status.count % CHECK_CONSUMER_AFTER_MISSED === 0);
      if (!suspicious) continue;
      const gone = await jetStreamManagerOf(this.options.bus)
        .then((jsm) => jsm.consumers.info(WORK_STREAM, workConsumer(service, lane)))
        .then(
          () => false,
          (err: unknown) => /not found/i.test((err as Error).message),
        );
      if (gone) {
        logger.warn({ lane }, "the durable consumer is gone; making it again");
        await messages.close().catch(() => undefined);
        return "gone";
      }
    }
    return "stopped";
  }

  /**
   * A pull made while the work stream or a lane consumer had no leader is lost (a 2.9 server does not
   * refuse it, and missed heartbeats tell of it only seconds later): when the server announces a new
   * leader, the lanes pull again at once.
   */
  private watchElections(): void {
    const { bus, service, logger } = this.options;
    const watch = (subject: string, lanes: readonly PriorityLane[]) => {
      bus.tolerateDenial(subject, "this executor may not take leader-election advisories; it pulls again when it misses heartbeats (deploy/nats/dmcp-permissions.conf)");
      const subscription = this.nc.subscribe(subject, {
        callback: () => {
          if (this.stopping) return;
          logger.debug({ subject }, "a JetStream leader was elected; pulling again");
          for (const lane of lanes)
            void this.pulling
              .get(lane)
              ?.close()
              .catch(() => undefined);
        },
      });
      this.elections.push(subscription);
    };
    watch(subjects.workLeaderElected(), PRIORITY_LANES);
    for (const lane of PRIORITY_LANES) watch(subjects.laneLeaderElected(service, lane), [lane]);
  }

  private track(work: Promise<void>): void {
    this.inflight.add(work);
    void work.finally(() => this.inflight.delete(work));
  }

  private async process(msg: JsMsg): Promise<void> {
    const { settings, logger } = this.options;
    const attempt = msg.info.deliveryCount;
    if (attempt > 1) logger.info({ seq: msg.seq, attempt }, "durable request delivered again");
    const working = setInterval(() => msg.working(), keepAliveOf(settings));
    let request: PromptRequest | undefined;
    let answer: { data: Uint8Array; error?: DmcpError | undefined } | undefined;
    let replayed = false;
    let releaseSuspect: (() => void) | undefined;
    const delivery: Delivery & { reply?: string | undefined } = {
      data: msg.data,
      headers: msg.headers,
      subject: msg.subject,
      attempt,
      stored: { at: new Date(msg.info.timestampNanos / 1e6), tag: msg.seq },
      admit: async (validated) => {
        request = validated;
        delivery.reply = validated.reply_to;
        const stored = await this.persistently(() => this.results!.get(this.options.service, correlationOf(validated)));
        if (!stored) {
          // A poison request cannot take down the calls that run beside it twice: no two suspects run together.
          if (attempt > 1 && !releaseSuspect && (await this.persistently(() => isSuspect(this.results!, this.options.service, correlationOf(validated)))))
            releaseSuspect = await this.isolate();
          return true;
        }
        replayed = true;
        if (delivery.reply) this.nc.publish(delivery.reply, stored.data);
        return false;
      },
      respond: (data, error) => {
        answer = { data, error };
      },
    };
    try {
      await this.options.endpoint.serve(delivery);
      // It never reached the upstream (down, restarting): not an attempt's failure, so wait and run it again.
      while (answer?.error?.code === ErrorCode.UpstreamUnavailable && !this.stopping && (await this.admission.untilServing(UPSTREAM_WAIT_MS))) {
        answer = undefined;
        await this.options.endpoint.serve(delivery);
      }
      if (replayed) {
        this.count("replayed");
        msg.ack();
      } else if (answer) {
        await this.settle(msg, attempt, request, answer);
      }
    } catch (err) {
      logger.warn({ err, seq: msg.seq, attempt }, "could not settle a durable request; it will be delivered again");
    } finally {
      clearInterval(working);
      releaseSuspect?.();
    }
  }

  /** Waits for this replica's suspect slot; resolves its release. */
  private isolate(): Promise<() => void> {
    let release: () => void = () => undefined;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const before = this.suspectQueue;
    this.suspectQueue = before.then(() => mine);
    return before.then(() => release);
  }

  private async settle(msg: JsMsg, attempt: number, request: PromptRequest | undefined, answer: { data: Uint8Array; error?: DmcpError | undefined }): Promise<void> {
    const { service, settings } = this.options;
    if (!request) {
      // Not a valid request (the endpoint answered and reported it): no attempt can make it one.
      const decoded = decodeEnvelope(msg.data, Number.POSITIVE_INFINITY);
      const raw = decoded.ok ? decoded.envelope : decoded.raw;
      const replyTo = typeof (raw as { reply_to?: unknown } | undefined)?.reply_to === "string" ? (raw as { reply_to: string }).reply_to : undefined;
      const error = answer.error ?? new RequestError(ErrorCode.InvalidEnvelope, "not a valid prompt_request");
      await this.deadLetters!.bury({ data: msg.data, service, correlationId: salvageIds(raw).correlationId, replyTo, seq: msg.seq, deliveries: attempt }, error, { report: false });
      this.count("deadLettered");
      this.terminate(msg, `${error.code}: ${error.message}`);
      return;
    }
    const correlationId = correlationOf(request);
    const error = answer.error;
    if (error && RETRYABLE.has(error.code)) {
      const outcome: DeliveryOutcome = { ran: !NOT_RUN.has(error.code), code: error.code, message: error.message.slice(0, 512) };
      if (attempt < settings.maxDeliver) {
        this.count("retried");
        await this.record(correlationId, attempt, outcome);
        if (error.code === ErrorCode.UpstreamClosed) await markSuspect(this.results!, service, correlationId).catch(() => undefined);
        msg.nak(error.code === ErrorCode.ShuttingDown ? 0 : backoffDelay(settings, attempt));
        return;
      }
      const earlier = await deliveryOutcomes(this.results!, service, correlationId, attempt - 1);
      const exhausted = retriesExhausted(service, [...earlier, outcome]);
      await this.deadLetters!.bury({ data: msg.data, service, correlationId, replyTo: request.reply_to, seq: msg.seq, deliveries: attempt }, exhausted);
      this.count("deadLettered");
      this.terminate(msg, `dead-lettered after ${attempt} deliveries`);
      return;
    }
    // Stored before it is published, published before it is acknowledged: a crash in between leaves
    // the request in the queue, and its next delivery is answered from the store.
    const store = () => this.results!.settle(service, correlationId, answer.data);
    let settled: Awaited<ReturnType<typeof store>>;
    try {
      settled = await this.persistently(store, isLeaderless);
    } catch (err) {
      if (!isLeaderless(err)) throw err;
      return this.answerEarly(msg, request, answer.data, store);
    }
    if (request.reply_to) this.nc.publish(request.reply_to, settled.answer);
    this.count("answered");
    msg.ack();
  }

  /**
   * The result store takes no writes (it is electing a leader): the answer is sent now and stored
   * when it can be, and its request acknowledged then. The replica's slot is free meanwhile.
   */
  private answerEarly(msg: JsMsg, request: PromptRequest, answer: Uint8Array, store: () => Promise<unknown>): void {
    if (request.reply_to) this.nc.publish(request.reply_to, answer);
    this.count("answered");
    this.options.logger.debug({ seq: msg.seq }, "the result store takes no writes (no leader): answer sent before it is stored");
    const flushed = this.earlyAnswers.add({
      store,
      keepAlive: () => msg.working(),
      stored: () => msg.ack(),
      until: Date.now() + Math.max(this.options.settings.ackWaitMs, STORE_RETRY_MS),
    });
    if (!this.inflight.has(flushed)) this.track(flushed);
  }

  /** Records how a delivery handed back without an answer ended (best effort: unrecorded, it counts as lost). */
  private async record(correlationId: string | undefined, delivery: number, outcome: DeliveryOutcome): Promise<void> {
    if (!correlationId) return;
    await recordDelivery(this.results!, this.options.service, correlationId, delivery, outcome).catch((err: unknown) =>
      this.options.logger.debug({ err, correlationId }, "could not record how a delivery ended"),
    );
  }

  /** Ends the delivery of a request that was dead-lettered (with the reason, where the server takes one). */
  private terminate(msg: JsMsg, reason: string): void {
    if (this.features?.termReason) msg.term(reason);
    else msg.term();
  }

  /**
   * Retries a result-store operation through a short loss of the server (a restart). Meanwhile the
   * request may be delivered to another replica; whichever answer is stored first stays the answer.
   * An error `giveUpOn` picks is thrown at once.
   */
  private async persistently<T>(operation: () => Promise<T>, giveUpOn: (err: unknown) => boolean = () => false): Promise<T> {
    const until = Date.now() + Math.max(this.options.settings.ackWaitMs, STORE_RETRY_MS);
    for (;;) {
      try {
        return await operation();
      } catch (err) {
        if (Date.now() >= until || this.nc.isClosed() || giveUpOn(err)) throw err;
        await sleep(STORE_RETRY_PAUSE_MS);
      }
    }
  }
}

/** How often a held request's progress is reported: three times per ack wait. */
function keepAliveOf(settings: DurableSettings): number {
  return Math.max(250, Math.floor(settings.ackWaitMs / 3));
}

/** A delivery this replica hands back before running it. */
function notRun(stopping: boolean): DeliveryOutcome {
  return stopping
    ? { ran: false, code: ErrorCode.ShuttingDown, message: "the replica holding it was shutting down" }
    : { ran: false, code: ErrorCode.UpstreamUnavailable, message: "the upstream of the replica holding it stayed down for the ack wait" };
}

/** The correlation id of a queued request not decoded yet, if it has one. */
function correlationOfMessage(msg: JsMsg): string | undefined {
  const decoded = decodeEnvelope(msg.data, Number.POSITIVE_INFINITY);
  return salvageIds(decoded.ok ? decoded.envelope : decoded.raw).correlationId;
}

function correlationOf(request: PromptRequest): string {
  return request.correlation_id ?? request.id;
}

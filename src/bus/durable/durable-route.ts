/**
 * The requester side of durable delivery (PROTOCOL.md §15): queues a request in the work stream (one
 * `Nats-Msg-Id` per request, so a publish retried after a lost acknowledgement is stored once), waits
 * out a loss of the bus connection within the call's deadline, reads answers lost on the wire from the
 * result store, and marks cancelled calls there so that their queued requests never start.
 *
 * The Requester keeps the calls: this module gives the `RequestRoute`s (one per priority lane) it
 * queues durable requests through.
 */
import type { JetStreamClient } from "@nats-io/jetstream";
import type { MsgHdrs } from "@nats-io/transport-node";
import { BusError, CallError, createEnvelope, ErrorCode, errorPayload, RequestError, subjects, type PriorityLane, type PromptRequest } from "../../protocol/index.js";
import { natsConnectionOf, type Bus } from "../connection.js";
import { jetStreamOf } from "../jetstream.js";
import { DeadLetters } from "./dead-letters.js";
import { DEFAULT_RESULT_TTL_MS, ResultStore } from "./result-store.js";
import type { Requester, RequestRoute } from "../requester.js";
import { provisionWorkStreams, WORK_DUPLICATE_WINDOW_MS } from "./work-queue.js";
import { sleep } from "../../util/index.js";

/** How often waiting durable calls look for an answer in the result store (a backstop for lost messages). */
const SWEEP_INTERVAL_MS = 5_000;
/** How often a call whose request was queued before (by a requester that died) looks for its answer there. */
const RESUMED_POLL_MS = 500;
/**
 * After a reconnection, how often and for how long waiting calls look there: answers sent to this
 * process while it was away were lost on the wire, and executors store them moments later (the sweep
 * alone would find them only after SWEEP_INTERVAL_MS, or twice that for calls queued just before).
 */
const AFTER_RECONNECT_POLL_MS = 250;
const AFTER_RECONNECT_WINDOW_MS = 10_000;
const PUBLISH_TIMEOUT_MS = 2_000;
/**
 * The longest pause between two publishes of a request the stream did not take. While the stream
 * elects a leader (seconds) each publish is refused at once (no responders): a short pause queues
 * the request within this time of the new leader.
 */
const PUBLISH_RETRY_MAX_MS = 250;
/** A queued request outlives its deadline by this much (where the server has per-message TTL). */
const TTL_MARGIN_S = 5;

interface Setup {
  results: ResultStore;
  messageTtl: boolean;
}

/** The durable way to services: requests queued in the work stream, per priority lane. */
export class DurableRoute {
  private readonly js: JetStreamClient;
  private setup: Promise<Setup> | undefined;
  private deadLetters: DeadLetters | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private readonly routes = new Map<PriorityLane, RequestRoute>();
  /** When each waiting durable call was queued, and to which service, by correlation id. */
  private readonly queued = new Map<string, { at: number; service: string }>();
  private reconnectWaiters: (() => void)[] = [];
  private stopped = false;
  /** When the server last refused a publish to each subject (a refusal comes apart from the publish). */
  private readonly deniedAt = new Map<string, number>();

  constructor(
    private readonly bus: Bus,
    private readonly requester: Requester,
    private readonly sender: string,
    /** The TTL of the result store, should this process create it. */
    private readonly resultTtlMs = DEFAULT_RESULT_TTL_MS,
  ) {
    this.js = jetStreamOf(bus);
    bus.onPermissionDenied((denial) => {
      if (denial.operation === "publish") this.deniedAt.set(denial.subject, Date.now());
    });
    bus.onReconnect(() => {
      for (const wake of this.reconnectWaiters.splice(0)) wake();
      // Answers published while this process was away are in the result store.
      void this.recoverAfterReconnect();
    });
  }

  /** The route of durable calls in one priority lane. */
  route(lane: PriorityLane): RequestRoute {
    let route = this.routes.get(lane);
    if (!route) {
      route = { send: (request, data, headers) => this.send(lane, request, data, headers), withdraw: (request) => this.withdraw(request) };
      this.routes.set(lane, route);
    }
    return route;
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.sweeper);
    this.deadLetters?.stop();
    for (const wake of this.reconnectWaiters.splice(0)) wake();
  }

  /**
   * Creates (unless they exist) and checks the result store and the streams of durable delivery: a
   * gateway does at start, so that executors, which wait for them, take durable work.
   */
  async prepare(): Promise<void> {
    await this.ready();
  }

  /** The streams and the result store (made again by a call after a setup that failed). */
  private ready(): Promise<Setup> {
    this.setup ??= (async () => {
      // The result store first: an executor that finds the work streams takes it for granted.
      const results = await ResultStore.create(this.bus, this.resultTtlMs);
      const { messageTtl } = await provisionWorkStreams(this.bus);
      // Gateways take max-deliveries advisories too, for when no executor of the service is left.
      this.deadLetters = new DeadLetters(this.bus, this.sender, results);
      this.deadLetters.watch();
      this.sweeper = setInterval(() => this.recoverSoon(SWEEP_INTERVAL_MS), SWEEP_INTERVAL_MS);
      this.sweeper.unref();
      return { results, messageTtl };
    })();
    // A failed setup (the bus was down) is tried again by the next call.
    this.setup.catch(() => (this.setup = undefined));
    return this.setup;
  }

  private async send(lane: PriorityLane, request: PromptRequest, data: Uint8Array, headers: MsgHdrs | undefined): Promise<void> {
    const service = request.payload.service;
    const deadline = request.deadline ? Date.parse(request.deadline) : Date.now() + WORK_DUPLICATE_WINDOW_MS;
    // Re-published under the same id within the duplicate window, a request is stored once.
    const giveUpAt = Math.min(deadline, Date.now() + WORK_DUPLICATE_WINDOW_MS);
    const subject = subjects.work(service, lane);
    for (let attempt = 0; ; attempt++) {
      const attemptStarted = Date.now();
      try {
        if (!this.bus.isConnected()) await this.reconnected(giveUpAt);
        const { messageTtl } = await this.ready();
        const ttl = messageTtl ? `${Math.max(1, Math.ceil((deadline - Date.now()) / 1000) + TTL_MARGIN_S)}s` : undefined;
        const ack = await this.js.publish(subject, data, {
          msgID: request.id,
          timeout: PUBLISH_TIMEOUT_MS,
          ...(headers ? { headers } : {}),
          ...(ttl ? { ttl } : {}),
        });
        const correlationId = request.correlation_id ?? request.id;
        this.queued.set(correlationId, { at: Date.now(), service });
        // Queued before, under the same id (a call resumed after its requester died, e.g. an adopted task):
        // its answer went, or will go, to that requester's inbox, so it is read from the result store.
        if (ack.duplicate) this.readStored(service, correlationId);
        return;
      } catch (err) {
        // Refused for permission: retrying cannot help, and the requester should learn why now.
        if ((this.deniedAt.get(subject) ?? 0) >= attemptStarted) {
          throw new RequestError(ErrorCode.Forbidden, `the NATS server denied queueing to ${subject}: this participant's NATS user may not make durable calls to "${service}"`, {
            cause: err,
            data: { service, subject },
          });
        }
        const delay = Math.min(PUBLISH_RETRY_MAX_MS, 50 * 2 ** attempt);
        if (this.stopped || natsConnectionOf(this.bus).isClosed() || Date.now() + delay >= giveUpAt) {
          throw new BusError(ErrorCode.BusUnavailable, `could not queue the request for "${service}": ${(err as Error).message}`, { cause: err, data: { service } });
        }
        if (attempt === 0) this.bus.logger.debug({ err, service, id: request.id }, "the work stream did not take a durable request; publishing it again");
        await sleep(delay);
      }
    }
  }

  /** Marks the call cancelled in the result store: a worker that takes its request answers it from there. */
  private withdraw(request: PromptRequest): void {
    this.withdrawCall(request.payload.service, request.correlation_id ?? request.id);
  }

  /** Marks a durable call cancelled in the result store, this requester's or one another gateway sent (PROTOCOL.md §19.4). */
  withdrawCall(service: string, correlationId: string): void {
    this.queued.delete(correlationId);
    const cancelled = new CallError(ErrorCode.Cancelled, "the call was cancelled by its caller before it ran");
    const answer = this.bus.codec.encode(createEnvelope("error_notification", errorPayload(cancelled), { sender: this.sender, correlationId }));
    void this.ready()
      .then(({ results }) => results.settle(service, correlationId, answer))
      .catch((err: unknown) => this.bus.logger.debug({ err, correlationId }, "could not mark a durable call cancelled"));
  }

  /**
   * Settles a resumed call from the result store: now, and every RESUMED_POLL_MS while the requester
   * waits for it (a call queued before by a requester that died, or one another gateway sent, §19.4).
   */
  readStored(service: string, correlationId: string): void {
    const read = async (): Promise<void> => {
      if (this.stopped || !this.requester.durableCalls().includes(correlationId)) return;
      const { results } = await this.ready();
      const stored = await results.get(service, correlationId).catch(() => undefined);
      if (stored) this.requester.deliverStored(correlationId, stored.data, stored.stored);
      else setTimeout(() => void read().catch(failed), RESUMED_POLL_MS).unref();
    };
    const failed = (err: unknown) => this.bus.logger.debug({ err, correlationId }, "could not read a resumed call's answer from the result store");
    void read().catch(failed);
  }

  /**
   * Reads the result store for the calls that were waiting when the bus came back, every
   * AFTER_RECONNECT_POLL_MS, until all are answered or the window ends.
   */
  private async recoverAfterReconnect(): Promise<void> {
    const reconnectedAt = Date.now();
    const until = reconnectedAt + AFTER_RECONNECT_WINDOW_MS;
    while (!this.stopped && Date.now() < until) {
      const left = await this.recover((at) => at <= reconnectedAt).catch((err: unknown) => {
        this.bus.logger.debug({ err }, "could not read answers from the result store");
        return 1;
      });
      if (left === 0) return;
      await sleep(AFTER_RECONNECT_POLL_MS);
    }
  }

  private recoverSoon(minAgeMs: number): void {
    const queuedBefore = Date.now() - minAgeMs;
    this.recover((at) => at <= queuedBefore).catch((err: unknown) => this.bus.logger.debug({ err }, "could not read answers from the result store"));
  }

  /**
   * Settles waiting durable calls whose answers are in the result store, of those whose queueing time
   * `include` takes; resolves with how many of those are still waiting.
   */
  private async recover(include: (queuedAt: number) => boolean): Promise<number> {
    if (!this.setup || this.stopped) return 0;
    const { results } = await this.setup;
    const waiting = new Set(this.requester.durableCalls());
    for (const id of this.queued.keys()) if (!waiting.has(id)) this.queued.delete(id);
    let left = 0;
    for (const [correlationId, { at, service }] of this.queued) {
      if (!include(at)) continue;
      const stored = await results.get(service, correlationId).catch(() => undefined);
      if (stored) this.requester.deliverStored(correlationId, stored.data, stored.stored);
      else left++;
    }
    return left;
  }

  /** Resolves when the bus is back, or rejects at `until`. */
  private reconnected(until: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => {
          this.reconnectWaiters = this.reconnectWaiters.filter((waiter) => waiter !== wake);
          reject(new BusError(ErrorCode.BusUnavailable, "the bus is disconnected"));
        },
        Math.max(0, until - Date.now()),
      );
      const wake = () => {
        clearTimeout(timer);
        resolve();
      };
      this.reconnectWaiters.push(wake);
    });
  }
}

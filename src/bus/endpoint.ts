/**
 * The serving side of a service on the bus, shared by executors (which forward to an MCP server) and
 * native dMCP agents (which answer themselves): takes `prompt_request`s from the service's queue group
 * (replicas share the load) and from the instance's own subject, validates them, refuses expired
 * ones, sends receipts for calls that run a while, and answers each with exactly one
 * `prompt_response` or `error_notification` under the request's correlation id.
 */
import { PermissionViolationError, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import {
  ACCEPTED_METHOD,
  asDmcpError,
  BusError,
  CallError,
  CANCEL_METHOD,
  cancellation,
  createEnvelope,
  DEFAULT_MAX_ENVELOPE_BYTES,
  type DmcpError,
  ErrorCode,
  errorPayload,
  isEnvelopeId,
  paramsProblem,
  RequestError,
  salvageIds,
  subjects,
  type CancelSignal,
  type Envelope,
  type PromptRequest,
} from "../protocol/index.js";
import { SpanKind, type Context } from "@opentelemetry/api";
import { inSpan } from "../tracing/index.js";
import { jsonObjectOf, type Logger } from "../util/index.js";
import type { Seal, StorePosition } from "./codec.js";
import { dropReason, natsConnectionOf, type Bus } from "./connection.js";
import { contextFromNats } from "./trace-headers.js";
import { EarlyCancellations } from "./early-cancellations.js";
import { RecentAnswers } from "./recent-answers.js";
import { ReplyBatch } from "./reply-batch.js";
import { CallCancellation } from "./call-cancellation.js";

/** The longest delay a Node timer takes. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Receipts are sent for calls running longer than this (PROTOCOL.md §5.2). */
export const DEFAULT_RECEIPT_DELAY_MS = 20;

export interface RequestContext {
  /**
   * Sends the caller an MCP notification that belongs to this call (progress, logging), as a
   * `context_update` on the reply subject; it arrives before the answer.
   */
  notify(method: string, params: Record<string, unknown>): void;
  /** Aborted when the caller cancels the call (its reason is a CANCELLED DmcpError). */
  readonly signal: AbortSignal;
  /** The same cancellation without an AbortSignal, which takes microseconds to make: for handlers that only follow it. */
  readonly cancellation: CancelSignal;
  /** The caller's trace, continued in this hop's span. */
  trace: Context;
  /** Milliseconds left before the caller stops waiting. */
  timeoutMs: number;
  /** The request's correlation id: tools can use it to make side effects idempotent. */
  correlationId: string;
  sessionId?: string | undefined;
  /** Durable requests: which delivery attempt this is (1 = the first). */
  attempt?: number | undefined;
  /** How what is sent back for a sealed request is sealed (from the key that opened it to its sender's); undefined for a plain one. */
  readonly seal?: Seal | undefined;
}

/**
 * How one request reached the endpoint and where its answer goes: a message on the endpoint's own
 * subscriptions, or a delivery from the durable work queue (durable-worker.ts), which stores and
 * acknowledges the answer it is handed instead of sending a NATS reply.
 */
export interface Delivery {
  readonly data: Uint8Array;
  readonly headers?: MsgHdrs | undefined;
  readonly subject: string;
  /** Where receipts and notifications of the call go (read after `admit`). */
  readonly reply?: string | undefined;
  /** Which delivery attempt this is, for requests that can be delivered again. */
  readonly attempt?: number | undefined;
  /** Read from a stream: when the server stored it and its sequence (a redelivery is not a replay). */
  readonly stored?: StorePosition | undefined;
  /** Sees the validated request before it runs; resolves false when it must not run (it was answered otherwise). */
  admit?(request: PromptRequest): Promise<boolean>;
  /** Takes the one final answer; `error` is set when it is an error_notification. */
  respond(data: Uint8Array, error?: DmcpError): void;
}

/** Answers one request with the MCP result, or throws (a DmcpError says what the caller sees). */
export type RequestHandler = (request: PromptRequest, context: RequestContext) => Promise<Record<string, unknown>>;

export interface EndpointOptions {
  bus: Bus;
  service: string;
  instance: string;
  logger: Logger;
  handler: RequestHandler;
  /** Envelopes larger than this are refused with PAYLOAD_TOO_LARGE. */
  maxEnvelopeBytes?: number;
  /** Longest time a call may run when its envelope carries no deadline. */
  defaultTimeoutMs?: number;
  /** A call still running after this long gets its acceptance receipt (when the caller asked for one). */
  receiptDelayMs?: number;
}

/** What the NATS services protocol reports for an endpoint (`$SRV.STATS`). */
export interface EndpointStats {
  requests: number;
  errors: number;
  lastError: string;
  processingTimeNs: number;
}

export class ServiceEndpoint {
  private readonly subscriptions: Subscription[] = [];
  private cancelSubscription: Subscription | undefined;
  private recoverSubscription: Subscription | undefined;
  /** Messages off the endpoint's own subscriptions being served (durable deliveries are the worker's count). */
  private inflight = 0;
  /** Every call being served, direct or durable: a leaving instance finishes them, still cancellable. */
  private readonly serving = new Set<Promise<void>>();
  private handledCount = 0;
  private stopping = false;
  private readonly counters: EndpointStats = { requests: 0, errors: 0, lastError: "", processingTimeNs: 0 };
  /** Calls being served, by correlation id, so that a cancellation can stop them. */
  private readonly running = new Map<string, CallCancellation>();
  /** Cancellations of calls that had not started here when they arrived. */
  private readonly earlyCancellations = new EarlyCancellations();
  /** The answers of direct calls given lately, for a gateway whose peer died before passing one on (PROTOCOL.md §19.4). */
  private readonly recent: RecentAnswers;
  /** Answers on NATS reply subjects, published together with the others of the same turn of the event loop. */
  private readonly replies: ReplyBatch;

  private readonly nc: NatsConnection;
  /** The attributes of this hop's span (the same for every call). */
  private readonly spanAttributes: Record<string, string>;

  constructor(private readonly options: EndpointOptions) {
    this.nc = natsConnectionOf(options.bus);
    this.spanAttributes = { "messaging.system": "nats", "messaging.destination.name": subjects.request(options.service), "dmcp.instance": options.instance };
    this.recent = new RecentAnswers((subject, data) => this.nc.publish(subject, data));
    this.replies = new ReplyBatch(options.logger);
  }

  get inflightCount(): number {
    return this.inflight;
  }

  get handled(): number {
    return this.handledCount;
  }

  get stats(): EndpointStats {
    return { ...this.counters };
  }

  get subject(): string {
    return subjects.request(this.options.service);
  }

  get queueGroup(): string {
    return subjects.queueGroup(this.options.service);
  }

  /**
   * Subscribes and waits until the server has the subscriptions, so callers can call at once. Throws
   * FORBIDDEN if the server refuses one of them (the NATS user may not serve this service).
   */
  async start(): Promise<void> {
    const refused: string[] = [];
    const failed = (err: Error, subject: string) => {
      if (err instanceof PermissionViolationError) refused.push(subject);
      else this.options.logger.error({ err, subject }, "subscription error");
    };
    const { service, instance } = this.options;
    const nc = this.nc;
    const serve = (subject: string, queue?: string) =>
      nc.subscribe(subject, {
        ...(queue ? { queue } : {}),
        callback: (err, msg) => (err ? failed(err, subject) : this.handle(msg)),
      });
    const cancel = subjects.cancel(service);
    const requests = [serve(subjects.request(service), subjects.queueGroup(service)), serve(subjects.instanceRequest(service, instance))];
    this.cancelSubscription = nc.subscribe(cancel, { callback: (err, msg) => (err ? failed(err, cancel) : this.onCancel(msg)) });
    this.subscriptions.push(...requests, this.cancelSubscription);
    // The server answers a refused SUB with an error before the flush's PONG.
    await nc.flush();
    if (refused.length > 0) {
      for (const sub of this.subscriptions.splice(0)) sub.unsubscribe();
      throw new RequestError(ErrorCode.Forbidden, `the NATS server denied subscribing to ${refused.join(", ")}: this NATS user may not serve "${service}"`, {
        data: { service, subjects: refused },
      });
    }
    this.serveLookups();
  }

  /**
   * Answers gateways looking for the answer of a direct call whose gateway died (PROTOCOL.md §19.4).
   * Optional: a NATS user not allowed this subscription (permissions older than it) serves as before.
   */
  private serveLookups(): void {
    const subject = subjects.recover(this.options.service);
    this.recoverSubscription = this.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (!err) return this.onLookup(msg);
        this.options.logger.warn({ err, subject }, "cannot take lookups of recent answers: a gateway whose peer died cannot recover this instance's answers");
        this.recoverSubscription?.unsubscribe();
      },
    });
  }

  private onLookup(msg: Msg): void {
    const correlationId = lookupOf(msg.data);
    if (!correlationId || !msg.reply) {
      this.options.bus.dropped("recover", "not_a_lookup");
      return;
    }
    const outcome = this.recent.lookup(correlationId, msg.reply, this.running.has(correlationId));
    if (outcome === "unknown") return;
    // Still running here: a receipt says who holds the call (the gateway notices if this instance dies), the answer follows.
    const data =
      outcome === "waiting"
        ? this.encode(createEnvelope("context_update", { method: ACCEPTED_METHOD, params: { instance: this.options.instance } }, { sender: this.options.instance, correlationId }))
        : outcome.answer;
    this.nc.publish(msg.reply, data);
  }

  /**
   * Takes no new requests; resolves when the calls in flight have answered or the grace period ends
   * (PROTOCOL.md §6.3). The request subscriptions are drained, not just dropped: a request the server
   * routed here before it saw the unsubscription is still read, and answered SHUTTING_DOWN. The
   * cancellation subscription stays until the calls in flight are done, so that they can be cancelled.
   */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    const requests = this.subscriptions.filter((sub) => sub !== this.cancelSubscription);
    const drained = Promise.allSettled(requests.map((sub) => sub.drain()));
    const grace = new Promise((resolve) => setTimeout(resolve, graceMs).unref());
    await Promise.race([drained, grace]);
    await Promise.race([Promise.allSettled([...this.serving]), grace]);
    this.replies.flush();
    this.cancelSubscription?.unsubscribe();
    this.recoverSubscription?.unsubscribe();
  }

  /** A cancellation for a call this instance serves aborts it; others are not ours (or already done). */
  private onCancel(msg: Msg): void {
    const decoded = this.options.bus.codec.decode(msg.data, { receiver: this.options.instance });
    if (!decoded.ok && this.options.bus.codec.isRejection(decoded.error)) this.reject(this.fromMsg(msg), decoded.error, salvageIds(decoded.raw).correlationId);
    if (!decoded.ok || decoded.envelope.type !== "context_update" || decoded.envelope.payload.method !== CANCEL_METHOD) {
      this.options.bus.dropped("cancel", dropReason(decoded));
      return;
    }
    const correlationId = decoded.envelope.correlation_id;
    if (!correlationId) return;
    const controller = this.running.get(correlationId);
    // The caller's reason reaches the handler (and, through it, an executor's upstream).
    const error = cancellation(decoded.envelope.payload.params?.reason, "the call was cancelled by its caller");
    if (!controller) {
      // Not ours, already over, or a durable request about to start here: remember it for the last case.
      this.earlyCancellations.add(correlationId, error);
      return;
    }
    this.options.logger.debug({ correlationId }, "call cancelled by its caller");
    controller.abort(error);
  }

  /** Serves one message of the endpoint's own subscriptions, timed for `$SRV.STATS`. */
  private handle(msg: Msg): void {
    const started = performance.now();
    this.counters.requests++;
    this.inflight++;
    const work = this.answer(this.fromMsg(msg));
    this.serving.add(work);
    const done = () => {
      this.serving.delete(work);
      this.inflight--;
      this.counters.processingTimeNs += Math.round((performance.now() - started) * 1e6);
    };
    // A failure here is a bug, but must not become an unhandled rejection: log it and go on serving.
    work.then(done, (err: unknown) => {
      done();
      this.options.logger.error({ err }, "serving a message failed");
    });
  }

  /**
   * Decodes, checks and executes one request and hands its one answer to `delivery.respond`. The
   * durable work queue serves its deliveries here too, so they are checked exactly like direct ones.
   */
  async serve(delivery: Delivery): Promise<void> {
    const work = this.answer(delivery);
    this.serving.add(work);
    try {
      await work;
    } finally {
      this.serving.delete(work);
    }
  }

  private async answer(delivery: Delivery): Promise<void> {
    const decoded = this.options.bus.codec.decode(delivery.data, {
      receiver: this.options.instance,
      maxBytes: this.options.maxEnvelopeBytes ?? DEFAULT_MAX_ENVELOPE_BYTES,
      stored: delivery.stored,
    });
    if (!decoded.ok) {
      this.reject(delivery, decoded.error, salvageIds(decoded.raw).correlationId);
      return;
    }
    const envelope = decoded.envelope;
    if (envelope.type !== "prompt_request") {
      this.reject(delivery, new RequestError(ErrorCode.InvalidEnvelope, `expected a prompt_request, got ${envelope.type}`), envelope.correlation_id ?? envelope.id);
      return;
    }
    const correlationId = envelope.correlation_id ?? envelope.id;
    if (delivery.admit && !(await delivery.admit(envelope))) return;
    // Everything sent back for a sealed request is sealed to its sender, with the key that opened it.
    const seal = decoded.sealed ? { from: decoded.sealed.to, to: decoded.sealed.from } : undefined;
    // A ping asks whether this instance is alive (callers probe the instances holding their calls): it answers itself.
    if (envelope.payload.method === "ping") {
      this.respond(delivery, createEnvelope("prompt_response", { result: {} }, { sender: this.options.instance, correlationId, sessionId: envelope.session_id }), seal);
      return;
    }
    // Calls that finish quickly need no receipt: it only matters if this instance dies mid-call.
    const receipt =
      envelope.receipt === true ? setTimeout(() => this.acknowledge(delivery, correlationId, seal), this.options.receiptDelayMs ?? DEFAULT_RECEIPT_DELAY_MS) : undefined;
    const reply = { sender: this.options.instance, correlationId, sessionId: envelope.session_id };
    const cancel = new CallCancellation();
    this.running.set(correlationId, cancel);
    let answer: Uint8Array | undefined;
    try {
      const cancelledEarly = this.earlyCancellations.take(correlationId);
      if (cancelledEarly) throw cancelledEarly;
      const result = await this.execute(envelope, correlationId, contextFromNats(delivery.headers), cancel, delivery.reply, seal, delivery.attempt);
      // A cancelled call is answered CANCELLED, whatever its handler made of the cancellation (PROTOCOL.md §5.5).
      if (cancel.aborted) throw cancel.reason;
      answer = this.respond(delivery, createEnvelope("prompt_response", { result }, reply), seal);
    } catch (err) {
      const raised: unknown = cancel.aborted ? cancel.reason : err;
      const error = asDmcpError(raised);
      // The caller's own doing (bad arguments, unknown tools, a cancellation) is its news, not this process's.
      const callersFault = ([ErrorCode.UpstreamError, ErrorCode.InvalidParams, ErrorCode.UnknownTarget, ErrorCode.Cancelled] as ErrorCode[]).includes(error.code);
      this.options.logger[callersFault ? "debug" : "warn"]({ err: error, method: envelope.payload.method, correlationId }, "call failed");
      this.counters.errors++;
      this.counters.lastError = `${error.code}: ${error.message}`;
      answer = this.respond(delivery, createEnvelope("error_notification", this.errorPayload(error), reply), seal, error);
    } finally {
      clearTimeout(receipt);
      if (this.running.get(correlationId) === cancel) this.running.delete(correlationId);
      this.handledCount++;
      // A direct answer (not read from a stream) is kept a while; a durable one is in the result store.
      if (answer && !delivery.stored) this.recent.answered(correlationId, answer);
      else this.recent.ended(correlationId);
    }
  }

  private execute(
    request: PromptRequest,
    correlationId: string,
    trace: Context,
    cancel: CallCancellation,
    reply: string | undefined,
    seal: Seal | undefined,
    attempt: number | undefined,
  ): Promise<Record<string, unknown>> {
    const notify = (method: string, params: Record<string, unknown>) => {
      if (!reply || cancel.aborted) return;
      const update = createEnvelope("context_update", { method, params }, { sender: this.options.instance, correlationId });
      this.nc.publish(reply, this.encode(update, seal));
    };
    if (this.stopping) return Promise.reject(new CallError(ErrorCode.ShuttingDown, `${this.options.instance} is shutting down`));
    // Params an MCP server would drop unanswered (e.g. `_meta: "x"`) fail here, at once, as the caller's mistake.
    const invalid = paramsProblem(request.payload.params);
    if (invalid) return Promise.reject(new RequestError(ErrorCode.InvalidParams, `Invalid params: ${invalid}`));
    // A deadline years away is "no hurry", not a timer Node cuts to 1 ms (timers hold at most 2^31-1 ms).
    const timeoutMs = Math.min(request.deadline ? Date.parse(request.deadline) - Date.now() : (this.options.defaultTimeoutMs ?? 60_000), MAX_TIMER_MS);
    if (timeoutMs <= 0) {
      return Promise.reject(new CallError(ErrorCode.DeadlineExceeded, "the request's deadline passed before it could start"));
    }
    return inSpan(`dmcp process ${request.payload.method}`, SpanKind.CONSUMER, trace, this.spanAttributes, (ctx) =>
      this.options.handler(request, new CallContext(timeoutMs, correlationId, request.session_id, ctx, cancel, notify, attempt, seal)),
    );
  }

  /** Tells the caller which instance holds its call, so that the caller notices if this instance dies. */
  private acknowledge(delivery: Delivery, correlationId: string, seal: Seal | undefined): void {
    if (!delivery.reply) return;
    const receipt = createEnvelope("context_update", { method: ACCEPTED_METHOD, params: { instance: this.options.instance } }, { sender: this.options.instance, correlationId });
    this.nc.publish(delivery.reply, this.encode(receipt, seal));
  }

  /** Hands the answer to the delivery; returns it as encoded. */
  private respond(delivery: Delivery, envelope: Envelope, seal?: Seal, error?: DmcpError): Uint8Array {
    const maxPayload = this.options.bus.maxPayload;
    let data = this.encode(envelope, seal);
    if (data.byteLength > maxPayload) {
      error = new BusError(ErrorCode.PayloadTooLarge, `the result of ${data.byteLength} bytes exceeds the bus limit of ${maxPayload} bytes`);
      const reply = { sender: this.options.instance, correlationId: envelope.correlation_id, sessionId: envelope.session_id };
      data = this.encode(createEnvelope("error_notification", this.errorPayload(error), reply), seal);
    }
    delivery.respond(data, error);
    return data;
  }

  /** Answers a message that cannot be served and reports it on the error subject. */
  private reject(delivery: Delivery, error: DmcpError, correlationId: string | undefined): void {
    this.counters.errors++;
    this.counters.lastError = `${error.code}: ${error.message}`;
    this.options.logger.warn({ err: error, subject: delivery.subject }, "rejected a bad message");
    const payload = this.errorPayload(error);
    this.respond(delivery, createEnvelope("error_notification", payload, { sender: this.options.instance, correlationId }), undefined, error);
    // The report is a message of its own, with its own id.
    this.nc.publish(subjects.errors(this.options.instance), this.encode(createEnvelope("error_notification", payload, { sender: this.options.instance, correlationId })));
  }

  /** The payload of an error this instance raises: its `data` names the instance, so a caller can try another replica (PROTOCOL.md §5.1); an upstream's error keeps the upstream's own data. */
  private errorPayload(error: DmcpError): ReturnType<typeof errorPayload> {
    const payload = errorPayload(error);
    if (error.code !== ErrorCode.UpstreamError) payload.data = { ...(isRecord(payload.data) ? payload.data : {}), instance: this.options.instance };
    return payload;
  }

  /** A message on the endpoint's own subscriptions: answered on its NATS reply subject, when it has one. */
  private fromMsg(msg: Msg): Delivery {
    return {
      data: msg.data,
      headers: msg.headers,
      subject: msg.subject,
      reply: msg.reply,
      respond: (data) => {
        if (!msg.reply) return;
        this.replies.add(() => msg.respond(data));
        // The only call in flight here: no other answer can join it in this turn of the loop.
        if (this.serving.size <= 1) this.replies.flush();
      },
    };
  }

  /** Signed, and sealed to the caller when its request was, as the bus's message security says. */
  private encode(envelope: Envelope, seal?: Seal): Uint8Array {
    return this.options.bus.codec.encode(envelope, seal);
  }
}

/**
 * A call's RequestContext. A class, not an object literal: a literal with a getter (`signal`) is built
 * on V8's slow path, about 1-3 µs per call against some 20 ns for an instance.
 */
class CallContext implements RequestContext {
  constructor(
    readonly timeoutMs: number,
    readonly correlationId: string,
    readonly sessionId: string | undefined,
    readonly trace: Context,
    readonly cancellation: CallCancellation,
    readonly notify: RequestContext["notify"],
    readonly attempt: number | undefined,
    readonly seal: Seal | undefined,
  ) {}

  get signal(): AbortSignal {
    return this.cancellation.signal;
  }
}

/** The correlation id a lookup names: UTF-8 JSON `{ "correlation_id": "..." }`, an id an envelope may carry. */
function lookupOf(data: Uint8Array): string | undefined {
  const id = jsonObjectOf(data)?.correlation_id;
  return isEnvelopeId(id) ? id : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * The serving side of a service on the bus, shared by executors (which forward to an MCP server) and
 * native dMCP agents (which answer themselves): takes `prompt_request`s from the service's queue group
 * (replicas share the load) and from the instance's own subject, validates them, refuses expired
 * ones, sends receipts for calls that run a while, and answers each with exactly one
 * `prompt_response` or `error_notification` under the request's correlation id.
 */
import type { Msg, Subscription } from "@nats-io/transport-node";
import {
  ACCEPTED_METHOD,
  CANCEL_METHOD,
  createEnvelope,
  decodeEnvelope,
  DEFAULT_MAX_ENVELOPE_BYTES,
  DmcpError,
  encodeEnvelope,
  ErrorCode,
  errorPayload,
  salvageIds,
  subjects,
  type Envelope,
  type PromptRequest,
} from "../protocol/index.js";
import { SpanKind, type Context } from "@opentelemetry/api";
import { contextFromNats, inSpan } from "../tracing/propagation.js";
import type { Logger } from "../util/logger.js";
import type { Bus } from "./connection.js";

/** Receipts are sent for calls running longer than this (PROTOCOL.md §5.2). */
export const DEFAULT_RECEIPT_DELAY_MS = 20;

export interface RequestContext {
  /**
   * Sends the caller an MCP notification that belongs to this call (progress, logging), as a
   * `context_update` on the reply subject; it arrives before the answer.
   */
  notify(method: string, params: Record<string, unknown>): void;
  /** Aborted when the caller cancels the call (its reason is a CANCELLED DmcpError). */
  signal: AbortSignal;
  /** The caller's trace, continued in this hop's span. */
  trace: Context;
  /** Milliseconds left before the caller stops waiting. */
  timeoutMs: number;
  /** The request's correlation id: tools can use it to make side effects idempotent. */
  correlationId: string;
  sessionId?: string | undefined;
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
  private readonly inflight = new Set<Promise<void>>();
  private handledCount = 0;
  private stopping = false;
  private readonly counters: EndpointStats = { requests: 0, errors: 0, lastError: "", processingTimeNs: 0 };
  /** Calls being served, by correlation id, so that a cancellation can stop them. */
  private readonly running = new Map<string, AbortController>();

  constructor(private readonly options: EndpointOptions) {}

  get inflightCount(): number {
    return this.inflight.size;
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

  /** Subscribes and waits until the server has the subscriptions, so callers can call at once. */
  async start(): Promise<void> {
    const callback = (err: Error | null, msg: Msg) => {
      if (err) {
        this.options.logger.error({ err }, "subscription error");
        return;
      }
      this.track(this.handle(msg));
    };
    const { bus, service, instance } = this.options;
    this.subscriptions.push(
      bus.nc.subscribe(subjects.request(service), { queue: subjects.queueGroup(service), callback }),
      bus.nc.subscribe(subjects.instanceRequest(instance), { callback }),
      bus.nc.subscribe(subjects.cancel(service), { callback: (err, msg) => (err ? undefined : this.onCancel(msg)) }),
    );
    await bus.nc.flush();
  }

  /** Takes no new requests; resolves when the calls in flight have answered or the grace period ends. */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    for (const sub of this.subscriptions) sub.unsubscribe();
    const grace = new Promise((resolve) => setTimeout(resolve, graceMs).unref());
    await Promise.race([Promise.allSettled([...this.inflight]), grace]);
  }

  /** A cancellation for a call this instance serves aborts it; others are not ours (or already done). */
  private onCancel(msg: Msg): void {
    const decoded = decodeEnvelope(msg.data);
    if (!decoded.ok || decoded.envelope.type !== "context_update" || decoded.envelope.payload.method !== CANCEL_METHOD) return;
    const correlationId = decoded.envelope.correlation_id;
    const controller = correlationId ? this.running.get(correlationId) : undefined;
    if (!controller) return;
    this.options.logger.debug({ correlationId }, "call cancelled by its caller");
    controller.abort(new DmcpError(ErrorCode.Cancelled, "the call was cancelled by its caller"));
  }

  private track(work: Promise<void>): void {
    this.inflight.add(work);
    void work.finally(() => this.inflight.delete(work));
  }

  private async handle(msg: Msg): Promise<void> {
    const started = process.hrtime.bigint();
    this.counters.requests++;
    try {
      await this.serve(msg);
    } finally {
      this.counters.processingTimeNs += Number(process.hrtime.bigint() - started);
    }
  }

  private async serve(msg: Msg): Promise<void> {
    const decoded = decodeEnvelope(msg.data, this.options.maxEnvelopeBytes ?? DEFAULT_MAX_ENVELOPE_BYTES);
    if (!decoded.ok) {
      this.reject(msg, decoded.error, salvageIds(decoded.raw).correlationId);
      return;
    }
    const envelope = decoded.envelope;
    if (envelope.type !== "prompt_request") {
      this.reject(msg, new DmcpError(ErrorCode.InvalidEnvelope, `expected a prompt_request, got ${envelope.type}`), envelope.correlation_id ?? envelope.id);
      return;
    }
    const correlationId = envelope.correlation_id ?? envelope.id;
    // Calls that finish quickly need no receipt: it only matters if this instance dies mid-call.
    const receipt = envelope.receipt === true ? setTimeout(() => this.acknowledge(msg, correlationId), this.options.receiptDelayMs ?? DEFAULT_RECEIPT_DELAY_MS) : undefined;
    const reply = { sender: this.options.instance, correlationId, sessionId: envelope.session_id };
    const cancel = new AbortController();
    this.running.set(correlationId, cancel);
    try {
      const result = await this.execute(envelope, correlationId, contextFromNats(msg.headers), cancel.signal, msg.reply);
      this.respond(msg, createEnvelope("prompt_response", { result }, reply));
    } catch (err) {
      const error = err instanceof DmcpError ? err : new DmcpError(ErrorCode.Internal, (err as Error).message, { cause: err });
      // The caller's own mistakes (bad arguments, unknown tools) are its news, not this process's.
      const callersFault = error.code === ErrorCode.UpstreamError || error.code === ErrorCode.InvalidParams || error.code === ErrorCode.UnknownTarget;
      this.options.logger[callersFault ? "debug" : "warn"]({ err: error, method: envelope.payload.method, correlationId }, "call failed");
      this.counters.errors++;
      this.counters.lastError = `${error.code}: ${error.message}`;
      const payload = errorPayload(error);
      // Which replica failed, so a caller can try another (upstream errors are the upstream's own data).
      if (error.code !== ErrorCode.UpstreamError) payload.data = { ...(isRecord(payload.data) ? payload.data : {}), instance: this.options.instance };
      this.respond(msg, createEnvelope("error_notification", payload, reply));
    } finally {
      clearTimeout(receipt);
      if (this.running.get(correlationId) === cancel) this.running.delete(correlationId);
      this.handledCount++;
    }
  }

  private execute(request: PromptRequest, correlationId: string, trace: Context, signal: AbortSignal, reply: string | undefined): Promise<Record<string, unknown>> {
    const notify = (method: string, params: Record<string, unknown>) => {
      if (!reply || signal.aborted) return;
      const update = createEnvelope("context_update", { method, params }, { sender: this.options.instance, correlationId });
      this.options.bus.nc.publish(reply, encodeEnvelope(update));
    };
    if (this.stopping) return Promise.reject(new DmcpError(ErrorCode.ShuttingDown, `${this.options.instance} is shutting down`));
    const timeoutMs = request.deadline ? Date.parse(request.deadline) - Date.now() : (this.options.defaultTimeoutMs ?? 60_000);
    if (timeoutMs <= 0) {
      return Promise.reject(new DmcpError(ErrorCode.DeadlineExceeded, "the request's deadline passed before it could start"));
    }
    return inSpan(
      `dmcp process ${request.payload.method}`,
      SpanKind.CONSUMER,
      trace,
      { "messaging.system": "nats", "messaging.destination.name": subjects.request(this.options.service), "dmcp.instance": this.options.instance },
      (ctx) => this.options.handler(request, { timeoutMs, correlationId, sessionId: request.session_id, trace: ctx, signal, notify }),
    );
  }

  /** Tells the caller which instance holds its call, so that the caller notices if this instance dies. */
  private acknowledge(msg: Msg, correlationId: string): void {
    if (!msg.reply) return;
    const receipt = createEnvelope(
      "context_update",
      { method: ACCEPTED_METHOD, params: { instance: this.options.instance } },
      { sender: this.options.instance, correlationId },
    );
    this.options.bus.nc.publish(msg.reply, encodeEnvelope(receipt));
  }

  private respond(msg: Msg, envelope: Envelope): void {
    const maxPayload = this.options.bus.maxPayload;
    let data = encodeEnvelope(envelope);
    if (data.byteLength > maxPayload) {
      const error = new DmcpError(ErrorCode.PayloadTooLarge, `the result of ${data.byteLength} bytes exceeds the bus limit of ${maxPayload} bytes`);
      data = encodeEnvelope(createEnvelope("error_notification", errorPayload(error), { sender: this.options.instance, correlationId: envelope.correlation_id }));
    }
    if (msg.reply) msg.respond(data);
  }

  /** Answers a message that cannot be served and reports it on the error subject. */
  private reject(msg: Msg, error: DmcpError, correlationId: string | undefined): void {
    this.counters.errors++;
    this.counters.lastError = `${error.code}: ${error.message}`;
    this.options.logger.warn({ err: error, subject: msg.subject }, "rejected a bad message");
    const payload = errorPayload(error);
    if (msg.reply) msg.respond(encodeEnvelope(createEnvelope("error_notification", payload, { sender: this.options.instance, correlationId })));
    // The report is a message of its own, with its own id.
    this.options.bus.nc.publish(subjects.errors(this.options.instance), encodeEnvelope(createEnvelope("error_notification", payload, { sender: this.options.instance, correlationId })));
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

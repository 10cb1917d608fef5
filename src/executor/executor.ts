/**
 * Serves one service on the bus: takes `prompt_request`s from the service's queue group (replicas share
 * the load) and from its own instance subject, calls the upstream MCP server, and answers with
 * `prompt_response` or `error_notification` under the same correlation id.
 */
import { randomUUID } from "node:crypto";
import type { Msg, Subscription } from "@nats-io/transport-node";
import type { Bus } from "../bus/connection.js";
import { InstancePresence } from "../bus/registry.js";
import {
  ACCEPTED_METHOD,
  createEnvelope,
  decodeEnvelope,
  DEFAULT_MAX_ENVELOPE_BYTES,
  DmcpError,
  encodeEnvelope,
  ErrorCode,
  errorPayload,
  salvageIds,
  subjects,
  type Catalog,
  type InstanceStatus,
  type PromptRequest,
} from "../protocol/index.js";
import type { Logger } from "../util/logger.js";
import { fetchCatalog } from "./catalog.js";
import { UpstreamSupervisor, type BackoffOptions } from "./supervisor.js";
import type { UpstreamConnector } from "./connector.js";
import type { UpstreamInfo } from "./upstream.js";

export interface ExecutorOptions {
  bus: Bus;
  service: string;
  connector: UpstreamConnector;
  logger: Logger;
  /** Unique per process; defaults to `<service>-<random>`. */
  instance?: string;
  heartbeatMs?: number;
  /** Envelopes larger than this are refused with PAYLOAD_TOO_LARGE. */
  maxEnvelopeBytes?: number;
  /** Longest time a call may run when its envelope carries no deadline. */
  defaultTimeoutMs?: number;
  /** How long stop() waits for calls in flight. */
  stopGraceMs?: number;
  /** A call still running after this long gets its acceptance receipt (when the caller asked for one). */
  receiptDelayMs?: number;
  backoff?: BackoffOptions;
}

/** Receipts are sent for calls running longer than this (PROTOCOL.md §5.2). */
export const DEFAULT_RECEIPT_DELAY_MS = 20;

const EMPTY_CATALOG: Catalog = { tools: [], resources: [], resource_templates: [], prompts: [] };
const LIST_CHANGED = new Set([
  "notifications/tools/list_changed",
  "notifications/resources/list_changed",
  "notifications/prompts/list_changed",
]);

export class Executor {
  readonly service: string;
  readonly instance: string;
  private readonly bus: Bus;
  private readonly logger: Logger;
  private readonly supervisor: UpstreamSupervisor;
  private readonly presence: InstancePresence;
  private readonly subscriptions: Subscription[] = [];
  private readonly inflight = new Set<Promise<void>>();
  private handled = 0;
  private status: InstanceStatus = "starting";
  private catalog: Catalog = EMPTY_CATALOG;
  private catalogRefresh: Promise<void> = Promise.resolve();
  private stopping = false;
  private readonly receiptDelayMs: number;

  constructor(private readonly options: ExecutorOptions) {
    this.bus = options.bus;
    this.service = options.service;
    this.instance = options.instance ?? `${options.service}-${randomUUID().slice(0, 8)}`;
    this.receiptDelayMs = options.receiptDelayMs ?? DEFAULT_RECEIPT_DELAY_MS;
    this.logger = options.logger.child({ service: this.service, instance: this.instance });
    this.presence = new InstancePresence(this.bus, {
      service: this.service,
      instance: this.instance,
      ...(options.heartbeatMs ? { intervalMs: options.heartbeatMs } : {}),
      load: () => ({ status: this.status, inflight: this.inflight.size, handled: this.handled }),
    });
    this.supervisor = new UpstreamSupervisor(
      options.connector,
      this.logger,
      {
        onUp: (info) => this.onUpstreamUp(info),
        onDown: () => this.setStatus("degraded"),
        onNotification: (method) => {
          if (LIST_CHANGED.has(method)) this.refreshCatalog();
        },
      },
      options.backoff,
    );
  }

  /** Connects the upstream (retrying in the background if it fails), then starts taking requests. */
  async start(): Promise<void> {
    const up = await this.supervisor.start();
    await this.catalogRefresh;
    if (!up) this.status = "degraded";
    const callback = (err: Error | null, msg: Msg) => {
      if (err) {
        this.logger.error({ err }, "subscription error");
        return;
      }
      this.track(this.handle(msg));
    };
    this.subscriptions.push(
      this.bus.nc.subscribe(subjects.request(this.service), { queue: subjects.queueGroup(this.service), callback }),
      this.bus.nc.subscribe(subjects.instanceRequest(this.instance), { callback }),
    );
    // Subscribed before announced: a gateway that sees the announcement can call at once.
    await this.bus.nc.flush();
    await this.presence.start(this.announcement());
    this.logger.info({ upstream: this.options.connector.description, status: this.status }, "executor serving");
  }

  /** Stops taking work, finishes calls in flight (up to the grace period), leaves the registry. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.status = "stopping";
    for (const sub of this.subscriptions) sub.unsubscribe();
    await this.presence.stop();
    const grace = new Promise((resolve) => setTimeout(resolve, this.options.stopGraceMs ?? 10_000).unref());
    await Promise.race([Promise.allSettled([...this.inflight]), grace]);
    await this.supervisor.stop();
  }

  get currentCatalog(): Catalog {
    return this.catalog;
  }

  private track(work: Promise<void>): void {
    this.inflight.add(work);
    void work.finally(() => this.inflight.delete(work));
  }

  private async handle(msg: Msg): Promise<void> {
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
    const receipt = envelope.receipt === true ? setTimeout(() => this.acknowledge(msg, correlationId), this.receiptDelayMs) : undefined;
    try {
      const result = await this.execute(envelope);
      this.respond(msg, createEnvelope("prompt_response", { result }, this.replyOptions(envelope, correlationId)));
    } catch (err) {
      const error = err instanceof DmcpError ? err : new DmcpError(ErrorCode.Internal, (err as Error).message, { cause: err });
      if (error.code !== ErrorCode.UpstreamError) this.logger.warn({ err: error, method: envelope.payload.method, correlationId }, "call failed");
      const payload = errorPayload(error);
      // Which replica failed, so a caller can try another (upstream errors are the upstream's own data).
      if (error.code !== ErrorCode.UpstreamError) payload.data = { ...(isRecord(payload.data) ? payload.data : {}), instance: this.instance };
      this.respond(msg, createEnvelope("error_notification", payload, this.replyOptions(envelope, correlationId)));
    } finally {
      clearTimeout(receipt);
      this.handled++;
    }
  }

  private execute(request: PromptRequest): Promise<Record<string, unknown>> {
    if (this.stopping) return Promise.reject(new DmcpError(ErrorCode.ShuttingDown, `executor ${this.instance} is shutting down`));
    const remaining = request.deadline ? Date.parse(request.deadline) - Date.now() : (this.options.defaultTimeoutMs ?? 60_000);
    if (remaining <= 0) {
      return Promise.reject(new DmcpError(ErrorCode.DeadlineExceeded, "the request's deadline passed before it could start"));
    }
    return this.supervisor.request(request.payload.method, request.payload.params, { timeoutMs: remaining });
  }

  /** Tells the caller which instance holds its call, so that the caller notices if this instance dies. */
  private acknowledge(msg: Msg, correlationId: string): void {
    if (!msg.reply) return;
    const receipt = createEnvelope(
      "context_update",
      { method: ACCEPTED_METHOD, params: { instance: this.instance } },
      { sender: this.instance, correlationId },
    );
    this.bus.nc.publish(msg.reply, encodeEnvelope(receipt));
  }

  private replyOptions(request: PromptRequest, correlationId: string) {
    return { sender: this.instance, correlationId, sessionId: request.session_id };
  }

  private respond(msg: Msg, envelope: ReturnType<typeof createEnvelope>): void {
    let data = encodeEnvelope(envelope);
    if (data.byteLength > this.bus.maxPayload) {
      const error = new DmcpError(
        ErrorCode.PayloadTooLarge,
        `the result of ${data.byteLength} bytes exceeds the bus limit of ${this.bus.maxPayload} bytes`,
      );
      data = encodeEnvelope(createEnvelope("error_notification", errorPayload(error), { sender: this.instance, correlationId: envelope.correlation_id }));
    }
    if (msg.reply) msg.respond(data);
  }

  /** Answers a message that cannot be served and reports it on the error subject. */
  private reject(msg: Msg, error: DmcpError, correlationId: string | undefined): void {
    this.logger.warn({ err: error, subject: msg.subject }, "rejected a bad message");
    const envelope = createEnvelope("error_notification", errorPayload(error), { sender: this.instance, correlationId });
    const data = encodeEnvelope(envelope);
    if (msg.reply) msg.respond(data);
    this.bus.nc.publish(subjects.errors(this.instance), data);
  }

  private onUpstreamUp(info: UpstreamInfo): void {
    this.setStatus("ready");
    this.refreshCatalog(info);
  }

  private setStatus(status: InstanceStatus): void {
    if (this.stopping || this.status === status) return;
    this.status = status;
    this.publishAnnouncement();
  }

  /** Re-reads the upstream's lists (after start, restart or list_changed) and re-announces. */
  private refreshCatalog(info = this.supervisor.info): void {
    if (!info) return;
    this.catalogRefresh = this.catalogRefresh
      .then(() => fetchCatalog(info, (method, params) => this.supervisor.request(method, params, { timeoutMs: 30_000 })))
      .then((catalog) => {
        this.catalog = catalog;
        this.publishAnnouncement();
      })
      .catch((err: unknown) => this.logger.warn({ err }, "could not read the upstream's catalog"));
  }

  private publishAnnouncement(): void {
    void this.presence.announce(this.announcement()).catch((err: unknown) => this.logger.warn({ err }, "announcement failed"));
  }

  private announcement() {
    const info = this.supervisor.info;
    return {
      catalog: this.catalog,
      capabilities: info?.capabilities ?? {},
      ...(info ? { server_info: info.serverInfo, protocol_version: info.protocolVersion } : {}),
      ...(info?.instructions ? { instructions: info.instructions } : {}),
    };
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

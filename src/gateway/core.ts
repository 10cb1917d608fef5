/**
 * The gateway's MCP-facing core, shared by every client session and both inbound transports: it puts
 * together the catalog keeper (what the services on the bus offer), access control, the dispatcher
 * (how calls reach them), the relay of server-to-client traffic, MCP Tasks and the gateway's own
 * `dmcp` service, and builds each request's Call on the current catalog.
 */
import type { Registry } from "prom-client";
import { Counter } from "prom-client";
import { ensureCacheBucket, type Bus, type ContextRetention } from "../bus/index.js";
import { instrumentCache } from "../metrics/index.js";
import type { Logger } from "../util/index.js";
import { AccessControl } from "./access/access-control.js";
import { GatewayCache } from "./cache/index.js";
import type { CallerAccess } from "./access/policy.js";
import { Call, type CallRequest } from "./calls/call.js";
import { Dispatcher, type CallObserver } from "./calls/dispatcher.js";
import type { AggregatedCatalog } from "./catalog/catalog.js";
import { CatalogKeeper, type ListKind } from "./catalog/catalog-keeper.js";
import { ContextService } from "./context-service.js";
import { SessionRelay } from "./sessions/session-relay.js";
import { GatewayTasks } from "./tasks/tasks.js";

export interface GatewayCoreOptions extends CallerAccess {
  bus: Bus;
  logger: Logger;
  /** Unique id of this gateway process on the bus. */
  id: string;
  /** Deadline of each forwarded call. */
  callTimeoutMs?: number;
  serverInfo?: { name: string; version: string };
  /** Limits of the context stream (age, size, count); without them the stream keeps its own. */
  contextRetention?: ContextRetention;
  /** The TTL of the result store of durable calls, should this gateway create it. */
  resultTtlMs?: number | undefined;
  /** Where to record call metrics; none are kept without it. */
  metrics?: Registry;
  /**
   * The gateway cache (docs/caching.md): on unless `enabled` is false; its local tier holds at most
   * `maxBytes`, the shared bucket `sharedMaxBytes` (set on the bucket; unset: a bucket without a bound gets the default).
   */
  cache?: { enabled?: boolean | undefined; maxBytes?: number | undefined; sharedMaxBytes?: number | undefined } | undefined;
}

export const DEFAULT_CALL_TIMEOUT_MS = 60_000;

export class GatewayCore {
  readonly serverInfo: { name: string; version: string };
  readonly context: ContextService;
  /** What the services on the bus offer, kept current from the registry. */
  readonly catalogKeeper: CatalogKeeper;
  /** The access policy, applied to each call. */
  readonly access: AccessControl;
  /** Sends calls to the services on the bus. */
  readonly dispatcher: Dispatcher;
  /** Server-to-client traffic of the client sessions this gateway holds (PROTOCOL.md §16). */
  readonly sessions: SessionRelay;
  /** MCP Tasks run by this gateway, their records in NATS KV (PROTOCOL.md §17). */
  readonly tasks: GatewayTasks;
  /** Read-only answers served without a bus hop; undefined when the cache is off. */
  readonly cache: GatewayCache | undefined;
  private readonly clientDrops: Counter<"transport" | "reason"> | undefined;

  constructor(private readonly options: GatewayCoreOptions) {
    this.context = new ContextService({
      bus: options.bus,
      logger: options.logger,
      sender: options.id,
      ...(options.contextRetention ? { retention: options.contextRetention } : {}),
    });
    this.serverInfo = options.serverInfo ?? { name: "dmcp-gateway", version: "0.1.0" };
    this.catalogKeeper = new CatalogKeeper({ bus: options.bus, logger: options.logger, id: options.id, context: this.context, metrics: options.metrics });
    this.access = new AccessControl(options);
    if (options.cache?.enabled !== false) {
      const cache = new GatewayCache({
        logger: options.logger,
        id: options.id,
        maxBytes: options.cache?.maxBytes,
        sealed: (service) => options.bus.codec.requestSeal(service) !== undefined,
      });
      this.catalogKeeper.onServicesChanged((catalogs) => cache.servicesChanged(catalogs));
      if (options.metrics) instrumentCache(options.metrics, () => cache.stats());
      this.cache = cache;
    }
    this.dispatcher = new Dispatcher({
      bus: options.bus,
      logger: options.logger,
      id: options.id,
      registry: this.catalogKeeper.registry,
      context: this.context,
      resultTtlMs: options.resultTtlMs,
      metrics: options.metrics,
      cache: this.cache,
    });
    this.sessions = new SessionRelay({ bus: options.bus, id: options.id, logger: options.logger });
    this.tasks = new GatewayTasks({
      bus: options.bus,
      id: options.id,
      logger: options.logger,
      host: { call: (request) => this.call(request), dispatch: (call) => this.dispatcher.dispatch(call) },
    });
    if (options.metrics) {
      this.clientDrops = new Counter({
        name: "dmcp_gateway_client_messages_dropped_total",
        help: "Client messages dropped unanswered: responses to no request, notifications the gateway does not handle",
        labelNames: ["transport", "reason"],
        registers: [options.metrics],
      });
    }
  }

  /** Counts a client message that gets no answer and has no effect. */
  clientMessageDropped(transport: string, reason: "response" | "notification"): void {
    this.clientDrops?.inc({ transport, reason });
  }

  async start(): Promise<void> {
    // The gateway creates every stream and bucket (executors and agents wait for them) and checks them.
    await this.context.start();
    await this.dispatcher.prepare();
    await this.tasks.prepare();
    await this.attachSharedCache();
    this.sessions.start();
    await this.catalogKeeper.start();
  }

  /** The cache's shared tier; without it (no bucket, no permission) the cache stays local to this gateway. */
  private async attachSharedCache(): Promise<void> {
    if (!this.cache) return;
    try {
      this.cache.attachShared(await ensureCacheBucket(this.options.bus, { maxBytes: this.options.cache?.sharedMaxBytes }), this.options.bus);
    } catch (err) {
      this.options.logger.warn({ err }, "the shared cache bucket is unavailable: this gateway caches locally only");
    }
  }

  get busConnected(): boolean {
    return this.options.bus.isConnected();
  }

  /** Ready to serve: connected to the bus, registry read. */
  get ready(): boolean {
    return this.catalogKeeper.ready && this.options.bus.isConnected();
  }

  async stop(): Promise<void> {
    // Before the dispatcher fails its pending calls: tasks in flight stay working, for adoption.
    this.tasks.stop();
    this.context.stop();
    this.sessions.stop();
    this.dispatcher.stop();
    await this.catalogKeeper.stop();
  }

  /** The aggregated catalog of every service on the bus. */
  get catalog(): AggregatedCatalog {
    return this.catalogKeeper.catalog;
  }

  get instances() {
    return this.catalogKeeper.registry.list();
  }

  /** This gateway instance's id on the bus (its session subject is named after it). */
  get gatewayId(): string {
    return this.options.id;
  }

  /** This gateway's caller key (public curve key), which other gateways seal to for it; undefined without message security. */
  get callerKey(): string | undefined {
    return this.options.bus.codec.callerPublicKey?.();
  }

  /** Called with the kind of list that changed, after every registry change that alters it. */
  onListChanged(listener: (kind: ListKind) => void): () => void {
    return this.catalogKeeper.onListChanged(listener);
  }

  /** Sees every call the dispatcher sends or refuses to route (see Dispatcher.observeCalls). */
  observeCalls(observer: CallObserver): () => void {
    return this.dispatcher.observeCalls(observer);
  }

  /**
   * The Call of one request, routed by the catalog as it is now, with the gateway's call timeout; its
   * `caller` is worked out from its identity unless given.
   */
  call(request: CallRequest): Call {
    const caller = request.caller ?? (request.identity ? this.access.callerOf(request.identity) : undefined);
    return new Call(request, this.catalogKeeper.directory, this.options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS, caller);
  }
}

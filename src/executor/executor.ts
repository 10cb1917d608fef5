/**
 * An executor: serves one service on the bus by forwarding each `prompt_request` to an upstream MCP
 * server, keeps that server alive (restart with backoff), and announces what it offers.
 */
import { randomUUID } from "node:crypto";
import {
  DEFAULT_DURABLE_SETTINGS,
  DurableWorker,
  InstancePresence,
  NatsServicesEndpoint,
  planDelivery,
  REGISTRY_STREAM,
  ServiceEndpoint,
  usesDurable,
  whenStreamsExist,
  WORK_STREAMS,
  type Bus,
  type DeliveryOptions,
  type RequestContext,
  type RequestHandler,
} from "../bus/index.js";
import { Counter, Gauge, type Registry } from "prom-client";
import { CallMetrics, shared } from "../metrics/index.js";
import { SpanKind } from "@opentelemetry/api";
import { inSpan, withTraceMeta } from "../tracing/index.js";
import { ErrorCode, type CachePlan, type Catalog, type InstanceStatus, UpstreamError } from "../protocol/index.js";
import type { Logger } from "../util/index.js";
import {
  CLIENT_INFO,
  describeError,
  fetchCatalog,
  ownStatelessMeta,
  StatelessLane,
  UpstreamListen,
  UpstreamOpener,
  UpstreamSupervisor,
  type BackoffOptions,
  type McpUpstream,
  type UpstreamConnector,
  type UpstreamInfo,
  type UpstreamRequestOptions,
} from "./upstream/index.js";
import { ProgressRelay } from "./progress.js";
import { audited, withCallerMeta } from "./caller-identity.js";
import { META_ATTEMPT, META_CORRELATION_ID, RELAYED_CLIENT_NOTIFICATIONS, SESSION_CLOSE_METHOD, STREAM_CLOSED_METHOD } from "../protocol/index.js";
import { executorRequest, type ExecutorRequest } from "./request.js";
import { UpstreamSessions } from "./sessions.js";
import { inputWithoutSession, isInputRequired } from "./input-rounds.js";

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
  /** Where to record call and upstream metrics; none are kept without it. */
  metrics?: Registry;
  /** Pass the envelope's caller to the upstream in `_meta["io.dmcp/caller"]`. */
  forwardCaller?: boolean | undefined;
  /** Log every call at info level with its caller, method, target and outcome. */
  audit?: boolean | undefined;
  /** Durable delivery of tools/call (PROTOCOL.md §15); without it every call is direct. */
  delivery?: DeliveryOptions | undefined;
  /** Opt-in cache TTLs announced to gateways (PROTOCOL.md §18), for read-only tools and resources by pattern. */
  cache?: CachePlan | undefined;
  /** Closes a client session's upstream session after this long without calls (PROTOCOL.md §16). */
  sessionIdleMs?: number | undefined;
  /** At most this many client sessions get upstream sessions of their own; more share the executor's. */
  maxSessions?: number | undefined;
  /**
   * An upstream that fails its first start: keep trying in the background (start() resolves, the
   * instance serves as degraded) instead of failing start(). Once up, a lost upstream is always restarted.
   */
  waitForUpstream?: boolean | undefined;
}

const EMPTY_CATALOG: Catalog = { tools: [], resources: [], resource_templates: [], prompts: [] };
const LIST_CHANGED = new Set(["notifications/tools/list_changed", "notifications/resources/list_changed", "notifications/prompts/list_changed"]);
const LISTEN_ACKNOWLEDGED = "notifications/subscriptions/acknowledged";

export class Executor {
  readonly service: string;
  readonly instance: string;
  private readonly logger: Logger;
  private readonly supervisor: UpstreamSupervisor;
  private readonly presence: InstancePresence;
  private readonly endpoint: ServiceEndpoint;
  private readonly natsServices: NatsServicesEndpoint;
  private readonly worker: DurableWorker | undefined;
  private readonly progress = new ProgressRelay();
  private readonly sessions: UpstreamSessions;
  private readonly lane: StatelessLane;
  private readonly listen: UpstreamListen;
  /** The stateless lane's own listen stream (its child announces list changes only there). */
  private readonly laneListen: UpstreamListen;
  private status: InstanceStatus = "starting";
  private catalog: Catalog = EMPTY_CATALOG;
  private catalogRefresh: Promise<void> = Promise.resolve();
  /** Set when shutdown begins (beginShutdown or stop). */
  private stopping = false;
  private stopped: Promise<void> | undefined;
  /** Ends the wait for a gateway to create the streams. */
  private readonly joinAbort = new AbortController();
  private fail: (err: Error) => void = () => undefined;
  /**
   * Resolves when the executor cannot go on: a stream it waited for turned up with settings dMCP does
   * not expect, or the bus refused its announcement. Whoever runs it should stop it then.
   */
  readonly failed = new Promise<Error>((resolve) => (this.fail = resolve));

  constructor(private readonly options: ExecutorOptions) {
    this.service = options.service;
    this.instance = options.instance ?? `${options.service}-${randomUUID().slice(0, 8)}`;
    this.logger = options.logger.child({ service: this.service, instance: this.instance });
    // The upstream sees the trace in `_meta` (MCP's place for it), as a child of this hop's span, and a
    // progress token of this executor's own (callers' tokens may collide in the shared upstream session).
    const forward: RequestHandler = (request, context) =>
      inSpan(`mcp ${request.payload.method}`, SpanKind.CLIENT, context.trace, { "mcp.method.name": request.payload.method, "dmcp.service": this.service }, (ctx) => {
        const retagged = this.progress.retag(request.payload.params, context.notify);
        const withCaller = options.forwardCaller ? withCallerMeta(retagged.params, request.caller) : retagged.params;
        // Durable calls may run more than once (after a crash): the upstream gets what it needs to tell.
        const params = context.attempt === undefined ? withCaller : withDeliveryMeta(withCaller, context.correlationId, context.attempt);
        const call = executorRequest(request, withTraceMeta(params, ctx), context);
        // An upstream that closes the call's stream to be polled: the caller's own stream may close too (PROTOCOL.md §5.6).
        const onStreamClosed = () => context.notify(STREAM_CLOSED_METHOD, {});
        const upstreamOptions = { timeoutMs: context.timeoutMs, revision: call.revision, signal: context.cancellation, onNotification: context.notify, onStreamClosed };
        const served = this.serve(call, upstreamOptions, context.notify);
        return retagged.release ? served.finally(retagged.release) : served;
      });
    const metrics = options.metrics ? this.instrument(options.metrics) : undefined;
    const measured: RequestHandler = metrics
      ? (request, context) => metrics.calls.observe({ service: this.service, method: request.payload.method }, () => forward(request, context))
      : forward;
    this.endpoint = new ServiceEndpoint({
      bus: options.bus,
      service: this.service,
      instance: this.instance,
      logger: this.logger,
      handler: options.audit ? audited(measured, this.logger) : measured,
      ...(options.maxEnvelopeBytes ? { maxEnvelopeBytes: options.maxEnvelopeBytes } : {}),
      ...(options.defaultTimeoutMs ? { defaultTimeoutMs: options.defaultTimeoutMs } : {}),
      ...(options.receiptDelayMs !== undefined ? { receiptDelayMs: options.receiptDelayMs } : {}),
    });
    this.worker = usesDurable(options.delivery)
      ? new DurableWorker({
          bus: options.bus,
          service: this.service,
          instance: this.instance,
          logger: this.logger,
          endpoint: this.endpoint,
          settings: { ...DEFAULT_DURABLE_SETTINGS, ...options.delivery?.settings },
          canServe: () => this.supervisor.isUp && !this.stopping,
          metrics: options.metrics,
        })
      : undefined;
    this.natsServices = new NatsServicesEndpoint(options.bus, {
      name: this.service,
      id: this.instance,
      version: CLIENT_INFO.version,
      description: `dMCP executor for ${options.connector.description}`,
      metadata: { kind: "executor", upstream: options.connector.description },
      endpoint: this.endpoint,
    });
    this.presence = new InstancePresence(options.bus, {
      service: this.service,
      instance: this.instance,
      ...(options.heartbeatMs ? { intervalMs: options.heartbeatMs } : {}),
      load: () => ({ status: this.status, inflight: this.endpoint.inflightCount + (this.worker?.inflightCount ?? 0), handled: this.endpoint.handled }),
    });
    // The executor builds its upstream sessions on the connector's transports (shared, per client session, stateless lane).
    const opener = new UpstreamOpener(options.connector);
    // A list that changed in a client session's upstream session (a stdio server per session) is read there.
    // A listen stream that (re)opens may have missed changes while none was open: the lists are read then too.
    const onNotification = (method: string, params: Record<string, unknown> | undefined, upstream?: McpUpstream) => {
      if (LIST_CHANGED.has(method) || method === LISTEN_ACKNOWLEDGED) this.refreshCatalog(upstream?.info ?? this.supervisor.info, upstream);
      else if (method === "notifications/progress") this.progress.deliver(params);
    };
    this.sessions = new UpstreamSessions({
      bus: options.bus,
      service: this.service,
      instance: this.instance,
      opener,
      logger: this.logger,
      onNotification,
      idleMs: options.sessionIdleMs,
      maxSessions: options.maxSessions,
      onLost: () => metrics?.restarts.inc({ service: this.service }),
    });
    // A list that changed on the stateless lane (its own child) is read there too, like a client session's.
    const onLaneNotification = (method: string, params: Record<string, unknown> | undefined) => {
      if (LIST_CHANGED.has(method) || method === LISTEN_ACKNOWLEDGED) this.refreshCatalog(this.lane.info ?? this.supervisor.info, this.lane);
      else onNotification(method, params);
    };
    const onLaneUp = (info: UpstreamInfo) => {
      this.publishAnnouncement();
      const version = info.statelessVersions?.[0];
      if (version && !this.stopping) this.laneListen.begin(version, info);
    };
    const onLaneDown = () => {
      this.laneListen.end();
      metrics?.restarts.inc({ service: this.service });
    };
    this.lane = new StatelessLane(opener, this.logger, { onUp: onLaneUp, onNotification: onLaneNotification, onDown: onLaneDown }, options.backoff);
    this.supervisor = new UpstreamSupervisor(
      opener,
      this.logger,
      {
        onUp: (info, upstream) => {
          metrics?.up.set({ service: this.service }, 1);
          this.onUpstreamUp(info, upstream);
        },
        onDown: () => {
          this.listen.end();
          metrics?.up.set({ service: this.service }, 0);
          metrics?.restarts.inc({ service: this.service });
          this.setStatus("degraded");
        },
        onNotification,
      },
      options.backoff,
    );
    this.listen = new UpstreamListen((method, params, upstreamOptions) => this.supervisor.request(method, params, upstreamOptions), this.logger);
    this.laneListen = new UpstreamListen((method, params, upstreamOptions) => this.lane.request(method, params, upstreamOptions), this.logger);
  }

  /** Runs one request where it belongs: the stateless lane, its client session's upstream session, or the shared one. */
  private async serve(call: ExecutorRequest, options: UpstreamRequestOptions, notify: RequestContext["notify"]): Promise<Record<string, unknown>> {
    // 2026-07-28 requests on the upstream's stateless lane, if its transport needs one (stdio) and it serves them.
    // (A session-based request skips the lane's wait: most calls are, and that wait is a promise each.)
    if (call.revision !== undefined && (await this.lane.takes(call.revision))) return this.lane.request(call.method, call.params, options);
    // A client session's calls run in its own upstream session; other calls share the executor's.
    if (this.sessions.accepts(call)) return this.sessions.request(call, notify, options);
    // Nothing to close or tell in the shared session.
    if (call.method === SESSION_CLOSE_METHOD || RELAYED_CLIENT_NOTIFICATIONS.has(call.method)) return {};
    const result = await this.supervisor.request(call.method, call.params, options);
    // A 2025 caller cannot answer an input_required result, and here there is no client session to ask.
    if (isInputRequired(result) && call.revision === undefined) throw inputWithoutSession();
    return result;
  }

  /**
   * Connects the upstream, then starts taking requests. An upstream that does not start fails this
   * (UPSTREAM_UNAVAILABLE naming it), unless `waitForUpstream` keeps trying in the background.
   */
  async start(): Promise<void> {
    const description = this.options.connector.description;
    const up = await this.supervisor.start(this.options.waitForUpstream ?? false).catch((err: unknown) => {
      throw new UpstreamError(ErrorCode.UpstreamUnavailable, `could not start the upstream MCP server (${description}): ${describeError(err)}`, { cause: err });
    });
    this.lane.start();
    // The first announcement says what discovery found (the main session's, read with the catalog, or
    // the stateless lane's): a gateway must know at once whether the upstream keeps its own tasks.
    await Promise.all([this.catalogRefresh, this.lane.ready]);
    if (!up) this.status = "degraded";
    // Subscribed before announced: a gateway that sees the announcement can call at once.
    try {
      await this.endpoint.start();
      this.natsServices.start();
      // Announced, and taking durable work, once a gateway has made the streams: at once if it has.
      const streams = [REGISTRY_STREAM, ...(this.worker ? WORK_STREAMS : [])];
      await whenStreamsExist(this.options.bus, streams, () => this.join(), {
        logger: this.logger,
        signal: this.joinAbort.signal,
        who: `executor ${this.service}`,
        onFatal: (err) => this.fail(err),
      });
    } catch (err) {
      // Refused by the bus (e.g. the NATS user may not serve this service): leave nothing running.
      this.natsServices.stop();
      await this.worker?.stop(0);
      await this.endpoint.stop(0);
      await this.lane.stop();
      await this.supervisor.stop();
      throw err;
    }
    this.logger.info({ upstream: description, status: this.status }, "executor serving");
  }

  private async join(): Promise<void> {
    await this.worker?.start();
    await this.presence.start(this.announcement());
  }

  /**
   * Shutdown has begun: no more durable work is taken, and an upstream that goes away from now on is
   * let go (in a terminal, Ctrl-C reaches the wrapped servers at the same moment): no restart, no
   * announcement. stop() begins with it; a process that stops other components first calls it at once.
   */
  beginShutdown(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.joinAbort.abort(new Error("the executor stopped"));
    this.status = "stopping";
    this.supervisor.beginShutdown();
    this.lane.beginShutdown();
    this.sessions.beginShutdown();
  }

  /** Stops taking work, leaves the registry at once, finishes calls in flight (up to the grace period). */
  stop(): Promise<void> {
    this.beginShutdown();
    this.stopped ??= this.shutdown();
    return this.stopped;
  }

  private async shutdown(): Promise<void> {
    const draining = Promise.all([this.endpoint.stop(this.options.stopGraceMs), this.worker?.stop(this.options.stopGraceMs)]);
    this.natsServices.stop();
    await this.presence.stop();
    await draining;
    this.listen.end();
    this.laneListen.end();
    await this.sessions.closeAll();
    await this.lane.stop();
    await this.supervisor.stop();
  }

  private instrument(registry: Registry) {
    return shared(registry, "executor", () => ({
      calls: new CallMetrics(registry, "dmcp_executor", ["service", "method"]),
      up: new Gauge({ name: "dmcp_executor_upstream_up", help: "1 while the upstream MCP server is connected", labelNames: ["service"], registers: [registry] }),
      restarts: new Counter({
        name: "dmcp_executor_upstream_restarts_total",
        help: "Times the upstream MCP server (or a client session's upstream session, or its stateless lane) went away and was restarted",
        labelNames: ["service"],
        registers: [registry],
      }),
    }));
  }

  /** Serving, with its upstream connected. */
  get ready(): boolean {
    return this.status === "ready";
  }

  get currentCatalog(): Catalog {
    return this.catalog;
  }

  private onUpstreamUp(info: UpstreamInfo, upstream: McpUpstream): void {
    this.setStatus("ready");
    // Read once discovery has said whether the server also speaks 2026-07-28 (it is then read, and
    // heard, at that revision); the announcement that follows also carries what discovery found.
    this.refreshCatalog(info, this.supervisor, upstream.discovery);
    void upstream.discovery.then(() => {
      const version = info.statelessVersions?.[0];
      if (version && !upstream.isClosed && !this.stopping) this.listen.begin(version, info);
    });
  }

  private setStatus(status: InstanceStatus): void {
    if (this.stopping || this.status === status) return;
    this.status = status;
    this.worker?.wake();
    this.publishAnnouncement();
  }

  /**
   * Re-reads the upstream's lists (after start, restart or list_changed) and re-announces. A server
   * that speaks 2026-07-28 is read at that revision: a change it announces on a listen stream is one
   * of what it lists there (an older session of its own may still list what it had). `after`: what
   * to wait for first (a new session's discovery).
   */
  private refreshCatalog(info = this.supervisor.info, from: Pick<McpUpstream, "request"> = this.supervisor, after: Promise<void> = Promise.resolve()): void {
    if (!info) return;
    const list = (method: string, params: Record<string, unknown> | undefined) => {
      const version = info.statelessVersions?.[0];
      return from.request(method, version ? { ...params, _meta: ownStatelessMeta(version) } : params, { timeoutMs: 30_000, revision: version });
    };
    this.catalogRefresh = this.catalogRefresh
      .then(() => after)
      .then(() => fetchCatalog(info, list))
      .then((catalog) => {
        this.catalog = catalog;
        this.publishAnnouncement();
      })
      .catch((err: unknown) => this.logger[this.stopping ? "debug" : "warn"]({ err }, "could not read the upstream's catalog"));
  }

  /** Not once shutdown has begun: the instance has said "stopping" and leaves the registry. */
  private publishAnnouncement(): void {
    if (this.stopping) return;
    void this.presence.announce(this.announcement()).catch((err: unknown) => this.logger[this.stopping ? "debug" : "warn"]({ err }, "announcement failed"));
  }

  private announcement() {
    const info = this.supervisor.info;
    // What 2026-07-28 requests find: the main session's discovery, or the stateless lane's (stdio).
    const statelessCapabilities = info?.statelessCapabilities ?? this.lane.info?.statelessCapabilities;
    return {
      catalog: this.catalog,
      capabilities: info?.capabilities ?? {},
      ...(info ? { server_info: info.serverInfo, protocol_version: info.protocolVersion } : {}),
      ...(info?.instructions ? { instructions: info.instructions } : {}),
      ...(statelessCapabilities ? { stateless_capabilities: statelessCapabilities } : {}),
      ...(this.sessions.enabled ? { client_sessions: true } : {}),
      ...(this.options.cache && this.options.cache.rules.length > 0 ? { cache: this.options.cache } : {}),
      ...(this.options.delivery
        ? {
            delivery: planDelivery(
              this.catalog,
              this.options.delivery,
              this.worker ? (this.options.delivery.settings?.maxDeliver ?? DEFAULT_DURABLE_SETTINGS.maxDeliver) : undefined,
            ),
          }
        : {}),
    };
  }
}

/** `params` with the call's correlation id and delivery attempt in `_meta` (other `_meta` kept). */
function withDeliveryMeta(params: Record<string, unknown> | undefined, correlationId: string, attempt: number): Record<string, unknown> {
  const meta = { ...((params?._meta as Record<string, unknown> | undefined) ?? {}), [META_CORRELATION_ID]: correlationId, [META_ATTEMPT]: attempt };
  return { ...(params ?? {}), _meta: meta };
}

/**
 * The gateway's MCP-facing core, shared by every client session and both inbound transports: the
 * aggregated catalog kept current from the registry, and the routing of calls onto the bus.
 */
import type { Bus } from "../../bus/connection.js";
import { RegistryView } from "../../bus/registry.js";
import { BusCaller, type CallOptions } from "../../bus/requester.js";
import { DurableCaller } from "../../bus/durable/durable-route.js";
import { encodeFor } from "../../security/codec.js";
import { createEnvelope, DmcpError, type Caller, type ClientSession, ErrorCode, SESSION_CLOSE_METHOD, errorPayload, isDmcpError, JsonRpcErrorCode, subjects } from "../../protocol/index.js";
import type { Logger } from "../../util/logger.js";
import type { Registry } from "prom-client";
import { SpanKind, type Context } from "@opentelemetry/api";
import { contextFromMeta, inSpan } from "../../tracing/propagation.js";
import type { ContextRetention } from "../../bus/context-streams.js";
import { CallMetrics, outcomeOf } from "../../metrics/registry.js";
import { Counter, Gauge } from "prom-client";
import { EXTENSION_METHODS } from "../catalog/extensions.js";
import { AggregatedCatalog, catalogsByService } from "../catalog/catalog.js";
import { policyTarget, routeRequest } from "../catalog/routing.js";
import { ContextService, GATEWAY_SERVICE } from "../context-service.js";
import { DeliveryTable } from "../../bus/durable/delivery-table.js";
import { ALLOW_ALL, type Access, type CallerAccess, type Identity } from "../access/policy.js";
import type { ListKind } from "../sessions/session.js";
import { SessionRelay } from "../sessions/session-relay.js";
import type { SessionPins } from "./session-pins.js";
import { GatewayTasks } from "../tasks/tasks.js";
import { TASKS_EXTENSION } from "../tasks/task-methods.js";

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
}

export const DEFAULT_CALL_TIMEOUT_MS = 60_000;
/** How many reported registry problems the gateway remembers, so that it reports each once. */
const MAX_REMEMBERED_PROBLEMS = 1000;

export class GatewayCore {
  catalog: AggregatedCatalog = new AggregatedCatalog(new Map());
  readonly serverInfo: { name: string; version: string };
  private readonly registry: RegistryView;
  private readonly caller: BusCaller;
  /** Durable calls go through the work queue (PROTOCOL.md §15), by the plans the services announce. */
  private readonly durable: DurableCaller;
  private deliveries = new DeliveryTable();
  /** Services whose instances keep upstream sessions per client session (their announcements say so). */
  private sessionServices = new Set<string>();
  /** Services whose upstreams keep MCP Tasks of their own (the tasks extension in their 2026 discovery). */
  private taskServices = new Set<string>();
  readonly context: ContextService;
  /** Server-to-client traffic of the client sessions this gateway holds (PROTOCOL.md §16). */
  readonly sessions: SessionRelay;
  /** MCP Tasks run by this gateway, their records in NATS KV (PROTOCOL.md §17). */
  readonly tasks: GatewayTasks;
  private readonly callMetrics: CallMetrics | undefined;
  private readonly clientDrops: Counter<"transport" | "reason"> | undefined;
  private readonly callObservers = new Set<CallObserver>();
  private registryLoaded = false;
  private readonly listeners = new Set<(kind: ListKind) => void>();
  private fingerprints: Record<ListKind, string> = { tools: "[]", resources: "[][]", prompts: "[]" };
  private reportedCollisions = new Set<string>();
  private readonly reportedInvalid = new Set<string>();

  constructor(private readonly options: GatewayCoreOptions) {
    this.registry = new RegistryView(options.bus);
    this.caller = new BusCaller(options.bus, options.id, { listed: (service, instance) => this.registry.get(service, instance) !== undefined });
    this.durable = new DurableCaller(options.bus, this.caller, options.id, options.resultTtlMs);
    this.context = new ContextService({
      bus: options.bus,
      logger: options.logger,
      sender: options.id,
      ...(options.contextRetention ? { retention: options.contextRetention } : {}),
    });
    this.serverInfo = options.serverInfo ?? { name: "dmcp-gateway", version: "0.1.0" };
    this.sessions = new SessionRelay({ bus: options.bus, id: options.id, logger: options.logger });
    this.tasks = new GatewayTasks({ bus: options.bus, id: options.id, logger: options.logger, host: this });
    if (options.metrics) {
      this.callMetrics = new CallMetrics(options.metrics, "dmcp_gateway", ["service", "method", "target", "transport"]);
      this.clientDrops = new Counter({
        name: "dmcp_gateway_client_messages_dropped_total",
        help: "Client messages dropped unanswered: responses to no request, notifications the gateway does not handle",
        labelNames: ["transport", "reason"],
        registers: [options.metrics],
      });
      this.instrumentRegistry(options.metrics);
    }
  }

  /** Counts a client message that gets no answer and has no effect. */
  clientMessageDropped(transport: string, reason: "response" | "notification"): void {
    this.clientDrops?.inc({ transport, reason });
  }

  async start(): Promise<void> {
    this.registry.onChange(() => this.rebuild());
    this.registry.onLost((live) => this.caller.instanceLost(live.instance));
    this.registry.onInvalid((problem) => this.reportInvalid(problem));
    this.context.onTopicsChanged(() => this.rebuild());
    // The gateway creates every stream and bucket (executors and agents wait for them) and checks them.
    await this.context.start();
    await this.durable.prepare();
    await this.tasks.prepare();
    this.sessions.start();
    await this.registry.start();
    this.registryLoaded = true;
    this.rebuild();
  }

  get busConnected(): boolean {
    return this.options.bus.isConnected();
  }

  /** Ready to serve: connected to the bus, registry read. */
  get ready(): boolean {
    return this.registryLoaded && this.options.bus.isConnected();
  }

  async stop(): Promise<void> {
    // Before the caller fails its pending calls: tasks in flight stay working, for adoption.
    this.tasks.stop();
    this.context.stop();
    this.sessions.stop();
    this.durable.stop();
    this.caller.close();
    await this.registry.stop();
  }

  get instances() {
    return this.registry.list();
  }

  /** This gateway instance's id on the bus (its session subject is named after it). */
  get gatewayId(): string {
    return this.options.id;
  }

  /** The service that owns a resource URI and the URI its upstream knows it by (throws for unknown ones). */
  resourceTarget(uri: string): { service: string; uri: string } {
    const route = routeRequest(this.catalog, "resources/read", { uri });
    return { service: route.service, uri: String(route.params.uri) };
  }

  /** Called with the kind of list that changed, after every registry change that alters it. */
  onListChanged(listener: (kind: ListKind) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** What an identity may use under the gateway's policy. */
  accessFor(identity: Identity): Access {
    return this.options.policy?.accessFor(identity) ?? ALLOW_ALL;
  }

  /** Throws FORBIDDEN when the request's target is one the access does not allow; unknown targets pass (routing names them). */
  authorize(access: Access, identity: Identity, method: string, params: Record<string, unknown>): void {
    if (access === ALLOW_ALL) return;
    // Extension methods name no tool, prompt or listed resource the policy could judge: refused under a policy.
    if (EXTENSION_METHODS[method]) throw new DmcpError(ErrorCode.Forbidden, `Forbidden: ${method} (an extension method) is not offered when an access policy applies`);
    const target = policyTarget(this.catalog, method, params);
    if (!target || access.allows(target.kind, target.names)) return;
    const what = target.kind === "tools" ? "tool" : target.kind === "prompts" ? "prompt" : "resource";
    throw new DmcpError(ErrorCode.Forbidden, `Forbidden: ${identity.kind} ${JSON.stringify(identity.subject)} may not use ${what} ${target.names[0]}`, {
      data: { [what === "resource" ? "uri" : "name"]: target.names[0] },
    });
  }

  /** The names a listed item is known by, for policy patterns: as exposed, and as <service>/<upstream name>. */
  namesOf(list: "tools" | "prompts" | "resources" | "resourceTemplates", item: Record<string, unknown>): string[] {
    const key = list === "resources" ? "uri" : list === "resourceTemplates" ? "uriTemplate" : "name";
    const exposed = String(item[key]);
    const route =
      list === "tools" ? this.catalog.tool(exposed) : list === "prompts" ? this.catalog.prompt(exposed) : list === "resources" ? this.catalog.resource(exposed) : this.catalog.template(exposed);
    return route && "service" in route ? [exposed, `${route.service}/${route.target}`] : [exposed];
  }

  /** The envelope's `caller` for a request of this identity: subject and issuer, plus what the gateway is configured to forward. */
  callerOf(identity: Identity): Caller {
    const caller: Caller = { kind: identity.kind, subject: identity.subject };
    if (typeof identity.claims?.iss === "string") caller.issuer = identity.claims.iss;
    const claims = this.options.forwardClaims?.filter((claim) => identity.claims?.[claim] !== undefined);
    if (claims?.length) caller.claims = Object.fromEntries(claims.map((claim) => [claim, identity.claims![claim]]));
    if (this.options.forwardToken && identity.token) caller.token = identity.token;
    return caller;
  }

  /** How a call would travel: through the durable work queue or directly (unknown targets: direct). */
  deliveryOf(method: string, params: Record<string, unknown>): "durable" | "direct" {
    try {
      const route = routeRequest(this.catalog, method, params);
      return this.deliveries.laneFor(route.service, method, route.params) ? "durable" : "direct";
    } catch {
      return "direct";
    }
  }

  /** The service a tools/call goes to when its upstream keeps MCP Tasks of its own (PROTOCOL.md §17), else undefined. */
  taskKeepingService(params: Record<string, unknown>): string | undefined {
    try {
      const { service } = routeRequest(this.catalog, "tools/call", params);
      return this.taskServices.has(service) ? service : undefined;
    } catch {
      return undefined; // an unknown tool: forward() names the problem
    }
  }

  /**
   * Sends a task method of a task an upstream keeps to the instance that created it. When that
   * instance left the bus another replica is asked: it reaches the same upstream over HTTP; a
   * per-process upstream (stdio) there answers that it does not know the task.
   */
  async forwardToTaskHolder(
    holder: { service: string; instance: string },
    method: string,
    params: Record<string, unknown>,
    context: { signal?: AbortSignal | undefined; caller?: Caller | undefined; transport?: string },
  ): Promise<Record<string, unknown>> {
    const options: CallOptions = { timeoutMs: this.options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS, signal: context.signal, caller: context.caller };
    const call = () => this.caller.call(holder.service, method, params, { ...options, instance: holder.instance });
    const run = this.callMetrics ? () => this.callMetrics!.observe({ service: holder.service, method, target: "", transport: context.transport ?? "" }, call) : call;
    try {
      return await run();
    } catch (err) {
      if (!isDmcpError(err, ErrorCode.NoResponders)) throw err;
      return this.caller.call(holder.service, method, params, options);
    }
  }

  /** Routes a call to the service that owns its target and returns the raw MCP result. */
  async forward(
    method: string,
    params: Record<string, unknown>,
    context: {
      signal?: AbortSignal;
      sessionId?: string | undefined;
      transport?: string;
      traceHeaders?: Record<string, string> | undefined;
      /** Who made the call, for the envelope. */
      caller?: Caller | undefined;
      /** Receives the call's notifications (progress), in order, before the result. */
      onNotification?: ((method: string, params: Record<string, unknown>) => void) | undefined;
      /** Told which executor instance answered (an upstream's task lives there). */
      onInstance?: ((instance: string) => void) | undefined;
    } & SessionCallContext,
  ): Promise<Record<string, unknown>> {
    let route: { service: string; params: Record<string, unknown> };
    try {
      route = routeRequest(this.catalog, method, params);
    } catch (err) {
      // Observers see calls refused before routing too (an unknown tool), with no service.
      for (const observer of this.callObservers) observer({ service: "", method, params, transport: context.transport ?? "" })(outcomeOf(undefined, err), err);
      throw err;
    }
    // Tool and prompt names label the series; resource URIs would be unbounded, so they do not.
    const target = method === "tools/call" || method === "prompts/get" ? String(route.params.name ?? "") : "";
    // The client's trace (from _meta, else HTTP headers) continues in a span of this hop.
    const traced = () =>
      inSpan(
        target ? `${method} ${target}` : method,
        SpanKind.SERVER,
        contextFromMeta(params, context.traceHeaders),
        { "mcp.method.name": method, "dmcp.service": route.service, ...(target ? { "dmcp.target": target } : {}) },
        (trace) => this.dispatch(route, method, { ...context, trace }),
      );
    const run = this.callMetrics
      ? () => this.callMetrics!.observe({ service: route.service, method, target, transport: context.transport ?? "" }, traced)
      : traced;
    if (this.callObservers.size === 0) return run();
    const ends = [...this.callObservers].map((observer) => observer({ service: route.service, method, params, transport: context.transport ?? "" }));
    try {
      const result = await run();
      for (const end of ends) end(outcomeOf(result));
      return result;
    } catch (err) {
      for (const end of ends) end(outcomeOf(undefined, err), err);
      throw err;
    }
  }

  /**
   * Sees every call start (refused ones with service ""); the function it returns is called with the call's outcome (`ok`,
   * `tool_error` or an error code in lower case) when it ends. For live views such as the dashboard.
   */
  observeCalls(observer: CallObserver): () => void {
    this.callObservers.add(observer);
    return () => this.callObservers.delete(observer);
  }

  private async dispatch(
    route: { service: string; params: Record<string, unknown> },
    method: string,
    context: {
      signal?: AbortSignal;
      sessionId?: string | undefined;
      caller?: Caller | undefined;
      trace?: Context;
      onNotification?: ((method: string, params: Record<string, unknown>) => void) | undefined;
      onInstance?: ((instance: string) => void) | undefined;
    } & SessionCallContext,
  ): Promise<Record<string, unknown>> {
    if (route.service === GATEWAY_SERVICE) return this.context.handle(method, route.params);
    const options = {
      onInstance: context.onInstance,
      timeoutMs: this.options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS,
      signal: context.signal,
      sessionId: context.sessionId,
      caller: context.caller,
      trace: context.trace,
      onNotification: context.onNotification,
      // Tasks name their calls, so that a durable call can be resumed under the same id.
      ...(context.correlationId ? { correlationId: context.correlationId } : {}),
    };
    const lane = this.deliveries.laneFor(route.service, method, route.params);
    // A durable call is retried by the work queue itself, on whichever replica can serve it.
    if (lane) return this.caller.call(route.service, method, route.params, { ...options, route: this.durable.route(lane) });
    if (context.clientSession && context.pins && this.sessionServices.has(route.service)) return this.sessionCall(route, method, options, context.clientSession, context.pins, context.correlationId);
    try {
      return await this.caller.call(route.service, method, route.params, options);
    } catch (err) {
      // The queue group picked a replica whose upstream is down; the call never reached an upstream,
      // so trying a ready replica instead is safe.
      const ready = isDmcpError(err, ErrorCode.UpstreamUnavailable) ? this.readyReplica(route.service, (err.data as { instance?: unknown })?.instance) : undefined;
      if (!ready) throw err;
      return this.caller.call(route.service, method, route.params, { ...options, instance: ready });
    }
  }

  /**
   * A call of a client session goes to the replica holding the session's upstream session, chosen
   * before the session's first call to the service leaves; if that replica is gone, the session is
   * lost: SESSION_LOST. A replica that vanished before any call of the session reached it lost
   * nothing: another one is chosen.
   */
  private async sessionCall(
    route: { service: string; params: Record<string, unknown> },
    method: string,
    options: CallOptions,
    clientSession: ClientSession,
    pins: SessionPins,
    correlationId: string | undefined,
  ): Promise<Record<string, unknown>> {
    const { service } = route;
    const tried = new Set<string>();
    for (;;) {
      // No replica to choose (none listed yet): the queue group picks, and its answer pins.
      const pinned = pins.pinFor(service, () => this.sessionReplica(service, tried));
      try {
        return await this.caller.call(service, method, route.params, {
          ...options,
          clientSession,
          correlationId,
          instance: pinned,
          onInstance: (instance) => {
            pins.reached(service, instance);
            options.onInstance?.(instance);
          },
        });
      } catch (err) {
        const gone = pinned !== undefined && (isDmcpError(err, ErrorCode.NoResponders) || isDmcpError(err, ErrorCode.ExecutorLost));
        if (!gone) throw err;
        const held = pins.wasReached(service, pinned);
        pins.drop(service, pinned);
        // No responders there and no call of the session ever reached it: nothing was lost, try another.
        if (!held && isDmcpError(err, ErrorCode.NoResponders)) {
          tried.add(pinned);
          continue;
        }
        // The next call starts a new upstream session on another replica; this client learns its state is gone.
        throw new DmcpError(
          ErrorCode.SessionLost,
          `executor ${pinned} of "${service}", which held this session's upstream session, left the bus; the upstream session's state is lost`,
          { data: { service, instance: pinned }, cause: err },
        );
      }
    }
  }

  /** A replica for a client session's upstream session: at random (as the queue group picks) among those that keep client sessions, ready ones first. */
  private sessionReplica(service: string, except: Set<string>): string | undefined {
    const candidates = this.registry.list().filter((live) => live.service === service && live.announcement.client_sessions === true && !except.has(live.instance));
    const ready = candidates.filter((live) => live.announcement.status === "ready");
    const pool = ready.length > 0 ? ready : candidates;
    return pool[Math.floor(Math.random() * pool.length)]?.instance;
  }

  /** Tells the replicas holding a client session's upstream sessions that the session ended (best effort). */
  closeUpstreamSessions(sessionId: string, clientSession: ClientSession, pins: SessionPins): void {
    this.toPinnedReplicas(SESSION_CLOSE_METHOD, undefined, sessionId, clientSession, pins);
    pins.clear();
  }

  /** Passes a client notification (e.g. roots/list_changed) on to the session's upstream sessions (best effort). */
  notifyUpstreamSessions(method: string, params: Record<string, unknown> | undefined, sessionId: string, clientSession: ClientSession, pins: SessionPins): void {
    this.toPinnedReplicas(method, params, sessionId, clientSession, pins);
  }

  private toPinnedReplicas(method: string, params: Record<string, unknown> | undefined, sessionId: string, clientSession: ClientSession, pins: SessionPins): void {
    for (const [service, instance] of pins.entries()) {
      void this.caller
        .call(service, method, params, { timeoutMs: 10_000, sessionId, clientSession, instance })
        .catch((err: unknown) => this.options.logger.debug({ err, service, instance, method }, "could not reach an upstream session"));
    }
  }

  private instrumentRegistry(metrics: Registry): void {
    const registry = this.registry;
    new Gauge({
      name: "dmcp_registry_instances",
      help: "Live instances on the bus, by service and status",
      labelNames: ["service", "status"],
      registers: [metrics],
      collect() {
        this.reset();
        for (const live of registry.list()) this.inc({ service: live.service, status: live.heartbeat?.status ?? live.announcement.status });
      },
    });
    const lost = new Counter({
      name: "dmcp_registry_heartbeats_missed_total",
      help: "Instances dropped because they missed their heartbeats",
      labelNames: ["service"],
      registers: [metrics],
    });
    registry.onLost((live) => lost.inc({ service: live.service }));
  }

  private reportInvalid(problem: InvalidAnnouncementItem): void {
    // Announcements are refreshed every few seconds; report each problem once.
    const key = `${problem.service}/${problem.instance}/${problem.message}`;
    if (this.reportedInvalid.has(key)) return;
    // Each new bad announcement is a new key: bound the memory of what was reported (once more is fine).
    if (this.reportedInvalid.size >= MAX_REMEMBERED_PROBLEMS) this.reportedInvalid.clear();
    this.reportedInvalid.add(key);
    this.options.logger.warn(problem, "ignoring an invalid announcement or announced item");
    const error = new DmcpError(problem.code ?? ErrorCode.InvalidEnvelope, `${problem.service}/${problem.instance}: ${problem.message}`, {
      data: { service: problem.service, instance: problem.instance },
    });
    const envelope = createEnvelope("error_notification", errorPayload(error), { sender: this.options.id });
    try {
      this.options.bus.nc.publish(subjects.errors(this.options.id), encodeFor(this.options.bus, envelope));
    } catch (err) {
      this.options.logger.debug({ err }, "could not report the invalid announcement");
    }
  }

  private readyReplica(service: string, except: unknown): string | undefined {
    return this.registry.list().find((live) => live.service === service && live.instance !== except && live.announcement.status === "ready")
      ?.instance;
  }

  private rebuild(): void {
    const catalogs = catalogsByService(this.registry.list());
    if (catalogs.has(GATEWAY_SERVICE)) this.options.logger.warn(`a service on the bus is named "${GATEWAY_SERVICE}", which is reserved for the gateway's own tools; ignoring it`);
    // No "resources" capability: the gateway's context URIs are routed by their prefix, and the
    // single-resource-server fallback keeps working for the one wrapped server.
    catalogs.set(GATEWAY_SERVICE, { catalog: this.context.catalog(), capabilities: { tools: {} } });
    this.deliveries = new DeliveryTable(catalogs);
    this.sessionServices = new Set(this.registry.list().filter((live) => live.announcement.client_sessions === true).map((live) => live.service));
    this.taskServices = new Set(this.registry.list().filter((live) => keepsOwnTasks(live.announcement.stateless_capabilities)).map((live) => live.service));
    this.catalog = new AggregatedCatalog(catalogs);
    for (const collision of this.catalog.collisions) {
      const key = `${collision.kind}:${collision.name}:${collision.services.join(",")}`;
      if (this.reportedCollisions.has(key)) continue;
      this.reportedCollisions.add(key);
      this.options.logger.warn(collision, `${collision.kind} "${collision.name}" is offered by several services; exposing it qualified per service`);
    }
    const next: Record<ListKind, string> = {
      tools: JSON.stringify(this.catalog.tools),
      resources: JSON.stringify(this.catalog.resources) + JSON.stringify(this.catalog.resourceTemplates),
      prompts: JSON.stringify(this.catalog.prompts),
    };
    for (const kind of Object.keys(next) as ListKind[]) {
      if (next[kind] === this.fingerprints[kind]) continue;
      this.fingerprints[kind] = next[kind];
      this.options.logger.info({ kind, services: this.catalog.services }, "catalog changed");
      for (const listener of this.listeners) listener(kind);
    }
  }
}

/** What ties a call to its MCP client session (absent for stateless requests). */
export interface SessionCallContext {
  /** The client session, for its upstream session: set with `pins`. */
  clientSession?: ClientSession | undefined;
  /** The replica holding the session's upstream session, per service; chosen for the first call. */
  pins?: SessionPins | undefined;
  /** The call's correlation id on the bus (server-to-client requests name it). */
  correlationId?: string | undefined;
}

/** A routed call as observers see it: the owning service and the client's own params. */
export interface CallStart {
  service: string;
  method: string;
  params: Record<string, unknown>;
  transport: string;
}

export type CallObserver = (call: CallStart) => (outcome: string, error?: unknown) => void;

/** Announced items that break the protocol are dropped from the catalog and reported on the bus. */
export interface InvalidAnnouncementItem {
  service: string;
  instance: string;
  message: string;
  /** Set when message security refused an announcement or heartbeat (e.g. UNTRUSTED_SIGNER). */
  code?: ErrorCode | undefined;
}

/** The tasks extension among the capabilities an upstream declared to 2026-07-28 requests. */
function keepsOwnTasks(capabilities: Record<string, unknown> | undefined): boolean {
  const extensions = capabilities?.extensions;
  return typeof extensions === "object" && extensions !== null && (extensions as Record<string, unknown>)[TASKS_EXTENSION] !== undefined;
}

/**
 * The path of one tools/call: its client session (sessions/session.ts) built the Call (calls/call.ts)
 * and authorized it; here it is sent by its route: to the gateway's own service, durably through the
 * work queue, to the replica holding its client session's upstream session, or directly (tried again
 * on a ready replica when the first had no upstream), over the bus requester (bus/requester.ts).
 */
import { SpanKind, type Context } from "@opentelemetry/api";
import type { Registry } from "prom-client";
import { DurableRoute, Requester, type Bus, type CallOptions, type RegistryView, type StreamCall } from "../../bus/index.js";
import { CallError, ErrorCode, isDmcpError, type ClientSession } from "../../protocol/index.js";
import { CallMetrics, outcomeOf } from "../../metrics/index.js";
import { contextFromMeta, inSpan, spansRecorded } from "../../tracing/index.js";
import type { Logger } from "../../util/index.js";
import type { GatewayCache } from "../cache/index.js";
import type { CallRoute } from "../catalog/routing.js";
import { type ContextService, GATEWAY_SERVICE } from "../context-service.js";
import type { Call, CallSession } from "./call.js";
import type { SessionPins } from "./session-pins.js";

/** A call recovered for a resumed stream gets at least this long, even past its deadline: its answer may be kept already. */
const RECOVER_AT_LEAST_MS = 3_000;

export interface DispatcherOptions {
  bus: Bus;
  logger: Logger;
  /** Unique id of this gateway process on the bus. */
  id: string;
  /** The live instances, for choosing replicas and noticing lost ones. */
  registry: RegistryView;
  /** The gateway's own service (`dmcp`): its calls are answered in-process. */
  context: ContextService;
  /** The TTL of the result store of durable calls, should this gateway create it. */
  resultTtlMs?: number | undefined;
  /** Where to record call metrics; none are kept without it. */
  metrics?: Registry | undefined;
  /** The gateway cache, when it is on. */
  cache?: GatewayCache | undefined;
}

/** A routed call as observers see it: the owning service and the client's own params. */
export interface CallStart {
  service: string;
  method: string;
  params: Record<string, unknown>;
  transport: string;
}

export type CallObserver = (call: CallStart) => (outcome: string, error?: unknown) => void;

export class Dispatcher {
  private readonly requester: Requester;
  /** Durable calls go through the work queue (PROTOCOL.md §15), by the plans the services announce. */
  private readonly durable: DurableRoute;
  private readonly callMetrics: CallMetrics | undefined;
  private readonly callObservers = new Set<CallObserver>();

  constructor(private readonly options: DispatcherOptions) {
    const { registry } = options;
    this.requester = new Requester(options.bus, options.id, { listed: (service, instance) => registry.get(service, instance) !== undefined });
    this.durable = new DurableRoute(options.bus, this.requester, options.id, options.resultTtlMs);
    registry.onLost((live) => this.requester.instanceLost(live.instance));
    if (options.metrics) this.callMetrics = new CallMetrics(options.metrics, "dmcp_gateway", ["service", "method", "target", "transport"]);
  }

  /** Creates and checks the durable delivery streams (the gateway does at start). */
  async prepare(): Promise<void> {
    await this.durable.prepare();
  }

  /** Fails the calls still waiting for an answer. */
  stop(): void {
    this.durable.stop();
    this.requester.close();
  }

  /**
   * Sees every call start (refused ones with service ""); the function it returns is called with the call's outcome (`ok`,
   * `tool_error` or an error code in lower case) when it ends. For live views such as the dashboard.
   */
  observeCalls(observer: CallObserver): () => void {
    this.callObservers.add(observer);
    return () => this.callObservers.delete(observer);
  }

  /** Sends a call to the service that owns its target and returns the raw MCP result. */
  async dispatch(call: Call): Promise<Record<string, unknown>> {
    const { method, params, transport } = call;
    let route: CallRoute;
    try {
      route = call.route;
    } catch (err) {
      // Observers see calls refused before routing too (an unknown tool), with no service.
      for (const observer of this.callObservers) observer({ service: "", method, params, transport })(outcomeOf(undefined, err), err);
      throw err;
    }
    // Tool and prompt names label the series; resource URIs would be unbounded, so they do not.
    const target = method === "tools/call" || method === "prompts/get" ? String(route.params.name ?? "") : "";
    // The client's trace (from _meta, else HTTP headers) continues in a span of this hop; with no
    // tracing SDK a span would record nothing, so the call goes on in the client's context (its name
    // and attributes are not even built).
    const parent = contextFromMeta(params, call.traceHeaders);
    // Timed and observed around one await here: no closures and no async wrapper per call.
    const timing = this.callMetrics?.start({ service: route.service, method, target, transport });
    const ends = this.callObservers.size === 0 ? undefined : [...this.callObservers].map((observer) => observer({ service: route.service, method, params, transport }));
    try {
      const result = await (spansRecorded() ? this.sendInSpan(call, route, parent, target) : this.send(call, route, parent));
      const outcome = timing || ends ? outcomeOf(result) : "";
      timing?.end(outcome);
      if (ends) for (const end of ends) end(outcome);
      return result;
    } catch (err) {
      const outcome = outcomeOf(undefined, err);
      timing?.end(outcome);
      if (ends) for (const end of ends) end(outcome, err);
      throw err;
    }
  }

  /** The call in a span of this hop, named and described as OpenTelemetry's MCP conventions say. */
  private sendInSpan(call: Call, route: CallRoute, parent: Context, target: string): Promise<Record<string, unknown>> {
    const { method } = call;
    return inSpan(
      target ? `${method} ${target}` : method,
      SpanKind.SERVER,
      parent,
      { "mcp.method.name": method, "dmcp.service": route.service, ...(target ? { "dmcp.target": target } : {}) },
      (trace) => this.send(call, route, trace),
    );
  }

  /**
   * Sends a task method (the call, with the upstream's task id in `params`) to the instance holding a
   * task an upstream keeps. When that instance left the bus another replica is asked: it reaches the
   * same upstream over HTTP; a per-process upstream (stdio) there answers that it does not know the task.
   */
  async toTaskHolder(call: Call, holder: { service: string; instance: string }, params: Record<string, unknown>): Promise<Record<string, unknown>> {
    const options: CallOptions = { timeoutMs: call.timeoutMs, signal: call.cancellation, caller: call.caller };
    const send = () => this.requester.call(holder.service, call.method, params, { ...options, instance: holder.instance });
    const run = this.callMetrics ? () => this.callMetrics!.observe({ service: holder.service, method: call.method, target: "", transport: call.transport }, send) : send;
    try {
      return await run();
    } catch (err) {
      if (!isDmcpError(err, ErrorCode.NoResponders)) throw err;
      return this.requester.call(holder.service, call.method, params, options);
    }
  }

  /**
   * The answer of a call another gateway sent on the bus and died before passing on (PROTOCOL.md
   * §19.4): a durable call's from the result store, a direct call's from the instance that ran it.
   * Waits until the call's deadline (a few seconds at least, for an answer kept meanwhile); aborting
   * `signal` stops the wait, not the call.
   */
  recover(call: StreamCall, signal: AbortSignal): Promise<Record<string, unknown>> {
    const { service, correlationId } = call;
    const timeoutMs = Math.max(call.deadline - Date.now(), RECOVER_AT_LEAST_MS);
    if (call.delivery === "direct") return this.requester.resume(service, correlationId, { timeoutMs, signal });
    const answer = this.requester.resume(service, correlationId, { timeoutMs, signal, route: this.durable.route("normal") });
    void this.durable.prepare().then(
      () => this.durable.readStored(service, correlationId),
      (err: unknown) => this.options.logger.warn({ err, service, correlationId }, "cannot read the result store for a resumed call"),
    );
    return answer;
  }

  /**
   * Cancels a call another gateway sent and died with (its client's `notifications/cancelled` reached
   * this gateway, which follows the call's stream, PROTOCOL.md §19.4) as that gateway would have: the
   * cancellation of §5.5 to the instance running it, and, for a durable call, its CANCELLED answer in
   * the result store, so that a request still queued never starts (§15.8).
   */
  cancelRecovered(call: StreamCall, reason: string): void {
    this.requester.cancelElsewhere(call.service, call.correlationId, reason);
    if (call.delivery === "durable") this.durable.withdrawCall(call.service, call.correlationId);
  }

  /** Passes a message of a client session (a notification, its end) to the replicas holding its upstream sessions (best effort). */
  toSessionReplicas(sessionId: string, clientSession: ClientSession, pins: SessionPins, method: string, params?: Record<string, unknown>): void {
    for (const [service, instance] of pins.entries()) {
      void this.requester
        .call(service, method, params, { timeoutMs: 10_000, sessionId, clientSession, instance })
        .catch((err: unknown) => this.options.logger.debug({ err, service, instance, method }, "could not reach an upstream session"));
    }
  }

  private send(call: Call, route: CallRoute, trace: Context): Promise<Record<string, unknown>> {
    if (route.service === GATEWAY_SERVICE) return this.options.context.handle(call.method, route.params);
    // The cache's one hook: a call no rule or upstream word can make cacheable costs one lookup here.
    const caching = this.options.cache?.decide(call, route);
    if (caching) return this.options.cache!.serve(call, route, caching, () => this.forward(call, route, trace));
    return this.forward(call, route, trace);
  }

  private forward(call: Call, route: CallRoute, trace: Context): Promise<Record<string, unknown>> {
    try {
      return this.forwardNow(call, route, trace);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private forwardNow(call: Call, route: CallRoute, trace: Context): Promise<Record<string, unknown>> {
    if (call.onSent && call.correlationId) {
      // The requester seals the request the same way, in this same turn: the stream's events are sealed as the call is (PROTOCOL.md §19.3).
      const sealedTo = this.options.bus.codec.requestSeal(route.service)?.from;
      call.onSent({ service: route.service, correlationId: call.correlationId, delivery: route.lane ? "durable" : "direct", deadline: Date.now() + call.timeoutMs, sealedTo });
    }
    // The options are built once, whole (one object shape per route kind, no spreads per call).
    const session = call.session && route.keepsSessions && !route.lane ? call.session : undefined;
    const options: CallOptions = {
      onInstance: (instance) => (call.instance = instance),
      timeoutMs: call.timeoutMs,
      signal: call.cancellation,
      sessionId: call.sessionId,
      caller: call.caller,
      trace,
      onNotification: call.onNotification,
      // Tasks name their calls, so that a durable call can be resumed under the same id.
      correlationId: call.correlationId,
      // A durable call is retried by the work queue itself, on whichever replica can serve it.
      route: route.lane ? this.durable.route(route.lane) : undefined,
      clientSession: session?.clientSession,
      instance: undefined,
      receipt: undefined,
    };
    if (options.route) return this.requester.call(route.service, call.method, route.params, options);
    if (session) return this.pinnedCall(call, route, options, session);
    return this.anyReplica(call, route, options);
  }

  /** A call any replica may serve: the queue group picks one. */
  private async anyReplica(call: Call, route: CallRoute, options: CallOptions): Promise<Record<string, unknown>> {
    try {
      return await this.requester.call(route.service, call.method, route.params, options);
    } catch (err) {
      // The queue group picked a replica whose upstream is down; the call never reached an upstream,
      // so trying a ready replica instead is safe.
      const ready = isDmcpError(err, ErrorCode.UpstreamUnavailable) ? this.readyReplica(route.service, (err.data as { instance?: unknown })?.instance) : undefined;
      if (!ready) throw err;
      return this.requester.call(route.service, call.method, route.params, { ...options, instance: ready });
    }
  }

  /**
   * A call of a client session goes to the replica holding the session's upstream session, chosen
   * before the session's first call to the service leaves; if that replica is gone, the session is
   * lost: SESSION_LOST. A replica that vanished before any call of the session reached it lost
   * nothing: another one is chosen.
   */
  private async pinnedCall(call: Call, route: CallRoute, options: CallOptions, session: CallSession): Promise<Record<string, unknown>> {
    const { service } = route;
    const { pins } = session;
    let tried: Set<string> | undefined;
    options.onInstance = (instance) => {
      pins.reached(service, instance);
      call.instance = instance;
    };
    for (;;) {
      // No replica to choose (none listed yet): the queue group picks, and its answer pins.
      const pinned = pins.pinFor(service, () => this.sessionReplica(service, tried));
      options.instance = pinned;
      // Until a call reached the pinned replica, a receipt is what says it did (a call that fails there then loses the session).
      options.receipt = !pins.isReached(service);
      try {
        return await this.requester.call(service, call.method, route.params, options);
      } catch (err) {
        const gone = pinned !== undefined && (isDmcpError(err, ErrorCode.NoResponders) || isDmcpError(err, ErrorCode.ExecutorLost));
        if (!gone) throw err;
        // No responders there and no call of the session ever reached it: nothing was lost, try another.
        if (!pins.release(service, pinned) && isDmcpError(err, ErrorCode.NoResponders)) {
          tried ??= new Set();
          tried.add(pinned);
          continue;
        }
        // The next call starts a new upstream session on another replica; this client learns its state is gone.
        throw new CallError(
          ErrorCode.SessionLost,
          `executor ${pinned} of "${service}", which held this session's upstream session, left the bus; the upstream session's state is lost`,
          { data: { service, instance: pinned }, cause: err },
        );
      }
    }
  }

  /** A replica for a client session's upstream session: at random (as the queue group picks) among those that keep client sessions, ready ones first. */
  private sessionReplica(service: string, except: Set<string> | undefined): string | undefined {
    const candidates = this.options.registry.list().filter((live) => live.service === service && live.announcement.client_sessions === true && !except?.has(live.instance));
    const ready = candidates.filter((live) => live.announcement.status === "ready");
    const pool = ready.length > 0 ? ready : candidates;
    return pool[Math.floor(Math.random() * pool.length)]?.instance;
  }

  private readyReplica(service: string, except: unknown): string | undefined {
    return this.options.registry.list().find((live) => live.service === service && live.instance !== except && live.announcement.status === "ready")?.instance;
  }
}

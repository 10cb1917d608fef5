/**
 * The path of one tools/call: an inbound transport (adapters/inbound/) hands each JSON-RPC message of
 * its client to the client's session here. A request becomes a Call (calls/call.ts), is checked by its
 * revision's rules and the access policy, and goes to the dispatcher (calls/dispatcher.ts); the answer
 * goes back on the same transport.
 *
 * One MCP client session on the gateway, over an InboundTransport (inbound-transport.ts: stdio or HTTP):
 * the gateway answers the session-level methods itself (initialize, ping, the aggregated lists,
 * subscriptions to context topics) and forwards calls to the service that owns the tool, prompt or
 * resource. A 2026-07-28 request goes through stateless.ts first, whatever the session did before.
 */
import type { JSONRPCMessage } from "@modelcontextprotocol/server";
import type { HeaderReader, InboundTransport } from "./inbound-transport.js";
import { randomUUID } from "node:crypto";
import {
  CallError,
  cancellation,
  contextUri,
  DmcpError,
  ErrorCode,
  errorResponse,
  isCallNotificationForClient,
  isErrorResponse,
  isNotification,
  isRequest,
  isResponse,
  JsonRpcErrorCode,
  negotiatedVersion,
  RELAYED_CLIENT_NOTIFICATIONS,
  RequestError,
  resultResponse,
  statelessResult,
  STREAM_CLOSED_METHOD,
  toJsonRpcError,
  topicOfUri,
  wantsLogMessage,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcRequest,
} from "../../protocol/index.js";
import type { Logger } from "../../util/index.js";
import { ANONYMOUS, type Access, type Identity, type ItemKind } from "../access/policy.js";
import { CallCancellation, type StreamCall } from "../../bus/index.js";
import type { Call, SentCall } from "../calls/call.js";
import type { AggregatedCatalog } from "../catalog/catalog.js";
import type { ListKind } from "../catalog/catalog-keeper.js";
import { listedNames } from "../catalog/routing.js";
import type { GatewayCore } from "../core.js";
import { SessionTasks, TASKS_CAPABILITY, withTaskSupport } from "../tasks/task-methods.js";
import { ListenStreams } from "./listen-streams.js";
import { StatelessDispatch, type Answer } from "./stateless.js";
import { StreamClosers } from "./stream-closers.js";
import { UpstreamSessions } from "./upstream-sessions.js";
import type { SessionState } from "./session-state.js";

export interface SessionOptions {
  /**
   * SSE polling (SEP-1699) by the gateway: a request still waiting for its answer after this many ms
   * has its SSE stream closed, once, for the client to resume it with Last-Event-ID; never without it.
   */
  ssePollMs?: number | undefined;
  /** The session as another gateway left it (shared-sessions.ts): it goes on from there. */
  restored?: SessionState | undefined;
  /** Stores the session's state when it changes, for other gateways; the change is answered once it resolves. */
  share?: ((state: SharedState) => Promise<void>) | undefined;
}

/** The state a session shares, without what the store adds. */
export type SharedState = Omit<SessionState, "v" | "gateway">;

export class GatewaySession {
  private initialized = false;
  private protocolVersion: string | undefined;
  private readonly inflight = new Map<JsonRpcId, CallCancellation>();
  /**
   * Calls another gateway sent and died with, whose answers this gateway looks for (PROTOCOL.md §19.4),
   * by request id: a cancellation from the client reaches their executors from here.
   */
  private readonly recovering = new Map<JsonRpcId, { call: StreamCall; stop: AbortController }>();
  /** The SSE streams of requests that the client can resume (HTTP with an event store only). */
  private readonly streams: StreamClosers;
  /** Set when the gateway shuts down: new requests are refused, calls in flight may finish. */
  private draining = false;
  private idleWaiters: (() => void)[] = [];
  /** Context topics this client subscribed to (resources/subscribe). */
  private readonly subscriptions = new Set<string>();
  /** Its 2026-07-28 listen streams. */
  private readonly listens = new ListenStreams(
    (message, related) => this.send(message, related),
    (uri) => this.access.allows("resources", [uri]),
  );
  private isClosed = false;
  private markClosed: () => void = () => undefined;
  /** Resolves when the client's transport has closed. */
  readonly closed = new Promise<void>((resolve) => (this.markClosed = resolve));
  onclose: (() => void) | undefined;
  private currentIdentity: Identity = ANONYMOUS;
  private access: Access;
  /** The lists as this session's identity may see them, for the catalog they were filtered from. */
  private visible: { catalog: AggregatedCatalog; lists: Record<string, Record<string, unknown>[]> } | undefined;
  /** The session's id on the bus (a UUID of its own: an HTTP session id is assigned only later, at initialize). */
  readonly busSessionId: string;
  private readonly share: ((state: SharedState) => Promise<void>) | undefined;
  /** Its upstream sessions, one per service (PROTOCOL.md §16). */
  private readonly upstream: UpstreamSessions;
  private readonly taskMethods: SessionTasks;
  private readonly stateless: StatelessDispatch;
  /** The gateway on which the client's GET stream opened last (shared sessions); none before its first. */
  private listener: string | undefined;
  /** The listener's caller key, as its record names it: what this gateway seals to when it writes sealed traffic on the GET stream. */
  private listenerKey: string | undefined;
  /** The gateway that opened the session, when it is shared (its upstream sessions are keyed by it). */
  private readonly origin: string | undefined;
  /** Another gateway wrote the session's record since this one last did: it serves the session too. */
  private othersWrote = false;
  /** Whether closing here ends the session's upstream sessions too (not when other gateways may go on serving it). */
  private endsUpstream = true;

  constructor(
    private readonly core: GatewayCore,
    readonly transport: InboundTransport,
    private readonly logger: Logger,
    /** `stdio` or `http`, for metrics and logs. */
    readonly kind: string = "",
    identity: Identity = ANONYMOUS,
    options: SessionOptions = {},
  ) {
    this.currentIdentity = identity;
    this.access = core.access.accessFor(identity);
    this.streams = new StreamClosers(options.ssePollMs);
    this.busSessionId = options.restored?.busSessionId ?? randomUUID();
    this.share = options.share;
    // A record written before origins were kept has none: this gateway's calls then get upstream sessions of their own.
    this.origin = options.share ? (options.restored ? options.restored.origin : core.gatewayId) : undefined;
    const { dispatcher } = core;
    this.taskMethods = new SessionTasks(core.tasks, {
      authorize: (call) => core.access.authorize(call),
      notify: (method, params) => this.send({ jsonrpc: "2.0", method, params }),
      dispatch: (call) => dispatcher.dispatch(call),
      toTaskHolder: (call, holder, params) => dispatcher.toTaskHolder(call, holder, params),
    });
    this.stateless = new StatelessDispatch(core, this.listens, this.taskMethods);
    transport.onmessage = (message, extra) => {
      if (extra?.closeSSEStream && isRequest(message as JsonRpcMessage)) this.streams.track((message as JsonRpcRequest).id, extra.closeSSEStream);
      this.onMessage(message as JsonRpcMessage, traceHeaders(extra?.request?.headers));
    };
    transport.onrecover = (call, signal) => this.recoverAnswer(call, signal);
    transport.onerror = (error) => this.logger.warn({ err: error }, "client transport error");
    transport.onclose = () => this.onClosed();
    this.upstream = new UpstreamSessions({
      busSessionId: this.busSessionId,
      gatewayId: core.gatewayId,
      origin: this.origin,
      // Other gateways serving the session pin the replicas its calls reached here.
      onPinReached: options.share ? () => void this.shareState() : undefined,
      relay: core.sessions,
      dispatcher,
      send: (message, related, sealed) => this.send(message, related, sealed),
      resourceUpdated: core.cache ? (service, uri) => core.cache?.resourceUpdated(service, uri) : undefined,
      cancelled: (id, reason) => this.cancelHere(id, cancellation(reason, "the client cancelled the request")),
    });
    if (options.restored) this.applyState(options.restored);
  }

  /** What another gateway needs to serve this session. */
  sharedState(): SharedState {
    const { capabilities, logLevel } = this.upstream.declared;
    return {
      busSessionId: this.busSessionId,
      owner: { kind: this.identity.kind, subject: this.identity.subject },
      ...(this.protocolVersion ? { protocolVersion: this.protocolVersion } : {}),
      initialized: this.initialized,
      capabilities,
      ...(logLevel ? { logLevel } : {}),
      topics: [...this.subscriptions],
      ...(this.listener ? { listener: this.listener } : {}),
      ...(this.listenerKey ? { listenerKey: this.listenerKey } : {}),
      ...(this.origin ? { origin: this.origin } : {}),
      ...pinsOf(this.upstream.reachedPins),
    };
  }

  /** Takes the state another gateway wrote for this session (restored, or changed there since). */
  applyState(state: SessionState): void {
    this.initialized = state.initialized;
    this.protocolVersion = state.protocolVersion;
    if (state.protocolVersion) this.transport.setProtocolVersion?.(state.protocolVersion);
    this.upstream.declareCapabilities(state.capabilities);
    if (state.logLevel) this.upstream.setLogLevel(state.logLevel);
    this.subscriptions.clear();
    for (const topic of state.topics) this.subscriptions.add(topic);
    this.listener = state.listener;
    // A record rewritten by a gateway of an earlier version lost the key: this gateway still knows its own.
    this.listenerKey = state.listener === this.core.gatewayId ? this.core.callerKey : state.listenerKey;
    if (state.pins) this.upstream.adoptPins(state.pins);
    if (state.gateway !== this.core.gatewayId) this.othersWrote = true;
  }

  /**
   * The client's GET stream opened on this gateway: from now on this gateway sends the session's
   * notifications that every gateway holding the session would send alike (PROTOCOL.md §19.3), once.
   */
  standaloneStreamOpened(): void {
    const key = this.core.callerKey;
    if (this.listener === this.core.gatewayId && this.listenerKey === key) return;
    this.listener = this.core.gatewayId;
    this.listenerKey = key;
    void this.shareState();
  }

  /** Whether this gateway sends the notifications every gateway would send alike: it holds the GET stream, or nobody said. */
  private get sendsSessionWide(): boolean {
    return this.listener === undefined || this.listener === this.core.gatewayId;
  }

  /** Shares the session's state (when it is shared); a failure is logged, the session goes on here. */
  async shareState(): Promise<void> {
    if (!this.share) return;
    try {
      await this.share(this.sharedState());
      this.othersWrote = false;
    } catch (err) {
      this.logger.warn({ err, session: this.id }, "could not store the session's state: other gateways do not know this change");
    }
  }

  get id(): string | undefined {
    return this.transport.sessionId;
  }

  get identity(): Identity {
    return this.currentIdentity;
  }

  /** The identity of the latest request (a refreshed JWT brings new claims; the subject stays). */
  set identity(identity: Identity) {
    if (identity === this.currentIdentity) return;
    this.currentIdentity = identity;
    this.access = this.core.access.accessFor(identity);
    this.visible = undefined;
  }

  async start(): Promise<void> {
    await this.transport.start();
  }

  async close(): Promise<void> {
    await this.transport.close().catch(() => undefined);
    this.onClosed();
  }

  /**
   * Drops the session on this gateway only: `elsewhere` (deleted through another gateway, or this one
   * stopping) leaves its upstream sessions to the gateways that go on serving it (PROTOCOL.md §19);
   * `idle` (no request here for the idle timeout) ends them unless another gateway wrote the
   * session's record since this one last did.
   */
  leave(why: "idle" | "elsewhere"): Promise<void> {
    this.endsUpstream = why === "idle" && !this.othersWrote;
    return this.close();
  }

  /** Tells the client that a subscribed context resource has a new value. */
  notifyResourceUpdated(topic: string): void {
    if (this.isClosed) return;
    const uri = contextUri(topic);
    if (this.initialized && this.subscriptions.has(topic) && this.sendsSessionWide) this.send({ jsonrpc: "2.0", method: "notifications/resources/updated", params: { uri } });
    this.listens.notify("notifications/resources/updated", (filter) => filter.resourceSubscriptions?.includes(uri) === true, { uri });
  }

  /** Tells the client that a list changed: a 2025 client once it has initialized, 2026 listen streams that opted in. */
  notifyListChanged(kind: ListKind): void {
    if (this.isClosed) return;
    if (this.initialized && this.sendsSessionWide) this.send({ jsonrpc: "2.0", method: `notifications/${kind}/list_changed` });
    const opted = `${kind}ListChanged` as "toolsListChanged" | "promptsListChanged" | "resourcesListChanged";
    this.listens.notify(`notifications/${kind}/list_changed`, (filter) => filter[opted] === true);
  }

  private onMessage(message: JsonRpcMessage, headers?: Record<string, string>): void {
    if (isRequest(message)) {
      void this.onRequest(message, headers);
    } else if (isNotification(message)) {
      this.onNotification(message.method, message.params);
    } else if (
      !(isResponse(message) && message.id !== null && this.upstream.settle(message.id, isErrorResponse(message) ? { error: message.error } : { result: message.result }))
    ) {
      // A response to no request of ours (or one that timed out).
      this.core.clientMessageDropped(this.kind, "response");
    }
  }

  private onNotification(method: string, params: Record<string, unknown> | undefined): void {
    if (method === "notifications/initialized") {
      this.initialized = true;
      void this.shareState();
    } else if (method === "notifications/cancelled") {
      const requestId = params?.requestId;
      // The client's reason goes with the cancellation to the agent or upstream running the call (PROTOCOL.md §5.5).
      if (typeof requestId !== "string" && typeof requestId !== "number") return;
      const reason = cancellation(params?.reason, "the client cancelled the request");
      // A shared session's call may be held by another gateway (its client came here since): it is told.
      if (!this.cancelHere(requestId, reason) && this.share) this.upstream.forwardCancellation(requestId, typeof params?.reason === "string" ? reason.message : undefined);
    } else if (RELAYED_CLIENT_NOTIFICATIONS.has(method)) {
      // Without the client's params: they mean nothing to the upstream, and unchecked they could make an envelope executors refuse.
      this.upstream.relay(method);
    } else {
      this.core.clientMessageDropped(this.kind, "notification");
    }
  }

  /** How many of the client's calls are in flight here. */
  get callsInFlight(): number {
    return this.inflight.size;
  }

  /** Refuses new requests from now on; resolves when the calls in flight have answered. */
  drain(): Promise<void> {
    this.draining = true;
    // Listen streams would never finish on their own: end them gracefully now.
    this.listens.endAll();
    if (this.inflight.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Ends the calls still in flight with a SHUTTING_DOWN error (after the grace period). */
  abortInflight(): void {
    const reason = new CallError(ErrorCode.ShuttingDown, "the gateway is shutting down; the call was given up");
    for (const controller of this.inflight.values()) controller.abort(reason);
  }

  private async onRequest(request: JsonRpcRequest, headers?: Record<string, string>): Promise<void> {
    if (this.draining && request.method !== "ping") {
      this.streams.forget(request.id);
      this.send(errorResponse(request.id, toJsonRpcError(new CallError(ErrorCode.ShuttingDown, "the gateway is shutting down"))), request.id);
      return;
    }
    const abort = new CallCancellation();
    this.inflight.set(request.id, abort);
    const call = this.callOf(request, abort, headers);
    try {
      // A request that names its protocol version in _meta is a 2026-07-28 (stateless) request, whatever came before.
      const result = await ((call.stateless ? this.stateless.dispatch(call) : this.sessionMethod(call)) ?? this.forwardedMethod(call));
      this.send(resultResponse(request.id, call.stateless ? statelessResult(call.method, result) : result), request.id);
    } catch (err) {
      // A cancelled request gets no answer (MCP cancellation).
      if (err instanceof DmcpError && err.code === ErrorCode.Cancelled) return;
      // Fields in the line, not a child logger per request: pino serialises (and redacts) a child's bindings when it is made.
      if (!(err instanceof DmcpError)) this.logger.error({ err, rpc: request.id, method: request.method }, "request failed");
      else this.logger.debug({ err, rpc: request.id, method: request.method }, "request failed");
      const error = toJsonRpcError(err);
      // 2026-07-28 answers an unknown resource with -32602 (earlier revisions: -32002).
      if (call.stateless && error.code === JsonRpcErrorCode.ResourceNotFound) error.code = JsonRpcErrorCode.InvalidParams;
      this.send(errorResponse(request.id, error), request.id);
    } finally {
      this.inflight.delete(request.id);
      this.streams.forget(request.id);
      if (call.correlationId) this.upstream.untie(call.correlationId);
      if (this.inflight.size === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  /** The request's Call, built once here at the edge; a 2025 request's is tied to this session's upstream sessions. */
  private callOf(request: JsonRpcRequest, signal: CallCancellation, headers: Record<string, string> | undefined): Call {
    const call: Call = this.core.call({
      method: request.method,
      params: request.params ?? {},
      requestId: request.id,
      transport: this.kind,
      identity: this.identity,
      access: this.access,
      signal,
      traceHeaders: headers,
      sessionId: this.busSessionId,
      upstream: this.upstream,
      onNotification: (method, params) => this.onCallNotification(call, method, params),
      ...(this.transport.callSent ? { onSent: (sent: SentCall) => this.transport.callSent?.({ ...sent, requestId: request.id }) } : {}),
    });
    return call;
  }

  /**
   * The answer of a call of this session that another gateway sent and died before answering (its
   * client resumed the call's stream here, PROTOCOL.md §19.4), as the JSON-RPC response that gateway
   * would have sent; none once the client cancelled the call (a cancelled request gets no answer).
   */
  private async recoverAnswer(call: StreamCall, signal: AbortSignal): Promise<JSONRPCMessage | undefined> {
    const { service, correlationId, delivery } = call;
    this.logger.info({ session: this.id, service, correlationId, delivery }, "looking for the answer of a call another gateway sent: its client resumed the call's stream here");
    // The wait ends when the client leaves the stream (`signal`) or cancels the call (cancelRecovered).
    const stop = new AbortController();
    const left = () => stop.abort(signal.reason);
    if (signal.aborted) left();
    else signal.addEventListener("abort", left, { once: true });
    this.recovering.set(call.requestId, { call, stop });
    try {
      return resultResponse(call.requestId, await this.core.dispatcher.recover(call, stop.signal)) as JSONRPCMessage;
    } catch (err) {
      if (err instanceof DmcpError && err.code === ErrorCode.Cancelled) return undefined;
      this.logger.debug({ err, service, correlationId }, "could not recover a call's answer");
      return errorResponse(call.requestId, toJsonRpcError(err)) as JSONRPCMessage;
    } finally {
      signal.removeEventListener("abort", left);
      if (this.recovering.get(call.requestId)?.stop === stop) this.recovering.delete(call.requestId);
    }
  }

  /** Cancels request `requestId` of the client if this gateway holds it (in flight, or its answer looked for); false when it does not. */
  private cancelHere(requestId: JsonRpcId, reason: CallError): boolean {
    const held = this.inflight.get(requestId);
    if (held) held.abort(reason);
    else if (!this.cancelRecovered(requestId, reason)) return false;
    return true;
  }

  /** The client cancelled a call whose answer this gateway looks for: the cancellation goes to its executor, and the search stops. */
  private cancelRecovered(requestId: JsonRpcId, reason: CallError): boolean {
    const recovering = this.recovering.get(requestId);
    if (!recovering) return false;
    this.recovering.delete(requestId);
    const { service, correlationId, delivery } = recovering.call;
    this.logger.info({ session: this.id, service, correlationId, delivery }, "the client cancelled a call another gateway sent: cancelling it on the bus");
    this.core.dispatcher.cancelRecovered(recovering.call, reason.message);
    recovering.stop.abort(reason);
    return true;
  }

  /** The methods of the session-based revisions that the gateway answers itself, or undefined for the shared ones. */
  private sessionMethod(call: Call): Answer | undefined {
    const { params } = call;
    switch (call.method) {
      case "initialize":
        return this.initialize(params);
      case "ping":
        return {};
      case "logging/setLevel":
        // Applied to this session's upstream sessions with their next call.
        if (typeof params.level !== "string") throw new RequestError(ErrorCode.InvalidParams, "params.level must be a string", { jsonrpcCode: JsonRpcErrorCode.InvalidParams });
        this.upstream.setLogLevel(params.level);
        return this.shareState().then(() => ({}));
      case "resources/subscribe":
      case "resources/unsubscribe":
        this.core.access.authorize(call);
        return this.subscribe(call);
      case "tasks/get":
      case "tasks/result":
      case "tasks/list":
      case "tasks/cancel":
        return this.taskMethods.legacy(call);
      default:
        return undefined;
    }
  }

  /** The methods both revisions share: the aggregated lists, and the calls forwarded to the owning service. */
  private forwardedMethod(call: Call): Answer {
    switch (call.method) {
      case "tools/list":
        return { tools: withTaskSupport(this.visibleList("tools")) };
      case "prompts/list":
        return { prompts: this.visibleList("prompts") };
      case "resources/list":
        return { resources: this.visibleList("resources") };
      case "resources/templates/list":
        return { resourceTemplates: this.visibleList("resourceTemplates") };
      case "tools/call":
      case "prompts/get":
      case "resources/read":
      case "completion/complete":
      case "skills/list":
      case "skills/get":
      case "resources/directory/read":
        this.core.access.authorize(call);
        if (SessionTasks.isLegacyTaskCall(call)) return this.taskMethods.createLegacy(call);
        return this.core.dispatcher.dispatch(call);
      default:
        throw new RequestError(ErrorCode.UnknownTarget, `Method not found: ${call.method}`, { jsonrpcCode: JsonRpcErrorCode.MethodNotFound });
    }
  }

  /** A list of the aggregated catalog without the items this session's identity may not use. */
  private visibleList(list: "tools" | "prompts" | "resources" | "resourceTemplates"): Record<string, unknown>[] {
    const catalog = this.core.catalog;
    if (this.visible?.catalog !== catalog) this.visible = { catalog, lists: {} };
    const cached = this.visible.lists[list];
    if (cached) return cached;
    const kind: ItemKind = list === "resourceTemplates" ? "resources" : list;
    const filtered = catalog[list].filter((item) => this.access.allows(kind, listedNames(catalog, list, item)));
    this.visible.lists[list] = filtered;
    return filtered;
  }

  /**
   * Context topics are subscribed to here; other resources in the upstream session of the service that
   * owns them, whose `notifications/resources/updated` then reach this client only.
   */
  private async subscribe(call: Call): Promise<Record<string, unknown>> {
    const uri = typeof call.params.uri === "string" ? call.params.uri : "";
    const topic = topicOfUri(uri);
    const subscribing = call.method === "resources/subscribe";
    if (topic) {
      if (subscribing) this.subscriptions.add(topic);
      else this.subscriptions.delete(topic);
      await this.shareState();
      return {};
    }
    const route = call.route;
    const result = await this.core.dispatcher.dispatch(call);
    this.upstream.subscribed(route, uri, subscribing);
    return result;
  }

  /**
   * Where a forwarded call's notifications go: out on its request's own stream, before its result (log
   * messages of a 2026-07-28 request only at or above the level it asked for; progress only for the
   * client's own token; a closed upstream stream closes the client's; nothing else).
   */
  private onCallNotification(call: Call, method: string, params: Record<string, unknown>): void {
    if (call.cancellation.aborted || call.requestId === undefined) return;
    // The upstream closed its stream to be polled: so does this client's, which then resumes it with
    // Last-Event-ID and gets the answer from the event store. Other clients wait.
    if (method === STREAM_CLOSED_METHOD) this.streams.close(call.requestId);
    else if (!isCallNotificationForClient(call.params, method, params)) this.logger.debug({ method, instance: call.instance }, "ignored a notification that is not the client's");
    else if (method === "notifications/message" && call.stateless && !wantsLogMessage(call.params, params)) return;
    else this.send({ jsonrpc: "2.0", method, params }, call.requestId);
  }

  private async initialize(params: Record<string, unknown>): Promise<Record<string, unknown>> {
    this.protocolVersion = negotiatedVersion(params.protocolVersion);
    this.transport.setProtocolVersion?.(this.protocolVersion);
    this.upstream.declareCapabilities(params.capabilities);
    const { catalog, serverInfo } = this.core;
    const instructions = catalog.instructions.join("\n");
    // Stored before the client has its answer: its next request may go to another gateway.
    await this.shareState();
    return {
      protocolVersion: this.protocolVersion,
      capabilities: {
        tools: { listChanged: true },
        resources: { listChanged: true, subscribe: true },
        prompts: { listChanged: true },
        completions: {},
        logging: {},
        tasks: TASKS_CAPABILITY,
        ...(Object.keys(catalog.extensions).length > 0 ? { extensions: catalog.extensions } : {}),
      },
      serverInfo,
      ...(instructions ? { instructions } : {}),
    };
  }

  private send(message: JsonRpcMessage, relatedRequestId?: JsonRpcId, sealed?: boolean): void {
    if (this.isClosed) return;
    // Sealed traffic outside any call goes on the GET stream sealed to the key of the gateway following it (PROTOCOL.md §19.3).
    const listenerKey = sealed && relatedRequestId === undefined && this.listener !== this.core.gatewayId ? this.listenerKey : undefined;
    this.transport
      .send(message as JSONRPCMessage, relatedRequestId === undefined && !sealed ? undefined : { relatedRequestId, sealed, listenerKey })
      .catch((err: unknown) => this.logger.debug({ err }, "could not send to the client"));
  }

  private onClosed(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    const closed = cancellation(undefined, "the MCP client session closed");
    for (const controller of this.inflight.values()) controller.abort(closed);
    this.inflight.clear();
    // Searches for other gateways' answers stop; the calls go on (the client did not cancel them).
    for (const { stop } of this.recovering.values()) stop.abort(closed);
    this.recovering.clear();
    this.taskMethods.close();
    this.upstream.close(this.endsUpstream);
    for (const resolve of this.idleWaiters.splice(0)) resolve();
    this.onclose?.();
    this.markClosed();
  }
}

/** The record's `pins`, when a call of the session reached any replica. */
function pinsOf(reached: Record<string, string>): { pins?: Record<string, string> } {
  for (const _ in reached) return { pins: reached };
  return {};
}

/** The W3C trace headers of an HTTP request (stdio messages have none). */
function traceHeaders(headers: HeaderReader | undefined): Record<string, string> | undefined {
  const traceparent = headers?.get("traceparent");
  if (!traceparent) return undefined;
  const tracestate = headers?.get("tracestate");
  return tracestate ? { traceparent, tracestate } : { traceparent };
}

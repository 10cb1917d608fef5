/**
 * One MCP client session on the gateway, over any SDK server `Transport` (stdio or Streamable HTTP).
 * The gateway answers the session-level methods itself (initialize, ping, the aggregated lists) and
 * forwards calls as raw JSON-RPC to the service that owns the tool, prompt or resource.
 */
import type { JSONRPCMessage, Transport } from "@modelcontextprotocol/server";
import { randomUUID } from "node:crypto";
import {
  cancellation,
  contextUri,
  DmcpError,
  ErrorCode,
  errorResponse,
  isErrorResponse,
  isNotification,
  isRequest,
  isResponse,
  JsonRpcErrorCode,
  META,
  checkStatelessMeta,
  negotiatedVersion,
  REMOVED_METHODS,
  requestedVersion,
  statelessResult,
  SUPPORTED_PROTOCOL_VERSIONS,
  wantsLogMessage,
  RELAYED_CLIENT_NOTIFICATIONS,
  resultResponse,
  toJsonRpcError,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcRequest,
  type ClientSession,
  STREAM_CLOSED_METHOD,
  topicOfUri,
} from "../../protocol/index.js";
import type { SessionCallContext } from "../calls/core.js";
import { ServerRequests } from "./server-requests.js";
import type { Logger } from "../../util/logger.js";
import type { AggregatedCatalog } from "../catalog/catalog.js";
import type { GatewayCore } from "../calls/core.js";
import { ANONYMOUS, type Access, type Identity, type ItemKind } from "../access/policy.js";
import { SessionTasks, TASKS_CAPABILITY, TASKS_EXTENSION, withTaskSupport } from "../tasks/task-methods.js";
import { ListenStreams } from "./listen-streams.js";
import { SessionPins } from "../calls/session-pins.js";

export type ListKind = "tools" | "resources" | "prompts";

export interface SessionOptions {
  /**
   * SSE polling (SEP-1699) by the gateway: a request still waiting for its answer after this many ms
   * has its SSE stream closed, once, for the client to resume it with Last-Event-ID; never without it.
   */
  ssePollMs?: number | undefined;
}

export class GatewaySession {
  private initialized = false;
  private protocolVersion: string | undefined;
  private readonly inflight = new Map<JsonRpcId, AbortController>();
  /**
   * Closes a request's SSE stream for the client to resume (HTTP with an event store only), by request
   * id; with SSE polling, `poll` closes it by itself, once, when the answer is late.
   */
  private readonly streamClosers = new Map<JsonRpcId, { close: () => void; poll: NodeJS.Timeout | undefined }>();
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
  readonly busSessionId = randomUUID();
  /** The client's capabilities from initialize, declared to its upstream sessions. */
  private clientCapabilities: Record<string, unknown> = {};
  private logLevel: string | undefined;
  /** The replica holding this session's upstream session, per service (PROTOCOL.md §16). */
  private readonly pins = new SessionPins();
  /** Client request ids of the calls on the bus, by correlation id: server-to-client requests name the call. */
  private readonly callIds = new Map<string, JsonRpcId>();
  /** Upstream resources this client subscribed to (service and upstream URI), with the URI the client knows. */
  private readonly upstreamSubscriptions = new Map<string, string>();
  private readonly serverRequests: ServerRequests;
  private readonly unregister: () => void;
  private readonly taskMethods: SessionTasks;

  constructor(
    private readonly core: GatewayCore,
    readonly transport: Transport,
    private readonly logger: Logger,
    /** `stdio` or `http`, for metrics and logs. */
    readonly kind: string = "",
    identity: Identity = ANONYMOUS,
    private readonly options: SessionOptions = {},
  ) {
    this.currentIdentity = identity;
    this.access = core.accessFor(identity);
    this.taskMethods = new SessionTasks(core.tasks, {
      identity: () => this.identity,
      caller: () => this.core.callerOf(this.identity),
      authorize: (method, params) => this.core.authorize(this.access, this.identity, method, params),
      notify: (method, params) => this.send({ jsonrpc: "2.0", method, params }),
      taskKeepingService: (params) => this.core.taskKeepingService(params),
      forwardToTaskHolder: (holder, method, params, signal) =>
        this.core.forwardToTaskHolder(holder, method, params, { signal, caller: this.core.callerOf(this.identity), transport: this.kind }),
    });
    transport.onmessage = (message, extra) => {
      if (extra?.closeSSEStream && isRequest(message as JsonRpcMessage)) this.trackStream((message as JsonRpcRequest).id, extra.closeSSEStream);
      this.onMessage(message as JsonRpcMessage, traceHeaders(extra?.request?.headers));
    };
    transport.onerror = (error) => this.logger.warn({ err: error }, "client transport error");
    transport.onclose = () => this.onClosed();
    this.serverRequests = new ServerRequests((message, related) => this.send(message, related));
    this.unregister = core.sessions.register(this.busSessionId, {
      holdsSession: (service, instance, correlationId) => {
        if (correlationId !== undefined && this.callIds.has(correlationId)) this.pins.reached(service, instance);
        return this.pins.get(service) === instance;
      },
      serverRequest: (method, params, correlationId, timeoutMs) => {
        const related = correlationId === undefined ? undefined : this.callIds.get(correlationId);
        return this.serverRequests.send(method, params, related, timeoutMs);
      },
      sessionNotification: (service, method, params) => this.onSessionNotification(service, method, params),
    });
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
    this.access = this.core.accessFor(identity);
    this.visible = undefined;
  }

  async start(): Promise<void> {
    await this.transport.start();
  }

  async close(): Promise<void> {
    await this.transport.close().catch(() => undefined);
    this.onClosed();
  }

  /** Tells the client that a subscribed context resource has a new value. */
  notifyResourceUpdated(topic: string): void {
    if (this.isClosed) return;
    const uri = contextUri(topic);
    if (this.initialized && this.subscriptions.has(topic)) this.send({ jsonrpc: "2.0", method: "notifications/resources/updated", params: { uri } });
    this.listens.notify("notifications/resources/updated", (filter) => filter.resourceSubscriptions?.includes(uri) === true, { uri });
  }

  /** Tells the client that a list changed: a 2025 client once it has initialized, 2026 listen streams that opted in. */
  notifyListChanged(kind: ListKind): void {
    if (this.isClosed) return;
    if (this.initialized) this.send({ jsonrpc: "2.0", method: `notifications/${kind}/list_changed` });
    const opted = `${kind}ListChanged` as "toolsListChanged" | "promptsListChanged" | "resourcesListChanged";
    this.listens.notify(`notifications/${kind}/list_changed`, (filter) => filter[opted] === true);
  }

  private onMessage(message: JsonRpcMessage, headers?: Record<string, string>): void {
    if (isRequest(message)) {
      void this.onRequest(message, headers);
    } else if (isNotification(message)) {
      this.onNotification(message.method, message.params);
    } else if (!(isResponse(message) && message.id !== null && this.serverRequests.settle(message.id, isErrorResponse(message) ? { error: message.error } : { result: message.result }))) {
      // A response to no request of ours (or one that timed out).
      this.core.clientMessageDropped(this.kind, "response");
    }
  }

  private onNotification(method: string, params: Record<string, unknown> | undefined): void {
    if (method === "notifications/initialized") {
      this.initialized = true;
    } else if (method === "notifications/cancelled") {
      const requestId = params?.requestId;
      // The client's reason goes with the cancellation to the agent or upstream running the call (PROTOCOL.md §5.5).
      if (typeof requestId === "string" || typeof requestId === "number") this.inflight.get(requestId)?.abort(cancellation(params?.reason, "the client cancelled the request"));
    } else if (RELAYED_CLIENT_NOTIFICATIONS.has(method)) {
      // Without the client's params: they mean nothing to the upstream, and unchecked they could make an envelope executors refuse.
      this.core.notifyUpstreamSessions(method, undefined, this.busSessionId, this.clientSession(), this.pins);
    } else {
      this.core.clientMessageDropped(this.kind, "notification");
    }
  }

  private trackStream(id: JsonRpcId, close: () => void): void {
    const closer = {
      // Closed by anyone (the gateway when the upstream closed its own, or the poll), it is not polled again.
      close: () => {
        clearTimeout(closer.poll);
        close();
      },
      poll: undefined as NodeJS.Timeout | undefined,
    };
    if (this.options.ssePollMs) {
      closer.poll = setTimeout(closer.close, this.options.ssePollMs);
      closer.poll.unref();
    }
    this.streamClosers.set(id, closer);
  }

  private forgetStream(id: JsonRpcId): void {
    clearTimeout(this.streamClosers.get(id)?.poll);
    this.streamClosers.delete(id);
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
    const reason = new DmcpError(ErrorCode.ShuttingDown, "the gateway is shutting down; the call was given up");
    for (const controller of this.inflight.values()) controller.abort(reason);
  }

  private async onRequest(request: JsonRpcRequest, headers?: Record<string, string>): Promise<void> {
    if (this.draining && request.method !== "ping") {
      this.forgetStream(request.id);
      this.send(errorResponse(request.id, toJsonRpcError(new DmcpError(ErrorCode.ShuttingDown, "the gateway is shutting down"))), request.id);
      return;
    }
    const controller = new AbortController();
    this.inflight.set(request.id, controller);
    // A request that names its protocol version in _meta is a 2026-07-28 (stateless) request, whatever came before.
    const stateless = requestedVersion(request.params) !== undefined;
    try {
      const result = stateless ? await this.dispatchStateless(request, controller.signal, headers) : await this.dispatch(request, controller.signal, headers);
      this.send(resultResponse(request.id, stateless ? statelessResult(request.method, result) : result), request.id);
    } catch (err) {
      // A cancelled request gets no answer (MCP cancellation).
      if (err instanceof DmcpError && err.code === ErrorCode.Cancelled) return;
      // Fields in the line, not a child logger per request: pino serialises (and redacts) a child's bindings when it is made.
      if (!(err instanceof DmcpError)) this.logger.error({ err, rpc: request.id, method: request.method }, "request failed");
      else this.logger.debug({ err, rpc: request.id, method: request.method }, "request failed");
      const error = toJsonRpcError(err);
      // 2026-07-28 answers an unknown resource with -32602 (earlier revisions: -32002).
      if (stateless && error.code === JsonRpcErrorCode.ResourceNotFound) error.code = JsonRpcErrorCode.InvalidParams;
      this.send(errorResponse(request.id, error), request.id);
    } finally {
      this.inflight.delete(request.id);
      this.forgetStream(request.id);
      for (const [correlationId, id] of this.callIds) if (id === request.id) this.callIds.delete(correlationId);
      if (this.inflight.size === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  /** The 2026-07-28 methods: discovery and listen streams instead of initialize and subscribe; the rest as before. */
  private dispatchStateless(request: JsonRpcRequest, signal: AbortSignal, headers?: Record<string, string>): Promise<Record<string, unknown>> | Record<string, unknown> {
    checkStatelessMeta(request.params, requestedVersion(request.params)!);
    if (REMOVED_METHODS.has(request.method)) {
      throw new DmcpError(ErrorCode.UnknownTarget, `Method not found: ${request.method} (removed in MCP 2026-07-28)`, { jsonrpcCode: JsonRpcErrorCode.MethodNotFound });
    }
    if (request.method === "server/discover") return this.discover();
    if (request.method === "subscriptions/listen") return this.listens.listen(request, signal);
    const forward = (params: Record<string, unknown>, onInstance: (instance: string) => void) =>
      this.core.forward(request.method, params, { ...this.forwardContext(request, signal, headers), onInstance, onNotification: this.notifier(request, signal) });
    return this.taskMethods.stateless(request.method, request.params ?? {}, forward, signal) ?? this.dispatch(request, signal, headers);
  }

  private discover(): Record<string, unknown> {
    const instructions = this.core.catalog.instructions.join("\n");
    return {
      supportedVersions: SUPPORTED_PROTOCOL_VERSIONS,
      capabilities: {
        tools: { listChanged: true },
        resources: { listChanged: true, subscribe: true },
        prompts: { listChanged: true },
        completions: {},
        extensions: { ...this.core.catalog.extensions, [TASKS_EXTENSION]: {} },
      },
      ...(instructions ? { instructions } : {}),
      _meta: { [META.serverInfo]: this.core.serverInfo },
    };
  }

  private dispatch(request: JsonRpcRequest, signal: AbortSignal, headers?: Record<string, string>): Promise<Record<string, unknown>> | Record<string, unknown> {
    const params = request.params ?? {};
    switch (request.method) {
      case "initialize":
        return this.initialize(params);
      case "ping":
        return {};
      case "logging/setLevel":
        // Applied to this session's upstream sessions with their next call.
        if (typeof params.level !== "string") throw new DmcpError(ErrorCode.InvalidParams, "params.level must be a string", { jsonrpcCode: JsonRpcErrorCode.InvalidParams });
        this.logLevel = params.level;
        return {};
      case "resources/subscribe":
      case "resources/unsubscribe":
        this.core.authorize(this.access, this.identity, request.method, params);
        return this.subscribe(request, signal, headers);
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
        this.core.authorize(this.access, this.identity, request.method, params);
        if (SessionTasks.isLegacyTaskCall(request.method, params)) return this.taskMethods.createLegacy(params);
        return this.core.forward(request.method, params, { ...this.forwardContext(request, signal, headers), onNotification: this.notifier(request, signal) });
      case "tasks/get":
      case "tasks/result":
      case "tasks/list":
      case "tasks/cancel":
        return this.taskMethods.legacy(request.method, params, signal);
      default:
        throw new DmcpError(ErrorCode.UnknownTarget, `Method not found: ${request.method}`, { jsonrpcCode: JsonRpcErrorCode.MethodNotFound });
    }
  }

  /** A list of the aggregated catalog without the items this session's identity may not use. */
  private visibleList(list: "tools" | "prompts" | "resources" | "resourceTemplates"): Record<string, unknown>[] {
    const catalog = this.core.catalog;
    if (this.visible?.catalog !== catalog) this.visible = { catalog, lists: {} };
    const cached = this.visible.lists[list];
    if (cached) return cached;
    const kind: ItemKind = list === "resourceTemplates" ? "resources" : list;
    const filtered = catalog[list].filter((item) => this.access.allows(kind, this.core.namesOf(list, item)));
    this.visible.lists[list] = filtered;
    return filtered;
  }

  /**
   * Context topics are subscribed to here; other resources in the upstream session of the service that
   * owns them, whose `notifications/resources/updated` then reach this client only.
   */
  private async subscribe(request: JsonRpcRequest, signal: AbortSignal, headers?: Record<string, string>): Promise<Record<string, unknown>> {
    const params = request.params ?? {};
    const uri = typeof params.uri === "string" ? params.uri : "";
    const topic = topicOfUri(uri);
    const subscribing = request.method === "resources/subscribe";
    if (topic) {
      if (subscribing) this.subscriptions.add(topic);
      else this.subscriptions.delete(topic);
      return {};
    }
    const route = this.core.resourceTarget(uri);
    const result = await this.core.forward(request.method, params, this.forwardContext(request, signal, headers));
    const key = `${route.service}\n${route.uri}`;
    if (subscribing) this.upstreamSubscriptions.set(key, uri);
    else this.upstreamSubscriptions.delete(key);
    return result;
  }

  /** Progress and the like go out on the request's own stream, before its result. */
  /**
   * Where a forwarded request's notifications go: out on its own stream, before its result (log messages
   * of a 2026-07-28 request only at or above the level it asked for; a closed upstream stream closes the client's).
   */
  private notifier(request: JsonRpcRequest, signal: AbortSignal) {
    return (method: string, params: Record<string, unknown>) => {
      if (signal.aborted) return;
      // The upstream closed its stream to be polled: so does this client's, which then resumes it with
      // Last-Event-ID and gets the answer from the event store. Other clients wait.
      if (method === STREAM_CLOSED_METHOD) this.streamClosers.get(request.id)?.close();
      else if (method === "notifications/message" && requestedVersion(request.params) !== undefined && !wantsLogMessage(request.params, params)) return;
      else this.send({ jsonrpc: "2.0", method, params }, request.id);
    };
  }

  /** What the core needs to forward one of this session's requests over the bus. */
  private forwardContext(request: JsonRpcRequest, signal: AbortSignal, headers: Record<string, string> | undefined) {
    return {
      signal,
      sessionId: this.busSessionId,
      transport: this.kind,
      traceHeaders: headers,
      caller: this.core.callerOf(this.identity),
      ...this.sessionContext(request),
    };
  }

  /** Ties a call to this session's upstream sessions; stateless (2026-07-28) requests stay untied. */
  private sessionContext(request: JsonRpcRequest): SessionCallContext {
    if (requestedVersion(request.params) !== undefined) return {};
    const correlationId = randomUUID();
    this.callIds.set(correlationId, request.id);
    return { clientSession: this.clientSession(), pins: this.pins, correlationId };
  }

  private clientSession(): ClientSession {
    return { gateway: this.core.gatewayId, capabilities: this.clientCapabilities, ...(this.logLevel ? { log_level: this.logLevel } : {}) };
  }

  /** Logging and resource updates of an upstream session, for this client. */
  private onSessionNotification(service: string, method: string, params: Record<string, unknown>): void {
    if (method === "notifications/resources/updated") {
      const uri = this.upstreamSubscriptions.get(`${service}\n${String(params.uri)}`);
      if (uri !== undefined) this.send({ jsonrpc: "2.0", method, params: { ...params, uri } });
      return;
    }
    this.send({ jsonrpc: "2.0", method, params });
  }

  private initialize(params: Record<string, unknown>): Record<string, unknown> {
    this.protocolVersion = negotiatedVersion(params.protocolVersion);
    this.transport.setProtocolVersion?.(this.protocolVersion);
    const capabilities = params.capabilities;
    if (typeof capabilities === "object" && capabilities !== null && !Array.isArray(capabilities)) this.clientCapabilities = capabilities as Record<string, unknown>;
    const instructions = this.core.catalog.instructions.join("\n");
    return {
      protocolVersion: this.protocolVersion,
      capabilities: {
        tools: { listChanged: true },
        resources: { listChanged: true, subscribe: true },
        prompts: { listChanged: true },
        completions: {},
        logging: {},
        tasks: TASKS_CAPABILITY,
        ...(Object.keys(this.core.catalog.extensions).length > 0 ? { extensions: this.core.catalog.extensions } : {}),
      },
      serverInfo: this.core.serverInfo,
      ...(instructions ? { instructions } : {}),
    };
  }

  private send(message: JsonRpcMessage, relatedRequestId?: JsonRpcId): void {
    if (this.isClosed) return;
    this.transport
      .send(message as JSONRPCMessage, relatedRequestId === undefined ? undefined : { relatedRequestId })
      .catch((err: unknown) => this.logger.debug({ err }, "could not send to the client"));
  }

  private onClosed(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    const closed = cancellation(undefined, "the MCP client session closed");
    for (const controller of this.inflight.values()) controller.abort(closed);
    this.inflight.clear();
    this.serverRequests.closeAll(new DmcpError(ErrorCode.SessionLost, "the MCP client session closed"));
    this.unregister();
    this.taskMethods.close();
    this.core.closeUpstreamSessions(this.busSessionId, this.clientSession(), this.pins);
    for (const resolve of this.idleWaiters.splice(0)) resolve();
    this.onclose?.();
    this.markClosed();
  }
}

/** The W3C trace headers of an HTTP request (stdio messages have none). */
function traceHeaders(headers: Headers | undefined): Record<string, string> | undefined {
  const traceparent = headers?.get("traceparent");
  if (!traceparent) return undefined;
  const tracestate = headers?.get("tracestate");
  return tracestate ? { traceparent, tracestate } : { traceparent };
}

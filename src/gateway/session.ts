/**
 * One MCP client session on the gateway, over any SDK server `Transport` (stdio or Streamable HTTP).
 * The gateway answers the session-level methods itself (initialize, ping, the aggregated lists) and
 * forwards calls as raw JSON-RPC to the service that owns the tool, prompt or resource.
 */
import type { JSONRPCMessage, Transport } from "@modelcontextprotocol/server";
import {
  contextUri,
  DmcpError,
  ErrorCode,
  errorResponse,
  isNotification,
  isRequest,
  JsonRpcErrorCode,
  resultResponse,
  toJsonRpcError,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcRequest,
  topicOfUri,
} from "../protocol/index.js";
import type { Logger } from "../util/logger.js";
import type { GatewayCore } from "./core.js";

export const GATEWAY_PROTOCOL_VERSIONS = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05", "2024-10-07"];
export const LATEST_PROTOCOL_VERSION = GATEWAY_PROTOCOL_VERSIONS[0]!;

export type ListKind = "tools" | "resources" | "prompts";

export class GatewaySession {
  private initialized = false;
  private protocolVersion: string | undefined;
  private readonly inflight = new Map<JsonRpcId, AbortController>();
  /** Set when the gateway shuts down: new requests are refused, calls in flight may finish. */
  private draining = false;
  private idleWaiters: (() => void)[] = [];
  /** Context topics this client subscribed to (resources/subscribe). */
  private readonly subscriptions = new Set<string>();
  private isClosed = false;
  private markClosed: () => void = () => undefined;
  /** Resolves when the client's transport has closed. */
  readonly closed = new Promise<void>((resolve) => (this.markClosed = resolve));
  onclose: (() => void) | undefined;

  constructor(
    private readonly core: GatewayCore,
    readonly transport: Transport,
    private readonly logger: Logger,
    /** `stdio` or `http`, for metrics and logs. */
    readonly kind: string = "",
  ) {
    transport.onmessage = (message, extra) => this.onMessage(message as JsonRpcMessage, traceHeaders(extra?.request?.headers));
    transport.onerror = (error) => this.logger.warn({ err: error }, "client transport error");
    transport.onclose = () => this.onClosed();
  }

  get id(): string | undefined {
    return this.transport.sessionId;
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
    if (!this.initialized || this.isClosed || !this.subscriptions.has(topic)) return;
    this.send({ jsonrpc: "2.0", method: "notifications/resources/updated", params: { uri: contextUri(topic) } });
  }

  /** Tells the client that a list changed (only once it has initialized). */
  notifyListChanged(kind: ListKind): void {
    if (!this.initialized || this.isClosed) return;
    this.send({ jsonrpc: "2.0", method: `notifications/${kind}/list_changed` });
  }

  private onMessage(message: JsonRpcMessage, headers?: Record<string, string>): void {
    if (isRequest(message)) {
      void this.onRequest(message, headers);
    } else if (isNotification(message)) {
      this.onNotification(message.method, message.params);
    }
    // Responses: the gateway sends clients no requests yet, so there is nothing to pair them with.
  }

  private onNotification(method: string, params: Record<string, unknown> | undefined): void {
    if (method === "notifications/initialized") {
      this.initialized = true;
    } else if (method === "notifications/cancelled") {
      const requestId = params?.requestId;
      if (typeof requestId === "string" || typeof requestId === "number") this.inflight.get(requestId)?.abort();
    }
  }

  /** Refuses new requests from now on; resolves when the calls in flight have answered. */
  drain(): Promise<void> {
    this.draining = true;
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
      this.send(errorResponse(request.id, toJsonRpcError(new DmcpError(ErrorCode.ShuttingDown, "the gateway is shutting down"))), request.id);
      return;
    }
    const controller = new AbortController();
    this.inflight.set(request.id, controller);
    const log = this.logger.child({ rpc: request.id, method: request.method });
    try {
      const result = await this.dispatch(request, controller.signal, headers);
      this.send(resultResponse(request.id, result), request.id);
    } catch (err) {
      // A cancelled request gets no answer (MCP cancellation).
      if (err instanceof DmcpError && err.code === ErrorCode.Cancelled) return;
      if (!(err instanceof DmcpError)) log.error({ err }, "request failed");
      else log.debug({ err }, "request failed");
      this.send(errorResponse(request.id, toJsonRpcError(err)), request.id);
    } finally {
      this.inflight.delete(request.id);
      if (this.inflight.size === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  private dispatch(request: JsonRpcRequest, signal: AbortSignal, headers?: Record<string, string>): Promise<Record<string, unknown>> | Record<string, unknown> {
    const params = request.params ?? {};
    switch (request.method) {
      case "initialize":
        return this.initialize(params);
      case "ping":
        return {};
      case "logging/setLevel":
        return {};
      case "resources/subscribe":
        this.subscriptions.add(this.subscribableTopic(params));
        return {};
      case "resources/unsubscribe":
        this.subscriptions.delete(this.subscribableTopic(params));
        return {};
      case "tools/list":
        return { tools: this.core.catalog.tools };
      case "prompts/list":
        return { prompts: this.core.catalog.prompts };
      case "resources/list":
        return { resources: this.core.catalog.resources };
      case "resources/templates/list":
        return { resourceTemplates: this.core.catalog.resourceTemplates };
      case "tools/call":
      case "prompts/get":
      case "resources/read":
      case "completion/complete":
        return this.core.forward(request.method, params, {
          signal,
          sessionId: this.id,
          transport: this.kind,
          traceHeaders: headers,
          // Progress and the like go out on the request's own stream, before its result.
          onNotification: (method, notificationParams) => {
            if (!signal.aborted) this.send({ jsonrpc: "2.0", method, params: notificationParams }, request.id);
          },
        });
      default:
        throw new DmcpError(ErrorCode.UnknownTarget, `Method not found: ${request.method}`, { jsonrpcCode: JsonRpcErrorCode.MethodNotFound });
    }
  }

  private subscribableTopic(params: Record<string, unknown>): string {
    const uri = typeof params.uri === "string" ? params.uri : "";
    const topic = topicOfUri(uri);
    if (topic) return topic;
    throw new DmcpError(
      ErrorCode.InvalidParams,
      `cannot subscribe to ${JSON.stringify(uri)}: subscriptions are offered for context topics (dmcp://context/<topic>); ` +
        "resources of wrapped servers cannot be subscribed to through the gateway yet",
      { data: { uri } },
    );
  }

  private initialize(params: Record<string, unknown>): Record<string, unknown> {
    const requested = typeof params.protocolVersion === "string" ? params.protocolVersion : undefined;
    this.protocolVersion = requested && GATEWAY_PROTOCOL_VERSIONS.includes(requested) ? requested : LATEST_PROTOCOL_VERSION;
    this.transport.setProtocolVersion?.(this.protocolVersion);
    const instructions = this.core.catalog.instructions.join("\n");
    return {
      protocolVersion: this.protocolVersion,
      capabilities: {
        tools: { listChanged: true },
        resources: { listChanged: true, subscribe: true },
        prompts: { listChanged: true },
        completions: {},
        logging: {},
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
    for (const controller of this.inflight.values()) controller.abort();
    this.inflight.clear();
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

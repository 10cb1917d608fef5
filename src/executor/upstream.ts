/**
 * A raw JSON-RPC session with one upstream MCP server, over any SDK client `Transport`. Raw, because the
 * SDK's typed helpers drop fields they do not know, and a transparent bridge must not.
 */
import type { JSONRPCMessage, Transport } from "@modelcontextprotocol/client";
import {
  DmcpError,
  ErrorCode,
  errorResponse,
  isErrorResponse,
  isNotification,
  isRequest,
  isResponse,
  JsonRpcErrorCode,
  resultResponse,
  type JsonRpcMessage,
  type JsonRpcRequest,
  META,
  toJsonRpcError,
  requestedVersion,
  STATELESS_PROTOCOL_VERSIONS,
  withoutStatelessMeta,
} from "../protocol/index.js";
import type { Logger } from "../util/logger.js";

/** The MCP revision the executor asks upstream servers for; older servers answer with their own. */
export const UPSTREAM_PROTOCOL_VERSION = "2025-11-25";
const KNOWN_VERSIONS = new Set(["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05", "2024-10-07"]);

export interface UpstreamInfo {
  protocolVersion: string;
  /** Stateless revisions (2026-07-28) the server also serves, per request, as `server/discover` said. */
  statelessVersions?: string[];
  capabilities: Record<string, unknown>;
  serverInfo: Record<string, unknown>;
  instructions?: string;
}

export interface UpstreamRequestOptions {
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** The server closed the request's SSE stream before answering, to be polled (SEP-1699); the answer comes later. */
  onStreamClosed?: (() => void) | undefined;
}

interface Pending {
  resolve: (result: Record<string, unknown>) => void;
  reject: (error: DmcpError) => void;
  timer: NodeJS.Timeout;
  onStreamClosed?: (() => void) | undefined;
}

/** The capabilities the executor declares for itself when no client session's are known. */
export const DEFAULT_CLIENT_CAPABILITIES: Record<string, unknown> = { roots: { listChanged: false } };

/** Answers a server-to-client request (sampling, elicitation, roots) with its result, or throws a DmcpError. */
export type ServerRequestHandler = (method: string, params: Record<string, unknown> | undefined) => Promise<Record<string, unknown>>;

export class McpUpstream {
  onnotification: ((method: string, params: Record<string, unknown> | undefined) => void) | undefined;
  /** Set for a client session's upstream session: its server-to-client requests go to that client. */
  onrequest: ServerRequestHandler | undefined;
  onclose: ((error?: Error) => void) | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closed = false;
  private lastError: Error | undefined;
  info: UpstreamInfo | undefined;
  /** Settles once `server/discover` answered or failed: `info.statelessVersions` is known then. */
  discovery: Promise<void> = Promise.resolve();
  /** The input schemas of the tools the server listed: its transport may mirror arguments into headers. */
  private readonly toolSchemas = new Map<string, unknown>();

  /**
   * `closeOnError`: treat any transport error after the handshake as the end of the session, for
   * transports that would otherwise reconnect on their own into a session nobody initialized.
   */
  constructor(
    private readonly transport: Transport,
    private readonly logger: Logger,
    private readonly options: { closeOnError?: boolean } = {},
  ) {
    transport.onmessage = (message) => this.onMessage(message as JsonRpcMessage);
    transport.onerror = (error) => {
      this.lastError = error;
      this.logger.warn({ err: error }, "upstream transport error");
      if (this.options.closeOnError && this.info) void this.close();
    };
    transport.onclose = () => this.onClosed();
    (transport as ToolSchemaHook).toolSchema = (name) => this.toolSchemas.get(name);
    (transport as RequestStreamHook).onrequeststreamclosed = (id, resuming) => this.onRequestStreamClosed(id, resuming);
  }

  /** Starts the transport and performs the MCP initialize handshake. */
  async connect(clientInfo: { name: string; version: string }, capabilities = DEFAULT_CLIENT_CAPABILITIES, timeoutMs = 30_000): Promise<UpstreamInfo> {
    await this.transport.start();
    const result = await this.request(
      "initialize",
      { protocolVersion: UPSTREAM_PROTOCOL_VERSION, capabilities, clientInfo },
      { timeoutMs },
    ).catch((err: unknown) => {
      if (err instanceof DmcpError && err.code === ErrorCode.UpstreamClosed) {
        throw new DmcpError(ErrorCode.UpstreamClosed, `the upstream MCP server went away before answering initialize: ${describeError(err.cause ?? this.lastError ?? err)}`, { cause: err });
      }
      throw err;
    });
    const protocolVersion = typeof result.protocolVersion === "string" ? result.protocolVersion : "";
    if (!KNOWN_VERSIONS.has(protocolVersion)) {
      await this.close();
      throw new DmcpError(ErrorCode.UpstreamUnavailable, `upstream answered with unsupported protocol version ${JSON.stringify(protocolVersion)}`);
    }
    this.transport.setProtocolVersion?.(protocolVersion);
    this.info = {
      protocolVersion,
      capabilities: asRecord(result.capabilities),
      serverInfo: asRecord(result.serverInfo),
      ...(typeof result.instructions === "string" ? { instructions: result.instructions } : {}),
    };
    await this.transport.send({ jsonrpc: "2.0", method: "notifications/initialized" });
    // In the background: readiness does not wait for a server that ignores unknown methods.
    this.discovery = this.discoverStatelessVersions(clientInfo);
    return this.info;
  }

  /**
   * Asks the server whether it also speaks a stateless revision: 2026-07-28 clients' requests then go
   * to it as they are; to a server that does not, without the per-request `_meta` keys it would misread.
   */
  private async discoverStatelessVersions(clientInfo: { name: string; version: string }): Promise<void> {
    const version = STATELESS_PROTOCOL_VERSIONS[0]!;
    const meta = { [META.protocolVersion]: version, [META.clientInfo]: clientInfo, [META.clientCapabilities]: {} };
    try {
      const result = await this.request("server/discover", { _meta: meta }, { timeoutMs: 5000 });
      const supported = Array.isArray(result.supportedVersions) ? result.supportedVersions.filter((v): v is string => typeof v === "string") : [];
      if (this.info) this.info.statelessVersions = STATELESS_PROTOCOL_VERSIONS.filter((v) => supported.includes(v));
      this.logger.debug({ statelessVersions: this.info?.statelessVersions }, "upstream discovery");
    } catch {
      // -32601 from a 2025 server, or no answer: it speaks sessions only.
    }
  }

  /** Sends one request and resolves with its raw result; JSON-RPC errors become UPSTREAM_ERROR. */
  request(method: string, params: Record<string, unknown> | undefined, options: UpstreamRequestOptions): Promise<Record<string, unknown>> {
    const answer = this.send(method, params, options);
    return method === "tools/list" ? answer.then((result) => this.learnToolSchemas(result)) : answer;
  }

  private learnToolSchemas(result: Record<string, unknown>): Record<string, unknown> {
    if (Array.isArray(result.tools)) for (const tool of result.tools as { name?: unknown; inputSchema?: unknown }[]) if (typeof tool?.name === "string") this.toolSchemas.set(tool.name, tool.inputSchema);
    return result;
  }

  private send(method: string, params: Record<string, unknown> | undefined, options: UpstreamRequestOptions): Promise<Record<string, unknown>> {
    if (this.closed) return Promise.reject(new DmcpError(ErrorCode.UpstreamClosed, "the upstream MCP server is not connected"));
    // Cancelled while waiting for its upstream session to open: it never reaches the upstream.
    if (options.signal?.aborted) return Promise.reject(new DmcpError(ErrorCode.Cancelled, "the call was cancelled"));
    const version = requestedVersion(params);
    if (version !== undefined && method !== "server/discover" && !this.info?.statelessVersions?.includes(version)) params = withoutStatelessMeta(params);
    const id = this.nextId++;
    const message: JsonRpcRequest = params === undefined ? { jsonrpc: "2.0", id, method } : { jsonrpc: "2.0", id, method, params };
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.settle(id)?.reject(new DmcpError(ErrorCode.DeadlineExceeded, `upstream did not answer ${method} within ${options.timeoutMs} ms`));
        void this.cancelUpstream(id, "deadline exceeded");
      }, options.timeoutMs);
      this.pending.set(id, { resolve, reject, timer, onStreamClosed: options.onStreamClosed });
      options.signal?.addEventListener(
        "abort",
        () => {
          this.settle(id)?.reject(new DmcpError(ErrorCode.Cancelled, "the call was cancelled"));
          void this.cancelUpstream(id, "cancelled by the caller");
        },
        { once: true },
      );
      this.transport.send(message).catch((cause: unknown) => {
        this.settle(id)?.reject(new DmcpError(ErrorCode.UpstreamClosed, `could not send ${method} upstream: ${(cause as Error).message}`, { cause }));
      });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.transport.close().catch(() => undefined);
    this.onClosed();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private settle(id: number): Pending | undefined {
    const entry = this.pending.get(id);
    if (!entry) return undefined;
    this.pending.delete(id);
    clearTimeout(entry.timer);
    return entry;
  }

  private async cancelUpstream(id: number, reason: string): Promise<void> {
    if (this.closed) return;
    await this.transport.send({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: id, reason } }).catch(() => undefined);
  }

  private onRequestStreamClosed(id: string | number, resuming: boolean): void {
    if (typeof id !== "number") return;
    if (resuming) this.pending.get(id)?.onStreamClosed?.();
    else this.settle(id)?.reject(new DmcpError(ErrorCode.UpstreamClosed, "the upstream MCP server closed the request's stream before answering"));
  }

  private onMessage(message: JsonRpcMessage): void {
    if (isResponse(message)) {
      const entry = typeof message.id === "number" ? this.settle(message.id) : undefined;
      if (!entry) return; // late answer to a call that timed out or was cancelled
      if (isErrorResponse(message)) {
        const { code, message: text, data } = message.error;
        entry.reject(new DmcpError(ErrorCode.UpstreamError, text, { jsonrpcCode: code, data }));
      } else {
        entry.resolve(message.result);
      }
      return;
    }
    if (isRequest(message)) {
      void this.answerServerRequest(message);
      return;
    }
    if (isNotification(message)) this.onnotification?.(message.method, message.params);
  }

  /** Server-to-client requests: relayed to the client session when there is one, else answered here. */
  private async answerServerRequest(request: JsonRpcRequest): Promise<void> {
    const relay = this.onrequest;
    const reply =
      relay && request.method !== "ping"
        ? await relay(request.method, request.params).then(
            (result) => resultResponse(request.id, result),
            (err: unknown) => errorResponse(request.id, toJsonRpcError(err)),
          )
        : request.method === "ping"
        ? resultResponse(request.id, {})
        : request.method === "roots/list"
          ? resultResponse(request.id, { roots: [] })
          : errorResponse(request.id, {
              code: JsonRpcErrorCode.MethodNotFound,
              message: `${request.method} is not forwarded to MCP clients by this dmcp-gateway version`,
            });
    await this.transport.send(reply as JSONRPCMessage).catch(() => undefined);
  }

  private onClosed(): void {
    if (this.closed) return;
    this.closed = true;
    for (const id of [...this.pending.keys()]) {
      this.settle(id)?.reject(new DmcpError(ErrorCode.UpstreamClosed, "the upstream MCP server closed the connection during the call"));
    }
    this.onclose?.(this.lastError);
  }
}

/** What a transport offers to send `Mcp-Param-*` headers (the Streamable HTTP one does; others ignore it). */
interface ToolSchemaHook {
  toolSchema?: (name: string) => unknown;
}

/** How a transport with a stream per request (Streamable HTTP) reports one that ended before its answer. */
interface RequestStreamHook {
  onrequeststreamclosed?: (requestId: string | number, resuming: boolean) => void;
}

function asRecord(value: unknown): Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

/** An error's message with the messages of its causes, for logs and for callers' error text. */
export function describeError(error: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = error; e !== undefined && parts.length < 6; e = e instanceof Error ? e.cause : undefined) {
    const message = e instanceof Error ? e.message : String(e);
    if (message && !parts.some((part) => part.includes(message))) parts.push(message);
  }
  return parts.join(": ");
}

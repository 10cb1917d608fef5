/**
 * A raw JSON-RPC session with one upstream MCP server, over an UpstreamTransport (transport.ts). Raw,
 * because the SDK's typed helpers drop fields they do not know, and a transparent bridge must not.
 */
import type { JSONRPCMessage } from "@modelcontextprotocol/client";
import {
  CallError,
  cancelReasonOf,
  DmcpError,
  ErrorCode,
  errorResponse,
  fromJsonRpcError,
  isErrorResponse,
  isNotification,
  isRequest,
  isResponse,
  JsonRpcErrorCode,
  resultResponse,
  type JsonRpcMessage,
  type JsonRpcRequest,
  type CancelSignal,
  META,
  metaOf,
  toJsonRpcError,
  STATELESS_PROTOCOL_VERSIONS,
  StatelessErrorCode,
  UpstreamError,
  withoutStatelessMeta,
} from "../../protocol/index.js";
import { DeadlineSweep, excerpt, type Logger } from "../../util/index.js";
import { HttpStatusError, type UpstreamTransport } from "./transport.js";

/** The MCP revision the executor asks upstream servers for; older servers answer with their own. */
export const UPSTREAM_PROTOCOL_VERSION = "2025-11-25";
const KNOWN_VERSIONS = new Set(["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05", "2024-10-07"]);

export interface UpstreamInfo {
  protocolVersion: string;
  /** Stateless revisions (2026-07-28) the server also serves, per request, as `server/discover` said. */
  statelessVersions?: string[];
  /** The capabilities `server/discover` declared to a stateless request (extensions such as tasks may appear only there). */
  statelessCapabilities?: Record<string, unknown>;
  capabilities: Record<string, unknown>;
  serverInfo: Record<string, unknown>;
  instructions?: string;
}

export interface UpstreamRequestOptions {
  timeoutMs: number;
  /**
   * The stateless MCP revision (2026-07-28) the params' `_meta` names, worked out once by whoever
   * makes the request; undefined for a request of a session-based revision.
   */
  revision: string | undefined;
  signal?: CancelSignal | undefined;
  /** Log messages the server sent with this request (where the transport can tell, e.g. on its POST stream). */
  onNotification?: ((method: string, params: Record<string, unknown>) => void) | undefined;
  /** The server closed the request's SSE stream before answering, to be polled (SEP-1699); the answer comes later. */
  onStreamClosed?: (() => void) | undefined;
}

interface Pending {
  method: string;
  resolve: (result: Record<string, unknown>) => void;
  reject: (error: DmcpError) => void;
  /** When the caller stops waiting (epoch ms), and the wait it came from, for the error. */
  deadline: number;
  timeoutMs: number;
  onNotification: UpstreamRequestOptions["onNotification"];
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
  /** One timer for all the requests' deadlines, not one per request. */
  private readonly deadlines = new DeadlineSweep(this.pending, (id, entry) => {
    this.settle(id)?.reject(new CallError(ErrorCode.DeadlineExceeded, `upstream did not answer ${entry.method} within ${entry.timeoutMs} ms`));
    void this.cancelUpstream(id, "deadline exceeded");
  });
  private closed = false;
  private lastError: Error | undefined;
  info: UpstreamInfo | undefined;
  /** Settles when the server has answered (or ignored) `server/discover` after the handshake. */
  discovery: Promise<void> = Promise.resolve();
  /** Set on a stateless connection: the envelope its requests carry when they come without one (catalog reads). */
  private statelessMeta: Record<string, unknown> | undefined;
  /** The input schemas of the tools the server listed: its transport may mirror arguments into headers. */
  private readonly toolSchemas = new Map<string, unknown>();

  constructor(
    private readonly transport: UpstreamTransport,
    private readonly logger: Logger,
  ) {
    transport.onmessage = (message) => this.onMessage(message as JsonRpcMessage);
    transport.onerror = (error) => {
      this.lastError = error;
      // Before the handshake, the error is the failure of connect(), which says it (the warning would say it twice).
      this.logger[this.info ? "warn" : "debug"]({ err: error }, "upstream transport error");
      if (transport.endsSessionOnError && this.info) void this.close();
    };
    transport.onclose = () => this.onClosed();
    transport.toolSchema = (name) => this.toolSchemas.get(name);
    transport.onrequestnotification = (requestId, message) => this.onRequestNotification(requestId, message as JsonRpcMessage);
    transport.onrequeststreamclosed = (id, resuming) => this.onRequestStreamClosed(id, resuming);
    transport.onrequestfailed = (id, error) => this.failUnreadable(typeof id === "number" ? this.settle(id) : undefined, error.message);
    transport.onunreadable = (line, reason) => this.onUnreadable(line, reason);
  }

  /** Starts the transport and performs the MCP initialize handshake. */
  async connect(clientInfo: { name: string; version: string }, capabilities = DEFAULT_CLIENT_CAPABILITIES, timeoutMs = 30_000): Promise<UpstreamInfo> {
    await this.transport.start();
    const result = await this.request("initialize", { protocolVersion: UPSTREAM_PROTOCOL_VERSION, capabilities, clientInfo }, { timeoutMs, revision: undefined }).catch(
      (err: unknown) => {
        throw this.goneBefore("initialize", err);
      },
    );
    const protocolVersion = typeof result.protocolVersion === "string" ? result.protocolVersion : "";
    if (!KNOWN_VERSIONS.has(protocolVersion)) {
      await this.close();
      throw new UpstreamError(ErrorCode.UpstreamUnavailable, `upstream answered with unsupported protocol version ${JSON.stringify(protocolVersion)}`);
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
   * Starts the transport without `initialize`: the connection then carries only stateless (2026-07-28)
   * requests, each with its own client capabilities, and the server answers them as such (over stdio
   * the SDK server pins a connection to the revision of its first request, here `server/discover`).
   */
  async connectStateless(
    clientInfo: { name: string; version: string },
    options: {
      timeoutMs?: number;
      /** The client capabilities its requests declare (a client session's own; none by default). */
      capabilities?: Record<string, unknown> | undefined;
    } = {},
  ): Promise<UpstreamInfo> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    await this.transport.start();
    const result = await this.discover(clientInfo, timeoutMs).catch((err: unknown) => {
      throw this.goneBefore("server/discover", err);
    });
    const statelessVersions = supportedStatelessVersions(result);
    if (statelessVersions.length === 0) {
      await this.close();
      throw new UpstreamError(ErrorCode.UpstreamUnavailable, `upstream serves none of the stateless protocol versions ${STATELESS_PROTOCOL_VERSIONS.join(", ")}`);
    }
    this.statelessMeta = statelessEnvelope(statelessVersions[0]!, clientInfo, options.capabilities);
    this.info = {
      protocolVersion: statelessVersions[0]!,
      statelessVersions,
      capabilities: asRecord(result.capabilities),
      statelessCapabilities: asRecord(result.capabilities),
      serverInfo: asRecord(asRecord(result._meta)[META.serverInfo]),
      ...(typeof result.instructions === "string" ? { instructions: result.instructions } : {}),
    };
    return this.info;
  }

  /** A handshake without an answer: said by its cause (e.g. ECONNREFUSED, HTTP 401) when the transport told one. */
  private goneBefore(method: string, err: unknown): unknown {
    if (!(err instanceof DmcpError && err.code === ErrorCode.UpstreamClosed)) return err;
    const reason = err.cause ?? this.lastError;
    const how = this.transport.endedHow?.();
    const gone = `the upstream MCP server went away before answering ${method}${how ? ` (${how})` : ""}`;
    return new UpstreamError(ErrorCode.UpstreamClosed, reason ? describeError(reason) : gone, { cause: reason });
  }

  private discover(clientInfo: { name: string; version: string }, timeoutMs: number): Promise<Record<string, unknown>> {
    const revision = STATELESS_PROTOCOL_VERSIONS[0]!;
    return this.request("server/discover", { _meta: statelessEnvelope(revision, clientInfo) }, { timeoutMs, revision });
  }

  /**
   * Asks the server whether it also speaks a stateless revision: 2026-07-28 clients' requests then go
   * to it as they are; to a server that does not, without the per-request `_meta` keys it would misread.
   */
  private async discoverStatelessVersions(clientInfo: { name: string; version: string }): Promise<void> {
    try {
      const result = await this.discover(clientInfo, 5000);
      if (this.info) this.info.statelessVersions = supportedStatelessVersions(result);
      if (this.info?.statelessVersions?.length) this.info.statelessCapabilities = asRecord(result.capabilities);
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
    if (Array.isArray(result.tools))
      for (const tool of result.tools as { name?: unknown; inputSchema?: unknown }[]) if (typeof tool?.name === "string") this.toolSchemas.set(tool.name, tool.inputSchema);
    return result;
  }

  private send(method: string, params: Record<string, unknown> | undefined, options: UpstreamRequestOptions): Promise<Record<string, unknown>> {
    if (this.closed) return Promise.reject(new UpstreamError(ErrorCode.UpstreamClosed, "the upstream MCP server is not connected"));
    // Cancelled while waiting for its upstream session to open: it never reaches the upstream.
    if (options.signal?.aborted) return Promise.reject(new CallError(ErrorCode.Cancelled, "the call was cancelled"));
    const { revision } = options;
    if (revision === undefined && this.statelessMeta) params = { ...params, _meta: { ...this.statelessMeta, ...metaOf(params) } };
    else if (revision !== undefined && method !== "server/discover" && !this.info?.statelessVersions?.includes(revision)) params = withoutStatelessMeta(params);
    const id = this.nextId++;
    const message: JsonRpcRequest = params === undefined ? { jsonrpc: "2.0", id, method } : { jsonrpc: "2.0", id, method, params };
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const deadline = Date.now() + options.timeoutMs;
      this.pending.set(id, { method, resolve, reject, deadline, timeoutMs: options.timeoutMs, onNotification: options.onNotification, onStreamClosed: options.onStreamClosed });
      this.deadlines.due(deadline);
      options.signal?.addEventListener(
        "abort",
        () => {
          const reason = cancelReasonOf(options.signal!, "cancelled by the caller");
          this.settle(id)?.reject(new CallError(ErrorCode.Cancelled, reason));
          void this.cancelUpstream(id, reason);
        },
        { once: true },
      );
      this.transport.send(message).catch((cause: unknown) => {
        this.settle(id)?.reject(new UpstreamError(ErrorCode.UpstreamClosed, `could not send ${method} upstream: ${(cause as Error).message}`, { cause }));
      });
    });
  }

  /** Whether this connection carries stateless requests only (connectStateless). */
  get stateless(): boolean {
    return this.statelessMeta !== undefined;
  }

  /** On a stateless connection: the log level its requests ask for from now on (`_meta` logLevel). */
  setRequestLogLevel(level: string): void {
    if (this.statelessMeta) this.statelessMeta = { ...this.statelessMeta, [META.logLevel]: level };
  }

  /** Sends a notification to the server (e.g. a client's roots/list_changed); best effort. */
  async notify(method: string, params: Record<string, unknown> | undefined): Promise<void> {
    if (this.closed) return;
    await this.transport.send((params === undefined ? { jsonrpc: "2.0", method } : { jsonrpc: "2.0", method, params }) as JSONRPCMessage).catch(() => undefined);
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
    return entry;
  }

  private async cancelUpstream(id: number, reason: string): Promise<void> {
    if (this.closed) return;
    await this.transport.send({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: id, reason } }).catch(() => undefined);
  }

  private onRequestStreamClosed(id: string | number, resuming: boolean): void {
    if (typeof id !== "number") return;
    if (resuming) this.pending.get(id)?.onStreamClosed?.();
    else this.settle(id)?.reject(new UpstreamError(ErrorCode.UpstreamClosed, "the upstream MCP server closed the request's stream before answering"));
  }

  private onMessage(message: JsonRpcMessage): void {
    if (isResponse(message)) {
      const entry = typeof message.id === "number" ? this.settle(message.id) : undefined;
      if (!entry) return; // late answer to a call that timed out or was cancelled
      if (isErrorResponse(message)) entry.reject(fromJsonRpcError(message.error));
      else entry.resolve(message.result);
      return;
    }
    if (isRequest(message)) {
      void this.answerServerRequest(message);
      return;
    }
    if (isNotification(message)) this.onnotification?.(message.method, message.params);
  }

  /**
   * A line the transport could not take as a message (stdio): when it names a request that waits (an
   * object with its id, not a request of the server's own), it is that request's garbled answer, and the
   * call fails now instead of at its deadline; otherwise it can only be logged.
   */
  private onUnreadable(line: string, reason: string): void {
    let id: unknown;
    try {
      const parsed = JSON.parse(line) as unknown;
      if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) && !("method" in parsed)) id = (parsed as { id?: unknown }).id;
    } catch {
      // not JSON: nothing ties it to a call
    }
    const entry = typeof id === "number" ? this.settle(id) : undefined;
    if (entry) this.failUnreadable(entry, `the upstream answered ${entry.method} with a message that is ${reason}: ${excerpt(line)}`);
    else this.logger.warn({ upstream_stdout: excerpt(line) }, `the upstream wrote a line that is ${reason}`);
  }

  /** An answer that cannot be read fails its call now (UPSTREAM_ERROR, saying what came), not at its deadline. */
  private failUnreadable(entry: Pending | undefined, message: string): void {
    if (!entry) return; // already settled (answered, timed out or cancelled)
    this.logger.warn({ method: entry.method, reason: message }, "the upstream's answer cannot be read");
    entry.reject(new UpstreamError(ErrorCode.UpstreamError, message));
  }

  /** A log message that came with one request goes to that call only (a stateless request has no session to log to). */
  private onRequestNotification(requestId: string | number, message: JsonRpcMessage): boolean {
    const entry = typeof requestId === "number" ? this.pending.get(requestId) : undefined;
    if (!entry?.onNotification || !isNotification(message) || message.method !== "notifications/message") return false;
    entry.onNotification(message.method, message.params ?? {});
    return true;
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
                // The upstream reports this as the call's failure: it should tell the user what to change.
                message:
                  `${request.method} cannot reach an MCP client from here: the call that asked came without a client session ` +
                  `(an MCP 2026-07-28 stateless request, a durable call, or a client session beyond dmcp wrap --max-sessions), ` +
                  `and this server asks for input with server-to-client requests (MCP 2025-11-25); call it from a 2025-11-25 client session`,
              });
    await this.transport.send(reply as JSONRPCMessage).catch(() => undefined);
  }

  private onClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.deadlines.stop();
    for (const id of [...this.pending.keys()]) {
      this.settle(id)?.reject(new UpstreamError(ErrorCode.UpstreamClosed, "the upstream MCP server closed the connection during the call"));
    }
    this.onclose?.(this.lastError);
  }
}

/** The per-request `_meta` of the executor's own stateless requests (no client capabilities unless given). */
export function statelessEnvelope(version: string, clientInfo: { name: string; version: string }, capabilities: Record<string, unknown> = {}): Record<string, unknown> {
  return { [META.protocolVersion]: version, [META.clientInfo]: clientInfo, [META.clientCapabilities]: capabilities };
}

/**
 * Whether `initialize` was refused because the server speaks only stateless revisions (MCP 2026-07-28
 * servers built without 2025 support answer it -32022, naming the versions they serve).
 */
export function refusedSessions(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e !== undefined && depth < 6; e = e instanceof Error ? e.cause : undefined, depth++) {
    if (e instanceof DmcpError && e.jsonrpcCode === StatelessErrorCode.UnsupportedProtocolVersion) return true;
    // An HTTP transport's refusal carries the JSON-RPC error in its body.
    if (e instanceof HttpStatusError && jsonRpcErrorCode(e.body) === StatelessErrorCode.UnsupportedProtocolVersion) return true;
  }
  return false;
}

function jsonRpcErrorCode(text: string): number | undefined {
  try {
    const code = (JSON.parse(text) as { error?: { code?: unknown } }).error?.code;
    return typeof code === "number" ? code : undefined;
  } catch {
    return undefined;
  }
}

/** The stateless revisions this executor knows that a `server/discover` result names. */
function supportedStatelessVersions(result: Record<string, unknown>): string[] {
  const supported = Array.isArray(result.supportedVersions) ? result.supportedVersions.filter((v): v is string => typeof v === "string") : [];
  return STATELESS_PROTOCOL_VERSIONS.filter((v) => supported.includes(v));
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

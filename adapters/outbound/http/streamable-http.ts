/**
 * A lean Streamable HTTP client transport for the executor's hot path: node:http with keep-alive, one
 * JSON write per message, and a small reader for JSON or SSE answers. The SDK's transport builds each
 * call on fetch and web streams and costs about three times the CPU per call; it stays in use for
 * legacy SSE servers.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { urlToHttpOptions } from "node:url";
import type { JSONRPCMessage } from "@modelcontextprotocol/client";
import {
  encodeParamValue,
  ErrorCode,
  isNotification,
  mcpNameField,
  TASK_METHODS,
  paramHeadersOf,
  paramHeaderValues,
  requestedVersion,
  UpstreamError,
  type JsonRpcMessage,
} from "../../../src/protocol/index.js";
import { HttpStatusError, type UpstreamTransport } from "../../../src/executor/index.js";
import { excerpt } from "../../../src/util/index.js";
import { SseParser } from "./sse-parser.js";

const GET_RETRY_INITIAL_MS = 1000;
const GET_RETRY_MAX_MS = 30_000;
/** How many times one POST stream is resumed; a stream that ends once more without the answer fails the call. */
const MAX_POST_RESUMES = 10;

/** The hooks of UpstreamTransport it calls: per-request notifications, lost streams, unreadable answers; tool schemas for `Mcp-Param-*`. */
export class StreamableHttpClientTransport implements UpstreamTransport {
  onmessage: UpstreamTransport["onmessage"];
  onerror: UpstreamTransport["onerror"];
  onclose: UpstreamTransport["onclose"];
  sessionId: string | undefined;
  toolSchema: UpstreamTransport["toolSchema"];
  /** Without it, or when it returns false, a notification on a request's stream goes to `onmessage`. */
  onrequestnotification: UpstreamTransport["onrequestnotification"];
  /** Resuming: a GET with Last-Event-ID picks the session's stream up again. */
  onrequeststreamclosed: UpstreamTransport["onrequeststreamclosed"];
  onrequestfailed: UpstreamTransport["onrequestfailed"];
  private protocolVersion: string | undefined;
  private readonly agent: HttpAgent;
  private readonly request: typeof httpRequest;
  /** The URL as request options, worked out once (node:http would convert the URL on every request). */
  private readonly target: ReturnType<typeof urlToHttpOptions>;
  /** The headers every request carries (the caller's, Host, the URL's credentials), lower-cased name first. */
  private readonly fixedHeaders: readonly (readonly [lowerName: string, name: string, value: string])[];
  private closed = false;
  private getStream: IncomingMessage | undefined;
  private getRetryMs = GET_RETRY_INITIAL_MS;
  private lastEventId: string | undefined;
  /** The open answer streams of 2026-07-28 requests: such a request is cancelled by closing its stream. */
  private readonly statelessStreams = new Map<string | number, IncomingMessage>();

  constructor(url: URL, headers: Record<string, string> = {}) {
    const https = url.protocol === "https:";
    this.agent = https ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true });
    this.request = https ? (httpsRequest as unknown as typeof httpRequest) : httpRequest;
    this.target = urlToHttpOptions(url);
    this.fixedHeaders = fixedHeadersOf(url, this.target.auth, headers);
  }

  async start(): Promise<void> {}

  setProtocolVersion(version: string): void {
    this.protocolVersion = version;
  }

  async send(message: JSONRPCMessage): Promise<void> {
    if (this.closed) throw new UpstreamError(ErrorCode.UpstreamClosed, "transport closed");
    if (this.cancelsStatelessRequest(message)) return;
    const isInitialize = "method" in message && message.method === "initialize";
    const stateless = statelessHeaders(message, this.toolSchema);
    const request = "id" in message && "method" in message ? { id: message.id as string | number, method: message.method } : undefined;
    const requestId = request?.id;
    let response: IncomingMessage;
    try {
      response = await this.exchange("POST", JSON.stringify(message), "application/json, text/event-stream", isInitialize, undefined, stateless);
    } catch (err) {
      // A request refused with a JSON-RPC error in the body (400 for a bad header, 404 for an unknown
      // method): that error is the answer, for the caller to see as the server sent it.
      // Not for initialize or refused credentials: those say the server cannot be used at all.
      const answerable = err instanceof HttpStatusError && !isInitialize && err.status !== 401 && err.status !== 403 && "id" in message;
      const answer = answerable ? errorAnswer(err.body, message.id) : undefined;
      if (!answer) throw err;
      this.onmessage?.(answer);
      return;
    }
    if (isInitialize) this.sessionId = header(response, "mcp-session-id") ?? this.sessionId;
    if (response.statusCode === 202 || response.statusCode === 204) {
      response.resume();
      if ("method" in message && message.method === "notifications/initialized") this.openGetStream();
      // What answers a notification or a response cannot answer a request: no answer will come.
      if (request) this.onrequestfailed?.(request.id, new Error(`the upstream answered ${request.method} with HTTP ${response.statusCode} and no body`));
      return;
    }
    const type = header(response, "content-type") ?? "";
    if (type.includes("text/event-stream")) {
      // The answer (and notifications before it) arrive as events; the stream ends after the answer.
      if (stateless && requestId !== undefined) this.statelessStreams.set(requestId, response);
      this.readEvents(response, false, 0, requestId, stateless !== undefined);
    } else if (type.includes("application/json")) {
      this.deliverBody(await readText(response), type, request);
    } else if (request === undefined) {
      response.resume();
    } else {
      const text = await readText(response);
      this.onrequestfailed?.(
        request.id,
        new Error(`the upstream answered ${request.method} with content type ${JSON.stringify(type)}, neither application/json nor text/event-stream: ${excerpt(text)}`),
      );
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.getStream?.destroy();
    if (this.sessionId) {
      // Ends the server's session; best effort, the server also expires idle sessions.
      await this.exchange("DELETE", undefined, "application/json", false, 2000).then(
        (response) => response.resume(),
        () => undefined,
      );
    }
    this.agent.destroy();
    this.onclose?.();
  }

  /** Sends one HTTP request; resolves with a 2xx response, rejects with HttpStatusError otherwise. */
  private exchange(
    method: string,
    body: string | undefined,
    accept: string,
    isInitialize: boolean,
    timeoutMs?: number,
    /** A 2026-07-28 request's own headers: it travels outside the session. */
    stateless?: Record<string, string>,
    /** Where a GET resumes (default: the standing stream's last event). */
    lastEventId = this.lastEventId,
  ): Promise<IncomingMessage> {
    const own: Record<string, string> = { accept };
    if (body !== undefined) {
      own["content-type"] = "application/json";
      own["content-length"] = String(Buffer.byteLength(body));
    }
    if (stateless) Object.assign(own, stateless);
    else {
      if (this.sessionId && !isInitialize) own["mcp-session-id"] = this.sessionId;
      if (this.protocolVersion) own["mcp-protocol-version"] = this.protocolVersion;
    }
    if (lastEventId && method === "GET") own["last-event-id"] = lastEventId;
    const headers = this.headerList(own);
    return new Promise((resolve, reject) => {
      const send = (again: boolean) => {
        let answered = false;
        const req = this.request({ ...this.target, method, headers, agent: this.agent }, (response) => {
          answered = true;
          const status = response.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            resolve(response);
            return;
          }
          void readText(response).then((text) => {
            // A session the server no longer knows: the session is over, the owner reconnects.
            if (status === 404 && this.sessionId && !isInitialize) void this.close();
            reject(new HttpStatusError(status, text));
          }, reject);
        });
        req.on("error", (err) => {
          // A kept-alive connection that the server closed as idle just as this request went out on it:
          // the server never read the request, so it goes once more, on a new connection.
          if (!again && !answered && req.reusedSocket && isConnectionReset(err)) {
            send(true);
            return;
          }
          // No answer at all (refused, reset, unknown host): the server is gone, and so is this session.
          // Told first, so that the calls the close fails name the cause (e.g. ECONNREFUSED).
          if (!this.closed) this.onerror?.(err);
          reject(err);
          void this.close();
        });
        if (timeoutMs) req.setTimeout(timeoutMs, () => req.destroy(new Error(`HTTP ${method} timed out`)));
        req.end(body);
      };
      send(false);
    });
  }

  /**
   * The request's headers as a flat list of names and values (node:http's raw form): given as an
   * object, node:http sets and checks them one by one, which cost about a third of a request's CPU in
   * the client. This request's own headers win over the fixed ones of the same name, as setHeader did.
   */
  private headerList(own: Record<string, string>): string[] {
    const list: string[] = [];
    for (const [lowerName, name, value] of this.fixedHeaders) if (!hasHeader(own, lowerName)) list.push(name, value);
    for (const name in own) list.push(name, own[name]!);
    return list;
  }

  /** The standing GET stream for server-initiated messages (list_changed and the like). */
  private openGetStream(): void {
    if (this.closed || this.getStream) return;
    this.exchange("GET", undefined, "text/event-stream", false).then(
      (response) => {
        this.getRetryMs = GET_RETRY_INITIAL_MS;
        this.getStream = response;
        this.readEvents(response, true);
      },
      (err: unknown) => {
        if (err instanceof HttpStatusError && err.status === 405) return; // the server offers no GET stream
        this.retryGetStream(err);
      },
    );
  }

  private retryGetStream(err?: unknown): void {
    this.getStream = undefined;
    if (this.closed) return;
    if (err) this.onerror?.(err instanceof Error ? err : new Error(String(err)));
    const timer = setTimeout(() => this.openGetStream(), this.getRetryMs);
    timer.unref();
    this.getRetryMs = Math.min(GET_RETRY_MAX_MS, this.getRetryMs * 2);
  }

  /**
   * A 2026-07-28 request has no session to send `notifications/cancelled` in: closing its stream is
   * how it is cancelled (and how a listen stream is left).
   */
  private cancelsStatelessRequest(message: JSONRPCMessage): boolean {
    if (!("method" in message) || message.method !== "notifications/cancelled" || "id" in message) return false;
    const requestId = (message.params as { requestId?: unknown } | undefined)?.requestId;
    const stream = typeof requestId === "string" || typeof requestId === "number" ? this.statelessStreams.get(requestId) : undefined;
    if (!stream) return false;
    this.statelessStreams.delete(requestId as string | number);
    stream.destroy();
    return true;
  }

  private readEvents(stream: IncomingMessage, standing: boolean, resumes = 0, requestId?: string | number, stateless = false): void {
    let lastId: string | undefined;
    let answered = false;
    let ended = false;
    // The end of a request's stream without its answer: resumed when it can be (a session's stream with
    // an event id, SEP-1699), else reported as lost, so that the call fails now instead of at its deadline.
    const lost = () => {
      if (ended) return;
      ended = true;
      if (requestId !== undefined && stateless) this.statelessStreams.delete(requestId);
      if (answered || requestId === undefined || this.closed) return;
      const resuming = !stateless && lastId !== undefined && this.resumePostStream(lastId, resumes, requestId);
      this.onrequeststreamclosed?.(requestId, resuming);
    };
    const parser = new SseParser((data, id) => {
      if (id !== undefined) lastId = id;
      if (id !== undefined && standing) this.lastEventId = id;
      if (!data) return;
      const message = parseJson(data);
      if ("unreadable" in message) {
        const error = new Error(`the upstream sent an event that is not JSON (${message.unreadable}): ${excerpt(data)}`);
        if (requestId === undefined) this.onerror?.(error);
        // On a request's stream it stands where the answer would: the call fails now, not at its deadline.
        else if (!answered) {
          answered = true;
          this.onrequestfailed?.(requestId, error);
        }
        return;
      }
      if (this.deliver(asMessages(message.value), requestId)) answered = true;
    });
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => parser.push(chunk));
    stream.on("error", (err) => {
      if (standing) this.retryGetStream(err);
      else if (!stateless) this.onerror?.(err);
    });
    stream.on("end", () => {
      parser.end();
      if (standing) this.retryGetStream();
      else lost();
    });
    // Destroyed without an end (cancelled here, or the connection reset).
    if (!standing) stream.on("close", lost);
  }

  /**
   * A session's POST stream that the server closed before the answer (SSE polling, SEP-1699): a GET
   * with the stream's last event id replays what followed, the answer included.
   */
  private resumePostStream(lastEventId: string, resumes: number, requestId: string | number): boolean {
    if (this.closed || !this.sessionId || resumes >= MAX_POST_RESUMES) return false;
    this.exchange("GET", undefined, "text/event-stream", false, undefined, undefined, lastEventId).then(
      (response) => this.readEvents(response, false, resumes + 1, requestId),
      (err: unknown) => {
        this.onerror?.(err instanceof Error ? err : new Error(String(err)));
        // The stream cannot be picked up again: its answer will not come.
        if (!this.closed) this.onrequeststreamclosed?.(requestId, false);
      },
    );
    return true;
  }

  /**
   * An application/json answer: one message or batch, or, as some servers send them, one message per
   * line (a progress notification, then the result). It must hold the request's answer; a body that
   * does not (or cannot be read) fails the call at once, saying what came.
   */
  private deliverBody(text: string, type: string, request: { id: string | number; method: string } | undefined): void {
    const parsed = parseJsonBody(text);
    const unreadable = parsed.unreadable;
    // An error with id null is the server's answer to a request whose id it could not read.
    const messages = parsed.messages.map((message) => (request && isObject(message) && "error" in message && message.id === null ? { ...message, id: request.id } : message));
    const answered = request !== undefined && messages.some((message) => isObject(message) && ("result" in message || "error" in message) && message.id === request.id);
    this.deliver(messages, request?.id);
    if (!request || answered) {
      if (unreadable) this.onerror?.(new Error(`the upstream sent a body with a part that is not JSON (${unreadable}): ${excerpt(text)}`));
      return;
    }
    const what = unreadable ? `that is not JSON (${unreadable})` : "that holds no answer to it";
    this.onrequestfailed?.(request.id, new Error(`the upstream answered ${request.method} with a body ${what}: content type ${JSON.stringify(type)}, ${excerpt(text)}`));
  }

  /** Hands each message to `onmessage`; true when one of them is an answer (result or error). */
  private deliver(messages: unknown[], requestId?: string | number): boolean {
    let answer = false;
    for (const message of messages) {
      const rpc = typeof message === "object" && message !== null ? (message as JsonRpcMessage) : undefined;
      if (rpc && ("result" in rpc || "error" in rpc)) answer = true;
      const related = requestId !== undefined && rpc !== undefined && isNotification(rpc) && this.onrequestnotification?.(requestId, message as JSONRPCMessage);
      if (!related) this.onmessage?.(message as JSONRPCMessage);
    }
    return answer;
  }
}

/** One JSON value, or why it is not one. */
function parseJson(text: string): { value: unknown } | { unreadable: string } {
  try {
    return { value: JSON.parse(text) as unknown };
  } catch (err) {
    return { unreadable: (err as Error).message };
  }
}

/**
 * The messages of an application/json body: one JSON value (a message or a batch), else one value per
 * line (newline-delimited JSON). `unreadable` says why the first part that is not JSON is not.
 */
function parseJsonBody(text: string): { messages: unknown[]; unreadable?: string } {
  const whole = parseJson(text);
  if ("value" in whole) return { messages: asMessages(whole.value) };
  const messages: unknown[] = [];
  let unreadable: string | undefined;
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === "") continue;
    const part = parseJson(line);
    if ("value" in part) messages.push(...asMessages(part.value));
    else unreadable ??= part.unreadable;
  }
  return unreadable === undefined ? { messages } : { messages, unreadable };
}

/** A JSON-RPC message or batch as a list of messages. */
function asMessages(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [value];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function header(response: IncomingMessage, name: string): string | undefined {
  const value = response.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

async function readText(response: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** The JSON-RPC error response in an HTTP error body, when it answers the request `id`. */
function errorAnswer(body: string, id: unknown): JSONRPCMessage | undefined {
  try {
    const parsed = JSON.parse(body) as Record<string, unknown>;
    const error = parsed.error as { code?: unknown } | undefined;
    if (parsed.jsonrpc !== "2.0" || typeof error?.code !== "number") return undefined;
    // Servers that cannot read the id (a body they reject whole) answer with id null.
    return { ...parsed, id } as JSONRPCMessage;
  } catch {
    return undefined;
  }
}

/**
 * The headers of a request that names a stateless protocol version in its `_meta` (the executor
 * forwards such requests only to servers that said they speak it): version, method, name, and for a
 * tool call the arguments its inputSchema mirrors into `Mcp-Param-*` headers.
 */
function statelessHeaders(message: JSONRPCMessage, toolSchema?: (name: string) => unknown): Record<string, string> | undefined {
  if (!("method" in message) || !("id" in message)) return undefined;
  const params = (message as { params?: Record<string, unknown> }).params;
  const version = requestedVersion(params);
  if (version === undefined) return undefined;
  const headers: Record<string, string> = { "mcp-protocol-version": version, "mcp-method": message.method };
  // A task method names its task (servers of the tasks extension require it).
  const field = mcpNameField(message.method) ?? (TASK_METHODS.has(message.method) ? "taskId" : undefined);
  const named = field ? params?.[field] : undefined;
  // Header values are ASCII; a name outside it travels Base64-encoded as the revision prescribes.
  if (typeof named === "string") headers["mcp-name"] = encodeParamValue(named)!;
  if (message.method === "tools/call" && typeof named === "string" && toolSchema) Object.assign(headers, paramHeaderValues(paramHeadersOf(toolSchema(named)), params?.arguments));
  return headers;
}

/**
 * The headers of every request: the caller's (the last of names equal but for case, as setHeader kept),
 * then what node:http adds itself to headers given as an object but not to a list: Host (the URL's host,
 * its port when not the scheme's default) and Basic credentials from the URL, unless the caller set them.
 */
function fixedHeadersOf(url: URL, auth: string | null | undefined, headers: Record<string, string>): [string, string, string][] {
  const byName = new Map<string, [string, string, string]>();
  for (const [name, value] of Object.entries(headers)) byName.set(name.toLowerCase(), [name.toLowerCase(), name, value]);
  if (!byName.has("host")) byName.set("host", ["host", "Host", url.host]);
  if (auth && !byName.has("authorization")) byName.set("authorization", ["authorization", "Authorization", `Basic ${Buffer.from(auth).toString("base64")}`]);
  return [...byName.values()];
}

/** Whether `headers` (names as sent, mostly lower-case already) has one named `lowerName`, case-insensitively. */
function hasHeader(headers: Record<string, string>, lowerName: string): boolean {
  if (lowerName in headers) return true;
  for (const name in headers) if (name.toLowerCase() === lowerName) return true;
  return false;
}

/** A connection reset or broken before any answer came (what a server closing an idle kept-alive connection causes). */
function isConnectionReset(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === "ECONNRESET" || code === "EPIPE";
}

/**
 * The server transport of one Streamable HTTP session: the SDK's Web-standard transport, served from
 * Node's request and response.
 *
 * Not @modelcontextprotocol/node's adapter: the Response writer under it holds a streamed answer back
 * when its first chunk is ready at once, waiting a 1 ms timer for more so as to send it whole. With the
 * event store every SSE answer starts with such a chunk (the priming event), so every call through the
 * gateway waited that timer before its headers left (+1 ms at p50 with one client, a timer per call).
 * Here the headers go out at once (with the priming event) and each chunk as it comes, with backpressure.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import {
  SUPPORTED_PROTOCOL_VERSIONS,
  WebStandardStreamableHTTPServerTransport,
  type AuthInfo,
  type JSONRPCMessage,
  type TransportSendOptions,
  type WebStandardStreamableHTTPServerTransportOptions,
} from "@modelcontextprotocol/server";
import { STANDALONE_STREAM, type Resumption, type SessionEventStore } from "./event-store.js";
import { DirectAnswers, RESUMABLE_AFTER_MS } from "./direct-answers.js";
import { logUnavailable, type FollowedStreams } from "./stream-follower.js";
import { errorResponse, JsonRpcErrorCode, messageProblem, type JsonRpcId, type MessageProblem } from "../../../src/protocol/index.js";
import type { InboundTransport, StreamCall } from "../../../src/gateway/index.js";

export interface HttpSessionTransportOptions extends WebStandardStreamableHTTPServerTransportOptions {
  eventStore?: SessionEventStore;
  /** Answer plain calls (no progress asked for) with JSON, past the SDK's transport (direct-answers.ts). */
  directAnswers?: boolean;
  /** Where plain calls are answered so: one unanswered after this many ms gets a resumable stream (default RESUMABLE_AFTER_MS); 0: never. */
  resumableAfterMs?: number | undefined;
  /** Serve GET streams from the bus's event log, followed live (stream-follower.ts): with `eventStore` only. */
  followed?: FollowedStreams;
  /** Told when the session's GET stream opens on this transport. */
  onstandalone?: () => void;
}

/**
 * The SDK transport's map from a request to its POST stream, and its streams with an open connection:
 * not public (SDK 2.4), read to record a call with its stream and to know when a stream ended.
 */
type StreamsOfRequests = { _requestToStreamMapping?: Map<JsonRpcId, string>; _streamMapping?: Map<string, unknown> };

export class HttpSessionTransport implements InboundTransport {
  private readonly web: WebStandardStreamableHTTPServerTransport;
  private readonly eventStore: SessionEventStore | undefined;
  private readonly direct: DirectAnswers | undefined;
  private readonly followed: FollowedStreams | undefined;
  private readonly onstandalone: (() => void) | undefined;
  private messageHandler: InboundTransport["onmessage"];
  private closeHandler: (() => void) | undefined;
  private closed = false;
  onrecover: InboundTransport["onrecover"];

  constructor(options: HttpSessionTransportOptions) {
    this.web = new WebStandardStreamableHTTPServerTransport(options);
    this.eventStore = options.eventStore;
    const afterMs = options.resumableAfterMs ?? RESUMABLE_AFTER_MS;
    const resumable = options.eventStore && afterMs > 0 ? { events: options.eventStore, retryMs: options.retryInterval ?? 1000, afterMs } : undefined;
    this.direct = options.directAnswers ? new DirectAnswers(() => this.web.sessionId, resumable) : undefined;
    this.followed = options.eventStore ? options.followed : undefined;
    this.onstandalone = options.onstandalone;
    // However the session ends (DELETE, close()), the calls answered directly and the streams followed end with it.
    this.web.onclose = () => {
      this.closed = true;
      this.direct?.closeAll();
      this.followed?.closeAll();
      this.closeHandler?.();
    };
  }

  get sessionId(): string | undefined {
    return this.web.sessionId;
  }

  /** Whether the session's GET stream is open on this transport. */
  get holdsStandaloneStream(): boolean {
    return this.followed?.holds(STANDALONE_STREAM) ?? false;
  }

  get onclose(): (() => void) | undefined {
    return this.closeHandler;
  }
  set onclose(handler: (() => void) | undefined) {
    this.closeHandler = handler;
  }

  get onerror(): ((error: Error) => void) | undefined {
    return this.web.onerror;
  }
  set onerror(handler: ((error: Error) => void) | undefined) {
    this.web.onerror = handler;
  }

  get onmessage(): InboundTransport["onmessage"] {
    return this.messageHandler;
  }
  set onmessage(handler: InboundTransport["onmessage"]) {
    this.messageHandler = handler;
    this.web.onmessage = handler;
  }

  start(): Promise<void> {
    return this.web.start();
  }

  /**
   * Serves session `id`, initialized through another gateway (shared sessions): as if this transport
   * had answered its initialize. The SDK's transport has no way to say so: its session id is public,
   * its initialized flag is not (SDK 2.4; the cross-gateway tests fail if that changes).
   */
  adopt(id: string): void {
    const web = this.web as unknown as { sessionId: string | undefined; _initialized: boolean };
    web.sessionId = id;
    web._initialized = true;
  }

  close(): Promise<void> {
    return this.web.close();
  }

  /** Records a call that left on the bus with its request's stream, for another gateway to find its answer (PROTOCOL.md §19.4). */
  callSent(call: StreamCall): void {
    if (this.direct?.callSent(call)) return;
    const streamId = (this.web as unknown as StreamsOfRequests)._requestToStreamMapping?.get(call.requestId);
    if (streamId && this.eventStore) this.eventStore.recordCall(streamId, call);
  }

  send(message: JSONRPCMessage, options?: TransportSendOptions & { sealed?: boolean | undefined; listenerKey?: string | undefined }): Promise<void> {
    if (this.direct?.send(message, options?.relatedRequestId)) return Promise.resolve();
    // Outside any call a message goes on the GET stream: when it came sealed, sealed there to this gateway's
    // own key while it follows that stream, else to the key of the gateway the record names (or its own).
    if (options?.sealed && options.relatedRequestId === undefined) this.eventStore?.sealOnGet(message, this.holdsStandaloneStream ? undefined : options.listenerKey);
    const m = message as Record<string, unknown>;
    if (!this.eventStore || "method" in m || !("result" in m || "error" in m)) return this.web.send(message, options);
    return this.sendAnswer(message, m.id as JsonRpcId, this.eventStore, options);
  }

  /**
   * An answer through the SDK's transport: when it was the last one its stream waited for and the
   * stream's connection was open, the SDK wrote it and ended the stream, and the event store forgets it.
   */
  private async sendAnswer(message: JSONRPCMessage, id: JsonRpcId, events: SessionEventStore, options: TransportSendOptions | undefined): Promise<void> {
    const web = this.web as unknown as StreamsOfRequests;
    const streamId = web._requestToStreamMapping?.get(id);
    const connected = streamId !== undefined && web._streamMapping?.has(streamId) === true;
    await this.web.send(message, options);
    if (!connected || web._requestToStreamMapping === undefined) return;
    for (const other of web._requestToStreamMapping.values()) if (other === streamId) return;
    events.finished(streamId);
  }

  /**
   * Serves one HTTP request of the session; a POST's body comes parsed (express.json). Its messages are
   * checked against the MCP schema first, for an answer that names what is wrong (the SDK's own check
   * answers any failure with a parse error).
   */
  async handleRequest(req: IncomingMessage & { auth?: AuthInfo }, res: ServerResponse, parsedBody?: unknown): Promise<void> {
    const invalid = parsedBody === undefined ? undefined : bodyProblem(parsedBody);
    if (invalid) {
      badRequest(res, invalid);
      return;
    }
    if (this.direct && !this.closed && req.method === "POST" && this.direct.takes(req, parsedBody)) {
      this.direct.serve(req, res, parsedBody, this.messageHandler);
      return;
    }
    // A plain call's stream still running here (not the SDK's: its transport would end it at once).
    const lastEventId = req.headers["last-event-id"];
    if (req.method === "GET" && typeof lastEventId === "string" && !this.closed && (await this.direct?.resume(lastEventId, res))) return;
    if (req.method === "GET" && (await this.servedFromLog(req, res))) return;
    let request: Request;
    try {
      request = webRequest(req);
    } catch (err) {
      // Node's parser lets through a few header values the Fetch API refuses.
      badRequest(res, { code: JsonRpcErrorCode.InvalidRequest, message: `Bad Request: ${(err as Error).message}`, id: null });
      return;
    }
    const response = await this.web.handleRequest(request, {
      ...(req.auth !== undefined ? { authInfo: req.auth } : {}),
      ...(parsedBody !== undefined ? { parsedBody } : {}),
    });
    await writeResponse(response, res);
  }

  /**
   * Serves a GET from the bus's event log (stream-follower.ts): a fresh GET stream, or a resumption
   * that the log holds (every GET stream; a call's stream another gateway sent). False when it is the
   * SDK's: a call's stream this gateway sent (replayed from memory and continued), or a request the
   * SDK refuses with its own errors (no SSE in Accept, unsupported version, no session yet).
   */
  private async servedFromLog(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const { followed, eventStore } = this;
    const version = req.headers["mcp-protocol-version"];
    if (!followed || !eventStore || this.closed || this.web.sessionId === undefined) return false;
    if (!req.headers.accept?.includes("text/event-stream")) return false;
    if (version !== undefined && !(typeof version === "string" && (SUPPORTED_PROTOCOL_VERSIONS as readonly string[]).includes(version))) return false;
    const lastEventId = req.headers["last-event-id"];
    if (typeof lastEventId !== "string" || lastEventId === "") {
      await followed.serve(res, { streamId: STANDALONE_STREAM, replay: [], start: "now" });
      if (followed.holds(STANDALONE_STREAM)) this.onstandalone?.();
      return true;
    }
    let resumption: Resumption | undefined;
    try {
      resumption = await eventStore.resumption(lastEventId);
    } catch {
      logUnavailable(res);
      return true;
    }
    if (resumption?.from === "memory") return false;
    if (!resumption) {
      // The SDK would say "Invalid event ID format" of an id that is well formed but not this session's.
      badRequest(res, {
        code: JsonRpcErrorCode.InvalidRequest,
        message: "Bad Request: Last-Event-ID names no stream of this session (unknown, expired or another session's): nothing to replay",
        id: null,
      });
      return true;
    }
    const { streamId, replay, afterSeq, unanswered, locked } = resumption;
    await followed.serve(res, { streamId, replay, start: { afterSeq }, calls: unanswered, locked });
    if (unanswered.length > 0 && followed.holds(streamId)) this.recoverAnswers(streamId, unanswered, res);
    if (resumption.streamId === STANDALONE_STREAM && followed.holds(STANDALONE_STREAM)) this.onstandalone?.();
    return true;
  }

  /**
   * A stream resumed here whose recorded calls have no answer in the log: the gateway that sent them
   * died with them in flight, or cannot reach the client. Their answers are looked for where the bus
   * keeps them (the session's `onrecover`) and published on the stream (PROTOCOL.md §19.4), whose
   * follow writes them to the client and ends it; the search stops when the client leaves.
   */
  private recoverAnswers(streamId: string, calls: StreamCall[], res: ServerResponse): void {
    const { onrecover: recover, eventStore: events } = this;
    if (!recover || !events) return;
    const gone = new AbortController();
    res.on("close", () => gone.abort());
    for (const call of calls) {
      void recover(call, gone.signal).then((answer) => {
        if (answer && !gone.signal.aborted) events.storeNow(streamId, answer);
      });
    }
  }
}

/** The first message of a POST body (one message or a batch) that fails the MCP schema, if any. */
function bodyProblem(body: unknown): MessageProblem | undefined {
  if (!Array.isArray(body)) return messageProblem(body);
  for (const [index, message] of body.entries()) {
    const problem = messageProblem(message);
    if (problem) return { ...problem, message: `${problem.message} (message ${index + 1} of the batch)`, id: null };
  }
  return undefined;
}

function badRequest(res: ServerResponse, problem: MessageProblem): void {
  res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify(errorResponse(problem.id, { code: problem.code, message: problem.message })));
}

/** The request as the Web-standard transport reads it: method, URL and headers (the body comes parsed). */
function webRequest(req: IncomingMessage): Request {
  const headers = new Headers();
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    if (!name.startsWith(":")) headers.append(name, raw[i + 1]!);
  }
  // The transport reads no URL: a fixed one, so that no Host header can make it invalid.
  return new Request("http://gateway/mcp", { method: req.method ?? "GET", headers });
}

/**
 * Writes a Response. A JSON body goes whole, with its length; an SSE body chunk by chunk as it comes,
 * the headers with the first chunk when one is ready at once (the priming event), else alone at once.
 * A client that goes away cancels the body.
 */
async function writeResponse(response: Response, res: ServerResponse): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of response.headers) headers[name] = value;
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) headers["set-cookie"] = cookies;
  if (response.body === null) {
    res.writeHead(response.status, headers).end();
    return;
  }
  if (!response.headers.get("content-type")?.startsWith("text/event-stream")) {
    const body = Buffer.from(await response.arrayBuffer());
    headers["content-length"] = String(body.byteLength);
    res.writeHead(response.status, headers).end(body);
    return;
  }
  res.writeHead(response.status, headers);
  const reader = response.body.getReader();
  const cancel = () => void reader.cancel().catch(() => undefined);
  if (res.destroyed) {
    cancel();
    return;
  }
  res.on("close", cancel);
  res.on("error", cancel);
  try {
    let next = reader.read();
    const ready = await Promise.race([next, Promise.resolve().then(() => undefined)]);
    if (ready === undefined) res.flushHeaders();
    for (;;) {
      const { done, value } = await next;
      if (done) break;
      if (!res.write(value)) await drained(res);
      if (res.destroyed) return;
      next = reader.read();
    }
    res.end();
  } catch {
    // The body failed or was cancelled (the client went away): nothing more can be sent.
    if (!res.destroyed) res.destroy();
  } finally {
    res.off("close", cancel);
    res.off("error", cancel);
  }
}

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

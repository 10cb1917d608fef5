/**
 * Plain calls of an HTTP session, answered without the SDK's Web-standard transport: a POST that
 * carries one request and asks for no progress is handed to the session at once, and its answer is
 * written as plain JSON, which Streamable HTTP allows for a request that needs no stream. Should a
 * message of the call come before its answer (a log message, a server-to-client request), the
 * answer becomes an SSE stream there and then. Per call this skips the Fetch Request and Response,
 * the web stream, the event store and the SDK's second validation of the body, which together cost
 * the gateway more CPU than the bus hop.
 *
 * A call not answered within `afterMs` (RESUMABLE_AFTER_MS by default) becomes an SSE stream too,
 * and where streams are resumable every such stream is (a priming event with an id, then every
 * message with an id, all in the session's event store and so on the bus):
 * a client that loses it resumes it with Last-Event-ID, here (`resume`) or on another gateway, which
 * finds the answer on the bus should this one die (PROTOCOL.md §19.4). Fast calls keep plain JSON.
 *
 * What needs the SDK's transport stays with it: initialize, batches, requests with a progress token
 * (their streams are resumable from the start), and every request whose headers the SDK would
 * refuse (it answers those with its own errors).
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { isJsonContentType, SUPPORTED_PROTOCOL_VERSIONS, type JSONRPCMessage } from "@modelcontextprotocol/server";
import { errorResponse, JsonRpcErrorCode, type JsonRpcId } from "../../../src/protocol/index.js";
import type { InboundMessageInfo, StreamCall } from "../../../src/gateway/index.js";
import { streamOfEventId, type SessionEventStore } from "./event-store.js";
import { sseEvent, startSse } from "./sse-writing.js";

/** By default, a plain call still unanswered after this long becomes a resumable stream. */
export const RESUMABLE_AFTER_MS = 50;
/** The first revision whose clients take a priming event (an SSE event without data). */
const PRIMING_SINCE = "2025-11-25";

/** Where a session's plain calls become resumable streams: its event store, the reconnection delay its clients are told, and after how long. */
export interface ResumableStreams {
  events: SessionEventStore;
  retryMs: number;
  afterMs: number;
}

/** A request this path serves: one JSON-RPC request, already checked against the MCP schema. */
export interface PlainRequest {
  jsonrpc: "2.0";
  id: JsonRpcId;
  method: string;
  params?: Record<string, unknown>;
}

export class DirectAnswers {
  /** The calls answered here, in the order they came (so also in the order they become due for a stream). */
  private readonly open = new Map<JsonRpcId, DirectAnswer>();
  /** One timer for the session, at the oldest waiting call's due time: no timer per call. */
  private dueTimer: NodeJS.Timeout | undefined;

  /** `sessionId`: the session's id once it has one (requests before that are the SDK's to refuse). */
  constructor(
    private readonly sessionId: () => string | undefined,
    private readonly resumable?: ResumableStreams,
  ) {}

  /** Whether a POST (its body checked against the MCP schema) is a plain call this path answers. */
  takes(req: IncomingMessage, body: unknown): body is PlainRequest {
    if (typeof body !== "object" || body === null || Array.isArray(body)) return false;
    const { id, method, params } = body as Record<string, unknown>;
    if (typeof method !== "string" || method === "initialize" || (typeof id !== "string" && typeof id !== "number")) return false;
    // A client that asked for progress gets the resumable SSE stream it expects; one id in flight once.
    if (hasProgressToken(params) || this.open.has(id)) return false;
    const sessionId = this.sessionId();
    const { accept, "content-type": contentType, "mcp-session-id": sessionHeader, "mcp-protocol-version": version } = req.headers;
    return (
      sessionId !== undefined &&
      sessionHeader === sessionId &&
      accept?.includes("application/json") === true &&
      accept.includes("text/event-stream") &&
      isJsonContentType(contentType ?? null) &&
      (version === undefined || (typeof version === "string" && (SUPPORTED_PROTOCOL_VERSIONS as readonly string[]).includes(version)))
    );
  }

  /** Hands the request to the session (`deliver`); its answer comes back through `send`. */
  serve(req: IncomingMessage, res: ServerResponse, request: PlainRequest, deliver: ((message: JSONRPCMessage, extra?: InboundMessageInfo) => void) | undefined): void {
    const version = req.headers["mcp-protocol-version"];
    const resumable = typeof version === "string" && version >= PRIMING_SINCE ? this.resumable : undefined;
    const answer = new DirectAnswer(res, request.id, this.sessionId() ?? "", resumable);
    this.open.set(request.id, answer);
    if (resumable && !this.dueTimer) this.armDue(resumable.afterMs);
    // A client that went away gets nothing more, unless it can resume the stream; the call itself goes on.
    res.on("close", () => {
      if (this.open.get(request.id) === answer && !answer.resumable) this.open.delete(request.id);
    });
    deliver?.(request as JSONRPCMessage, { request: { headers: headerReader(req) } });
  }

  /** Records where a call answered here went on the bus, with its stream; false when no call here has that request id. */
  callSent(call: StreamCall): boolean {
    const answer = this.open.get(call.requestId);
    answer?.sent(call);
    return answer !== undefined;
  }

  /** Serves a GET that resumes the stream of a call still running here; false when no such call has the stream `lastEventId` names. */
  async resume(lastEventId: string, res: ServerResponse): Promise<boolean> {
    const streamId = streamOfEventId(lastEventId);
    for (const answer of this.open.values()) if (answer.streamId === streamId) return answer.resume(lastEventId, res);
    return false;
  }

  /** Sends a message that belongs to a call answered here; false when it belongs to none. */
  send(message: JSONRPCMessage, relatedRequestId: JsonRpcId | undefined): boolean {
    const m = message as Record<string, unknown>;
    const final = !("method" in m) && ("result" in m || "error" in m);
    const id = final ? (m.id as JsonRpcId) : relatedRequestId;
    const answer = id === undefined ? undefined : this.open.get(id);
    if (!answer) return false;
    if (final) this.open.delete(id!);
    answer.write(message, final);
    return true;
  }

  /** The session closed: calls still open get an error answer (their calls were cancelled with it). */
  closeAll(): void {
    clearTimeout(this.dueTimer);
    this.dueTimer = undefined;
    for (const answer of this.open.values()) answer.abandon();
    this.open.clear();
  }

  private armDue(inMs: number): void {
    this.dueTimer = setTimeout(() => this.streamDue(), Math.max(inMs, 1));
  }

  /** Gives the calls waiting `afterMs` or more their resumable streams; waits for the next one due. */
  private streamDue(): void {
    this.dueTimer = undefined;
    const now = Date.now();
    for (const answer of this.open.values()) {
      const dueAt = answer.dueAt;
      if (dueAt === undefined) continue;
      if (dueAt > now) {
        this.armDue(dueAt - now);
        return;
      }
      answer.dueAt = undefined;
      answer.startStream();
    }
  }
}

/**
 * The HTTP response of one plain call: JSON for a lone answer, SSE once a message precedes it or, where
 * streams are resumable, once the call is slow; then the stream's events are stored and a client that
 * resumes it gets them (`resume`).
 */
class DirectAnswer {
  private streaming = false;
  /** The stream's id in the event store, once it is resumable. */
  streamId: string | undefined;
  private call: StreamCall | undefined;
  /** When an unanswered call gets its resumable stream (epoch ms), until it has one or its answer. */
  dueAt: number | undefined;

  constructor(
    private res: ServerResponse,
    private readonly requestId: JsonRpcId,
    private readonly sessionId: string,
    private readonly streams: ResumableStreams | undefined,
  ) {
    if (streams) this.dueAt = Date.now() + streams.afterMs;
  }

  get resumable(): boolean {
    return this.streamId !== undefined;
  }

  /** The call went on the bus: recorded with the stream, now or once there is one. */
  sent(call: StreamCall): void {
    this.call = call;
    if (this.streamId) this.streams?.events.recordCall(this.streamId, call);
  }

  write(message: JSONRPCMessage, final: boolean): void {
    if (final) this.dueAt = undefined;
    if (final && !this.streaming) {
      if (!this.open()) return;
      // A string body: Node writes it with the headers in one piece (a Buffer goes in a second, vectored write).
      const body = JSON.stringify(message);
      this.res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body), "mcp-session-id": this.sessionId }).end(body);
      return;
    }
    this.startStream();
    // Stored even when the client is away: it gets the message when it resumes.
    const id = this.streamId ? this.streams!.events.storeNow(this.streamId, message) : undefined;
    if (!this.open()) return;
    this.res.write(sseEvent(message, id));
    if (!final) return;
    this.res.end();
    // Written whole to an open connection: the store need not keep the stream for a resumption.
    if (this.streamId) this.streams!.events.finished(this.streamId);
  }

  /** Takes over a GET that resumes this call's stream after `lastEventId`: what followed it, then the rest as it comes. */
  async resume(lastEventId: string, res: ServerResponse): Promise<boolean> {
    const missed: string[] = [];
    try {
      await this.streams!.events.replayEventsAfter(lastEventId, {
        send: async (id, message) => void missed.push(sseEvent(message, id)),
      });
    } catch {
      // Not an event of this stream the store still has: refused like any unknown id.
      return false;
    }
    // No await from here on: a message of the call cannot slip between the replay and the switch.
    if (this.open()) this.res.end();
    this.res = res;
    startSse(res, this.sessionId);
    for (const event of missed) res.write(event);
    return true;
  }

  abandon(): void {
    const error = { code: JsonRpcErrorCode.Cancelled, message: "the MCP client session closed before the call was answered" };
    this.write(errorResponse(this.requestId, error) as JSONRPCMessage, true);
  }

  private open(): boolean {
    return !this.res.destroyed && !this.res.writableEnded;
  }

  startStream(): void {
    this.dueAt = undefined;
    if (this.streaming || !this.open()) return;
    this.streaming = true;
    startSse(this.res, this.sessionId);
    if (!this.streams) return;
    // A priming event (an id, no data): what the client resumes from (SEP-1699).
    this.streamId = randomUUID();
    // The call's record travels with it (one message on the bus), when the call is on the bus already.
    const priming = this.streams.events.storeNow(this.streamId, {} as JSONRPCMessage, this.call);
    this.res.write(`id: ${priming}\nretry: ${this.streams.retryMs}\ndata: \n\n`);
  }
}

function hasProgressToken(params: unknown): boolean {
  const meta = typeof params === "object" && params !== null ? (params as { _meta?: unknown })._meta : undefined;
  return typeof meta === "object" && meta !== null && (meta as { progressToken?: unknown }).progressToken !== undefined;
}

/** The request's headers as the session reads them (its trace context), without building a Fetch Headers. */
function headerReader(req: IncomingMessage): { get(name: string): string | null } {
  return {
    get: (name) => {
      const value = req.headers[name.toLowerCase()];
      return value === undefined ? null : Array.isArray(value) ? value.join(", ") : value;
    },
  };
}

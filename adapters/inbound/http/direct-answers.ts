/**
 * Plain calls of an HTTP session, answered without the SDK's Web-standard transport: a POST that
 * carries one request and asks for no progress is handed to the session at once, and its answer is
 * written as plain JSON, which Streamable HTTP allows for a request that needs no stream. Should a
 * message of the call come before its answer (a log message, a server-to-client request), the
 * answer becomes an SSE stream there and then. Per call this skips the Fetch Request and Response,
 * the web stream, the event store and the SDK's second validation of the body, which together cost
 * the gateway more CPU than the bus hop.
 *
 * What needs the SDK's transport stays with it: initialize, batches, requests with a progress token
 * (their streams are resumable, with event ids), and every request whose headers the SDK would
 * refuse (it answers those with its own errors).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { isJsonContentType, SUPPORTED_PROTOCOL_VERSIONS, type JSONRPCMessage } from "@modelcontextprotocol/server";
import { errorResponse, JsonRpcErrorCode, type JsonRpcId } from "../../../src/protocol/index.js";
import type { InboundMessageInfo } from "../../../src/gateway/index.js";

/** A request this path serves: one JSON-RPC request, already checked against the MCP schema. */
export interface PlainRequest {
  jsonrpc: "2.0";
  id: JsonRpcId;
  method: string;
  params?: Record<string, unknown>;
}

export class DirectAnswers {
  private readonly open = new Map<JsonRpcId, DirectAnswer>();

  /** `sessionId`: the session's id once it has one (requests before that are the SDK's to refuse). */
  constructor(private readonly sessionId: () => string | undefined) {}

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
    const answer = new DirectAnswer(res, request.id, this.sessionId() ?? "");
    this.open.set(request.id, answer);
    // A client that went away gets nothing more; the call itself goes on, as with a dropped SSE stream.
    res.on("close", () => {
      if (this.open.get(request.id) === answer) this.open.delete(request.id);
    });
    deliver?.(request as JSONRPCMessage, { request: { headers: headerReader(req) } });
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
    for (const answer of this.open.values()) answer.abandon();
    this.open.clear();
  }
}

/** The HTTP response of one plain call: JSON for a lone answer, SSE once a message precedes it. */
class DirectAnswer {
  private streaming = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly requestId: JsonRpcId,
    private readonly sessionId: string,
  ) {}

  write(message: JSONRPCMessage, final: boolean): void {
    const res = this.res;
    if (res.destroyed || res.writableEnded) return;
    const json = JSON.stringify(message);
    if (final && !this.streaming) {
      const body = Buffer.from(json);
      res.writeHead(200, { "content-type": "application/json", "content-length": body.byteLength, "mcp-session-id": this.sessionId }).end(body);
      return;
    }
    if (!this.streaming) {
      this.streaming = true;
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache, no-transform", connection: "keep-alive", "mcp-session-id": this.sessionId });
    }
    res.write(`event: message\ndata: ${json}\n\n`);
    if (final) res.end();
  }

  abandon(): void {
    const error = { code: JsonRpcErrorCode.Cancelled, message: "the MCP client session closed before the call was answered" };
    this.write(errorResponse(this.requestId, error) as JSONRPCMessage, true);
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

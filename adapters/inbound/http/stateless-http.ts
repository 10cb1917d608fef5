/**
 * MCP 2026-07-28 over HTTP: every POST is a whole exchange, no session. The request's headers are
 * checked against its body (version, Mcp-Method, Mcp-Name), then one gateway session serves just this
 * request: the answer is plain JSON, or an SSE stream once notifications (progress, a listen stream's
 * updates) come before it. A client that hangs up cancels the call.
 */
import type { Request, Response } from "express";
import type { JSONRPCMessage } from "@modelcontextprotocol/server";
import {
  errorResponse,
  JsonRpcErrorCode,
  mcpNameField,
  messageProblem,
  TASK_METHODS,
  paramHeaderMismatch,
  paramHeadersOf,
  type DmcpError,
  type JsonRpcId,
} from "../../../src/protocol/index.js";
import { checkMetaKeys, checkVersion, SESSION_PROTOCOL_VERSIONS, requestedVersion, StatelessErrorCode } from "../../../src/protocol/index.js";
import type { Gateway, Identity, InboundTransport } from "../../../src/gateway/index.js";

/** A POST without a session that speaks 2026-07-28 (or a later, unknown revision): by its header or its `_meta`. */
export function isStatelessRequest(req: Request): boolean {
  const version = req.header("mcp-protocol-version")?.trim();
  if (version !== undefined && version !== "" && !SESSION_PROTOCOL_VERSIONS.includes(version)) return true;
  const body = req.body as { params?: Record<string, unknown> } | undefined;
  return typeof body === "object" && body !== null && !Array.isArray(body) && requestedVersion(body.params) !== undefined;
}

export async function handleStatelessRequest(gateway: Gateway, req: Request, res: Response, identity: Identity): Promise<void> {
  const body = req.body as Record<string, unknown>;
  if (typeof body !== "object" || body === null || Array.isArray(body) || typeof body.method !== "string") {
    reject(res, 400, null, JsonRpcErrorCode.InvalidRequest, "Invalid Request: MCP 2026-07-28 takes one JSON-RPC 2.0 message per POST");
    return;
  }
  // An id of another type (true, null, 1.5, an object) makes an invalid request, not a notification.
  if ("id" in body && !(typeof body.id === "string" || Number.isInteger(body.id))) {
    reject(res, 400, null, JsonRpcErrorCode.InvalidRequest, "Invalid Request: the id must be a string or an integer");
    return;
  }
  const invalid = messageProblem(body);
  if (invalid) {
    reject(res, 400, invalid.id, invalid.code, invalid.message);
    return;
  }
  const id = body.id as JsonRpcId | undefined;
  // Notifications have nothing to answer (a stateless client cancels by closing its request's stream).
  if (id === undefined) {
    gateway.core.clientMessageDropped("http", "notification");
    res.status(202).end();
    return;
  }
  const problem = headerProblem(req, body) ?? paramHeaderProblem(gateway, req, body);
  if (problem) {
    reject(res, 400, id, problem.code, problem.message, problem.data);
    return;
  }
  const transport = new HttpExchangeTransport(res, id);
  const session = await gateway.connect(transport, "http", identity);
  res.on("close", () => void session.close());
  transport.onmessage?.(body as JSONRPCMessage, { request: { headers: new Headers(plainHeaders(req)) } });
}

/** The checks 2026-07-28 asks of an HTTP server before it looks at the request (each a 400). */
function headerProblem(req: Request, body: Record<string, unknown>): { code: number; message: string; data?: unknown } | undefined {
  const params = (typeof body.params === "object" && body.params !== null ? body.params : undefined) as Record<string, unknown> | undefined;
  const header = req.header("mcp-protocol-version")?.trim();
  if (!header) return headerMismatch("Missing MCP-Protocol-Version header");
  try {
    checkMetaKeys(params);
    if (requestedVersion(params) !== header) return headerMismatch("MCP-Protocol-Version header does not match _meta protocolVersion");
    checkVersion(header);
  } catch (err) {
    const error = err as DmcpError;
    return { code: error.jsonrpcCode ?? JsonRpcErrorCode.InvalidParams, message: error.message, data: error.data };
  }
  const method = req.header("mcp-method")?.trim();
  if (method !== body.method)
    return headerMismatch(method === undefined ? "Missing Mcp-Method header" : `Mcp-Method header ${JSON.stringify(method)} does not match the body's method`);
  const field = mcpNameField(body.method as string);
  const named = field ? params?.[field] : undefined;
  if (typeof named === "string") {
    const name = req.header("mcp-name")?.trim();
    if (name !== named) return headerMismatch(name === undefined ? "Missing Mcp-Name header" : `Mcp-Name header does not match params.${field}`);
  }
  // Task methods may name their task (the tasks extension); a header that is there must match.
  const taskName = TASK_METHODS.has(body.method as string) ? req.header("mcp-name")?.trim() : undefined;
  if (taskName !== undefined && taskName !== params?.taskId) return headerMismatch("Mcp-Name header does not match params.taskId");
  return undefined;
}

/** `Mcp-Param-*` headers must mirror the arguments the called tool marks with `x-mcp-header` (SEP-2243). */
function paramHeaderProblem(gateway: Gateway, req: Request, body: Record<string, unknown>): { code: number; message: string; data?: unknown } | undefined {
  if (body.method !== "tools/call") return undefined;
  const params = body.params as { name?: unknown; arguments?: unknown } | undefined;
  if (typeof params?.name !== "string") return undefined;
  const declared = paramHeadersOf(gateway.core.catalog.toolDefinition(params.name)?.inputSchema);
  const mismatch = paramHeaderMismatch(declared, params.arguments, (name) => req.header(name)?.trim());
  return mismatch === undefined ? undefined : headerMismatch(mismatch);
}

function headerMismatch(message: string) {
  return { code: StatelessErrorCode.HeaderMismatch, message };
}

function reject(res: Response, status: number, id: JsonRpcId | null, code: number, message: string, data?: unknown): void {
  res.status(status).json(errorResponse(id, { code, message, ...(data === undefined ? {} : { data }) }));
}

function plainHeaders(req: Request): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) if (typeof value === "string") headers[name] = value;
  return headers;
}

/** HTTP statuses 2026-07-28 gives JSON-RPC errors; other errors travel with 200. */
function statusOf(message: Record<string, unknown>): number {
  const code = (message.error as { code?: unknown } | undefined)?.code;
  if (code === JsonRpcErrorCode.MethodNotFound) return 404;
  if (code === StatelessErrorCode.MissingRequiredClientCapability || code === StatelessErrorCode.UnsupportedProtocolVersion) return 400;
  return 200;
}

/** The inbound transport of one HTTP exchange: JSON for a lone answer, SSE once a notification precedes it. */
class HttpExchangeTransport implements InboundTransport {
  onmessage: InboundTransport["onmessage"];
  onclose: InboundTransport["onclose"];
  onerror: InboundTransport["onerror"];
  private streaming = false;
  private closed = false;

  constructor(
    private readonly res: Response,
    private readonly requestId: JsonRpcId,
  ) {}

  async start(): Promise<void> {}

  async send(message: JSONRPCMessage): Promise<void> {
    if (this.closed || this.res.writableEnded) return;
    const m = message as Record<string, unknown>;
    const isAnswer = m.id === this.requestId && ("result" in m || "error" in m);
    if (isAnswer && !this.streaming) {
      this.res.status(statusOf(m)).json(m);
      return this.close();
    }
    if (!this.streaming) {
      this.streaming = true;
      this.res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
      this.res.flushHeaders();
    }
    this.res.write(`event: message\ndata: ${JSON.stringify(m)}\n\n`);
    if (isAnswer) await this.close();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.res.writableEnded) this.res.end();
    this.onclose?.();
  }
}

/**
 * The POSTs of sessions this gateway holds, served ahead of express: the one kind of request that
 * carries every call of a session. express would walk its router, run its own request setup and
 * parse the body with body-parser (stream decoding, charset, type checks), which per plain call cost
 * the gateway about as much CPU as its MCP work. Here the same gates run in the same order, by the
 * same code (middleware/gate.ts): Host/Origin guard, CORS, authentication, rate limit; then the body
 * is read up to the limit and parsed, and the request goes to the handler express would call.
 *
 * Anything out of the ordinary is express's, decided before any gate runs or any byte of the body is
 * read: another method or path, no session id or one not held here, a body without a Content-Length,
 * over the limit, compressed, not JSON or not UTF-8, and a browser's request (an Origin, under CORS).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { JsonRpcErrorCode } from "../../../src/protocol/index.js";
import type { Logger } from "../../../src/util/index.js";
import { sendRpcError, type AsyncRequestGate, type RequestGate } from "./middleware/index.js";

export interface SessionPostOptions {
  /** Largest accepted body (a larger one is express's, which answers 413). */
  maxBodyBytes: number;
  /** The synchronous gates in express's order (guard, CORS): each answers what it refuses. */
  gates: RequestGate[];
  /** Authentication, when the gateway requires it. */
  authenticate?: AsyncRequestGate | undefined;
  /** The rate limit, after authentication (it counts per identity). */
  rateLimit?: RequestGate | undefined;
  /** Whether the browser's CORS rules apply (origins configured): a request with an Origin is express's. */
  cors: boolean;
  /** Whether the session `id` is held here (a session to be taken up from the bus is express's). */
  holds: (id: string) => boolean;
  /** What express's route does with a session's POST and its parsed body. */
  serve: (req: IncomingMessage, res: ServerResponse, body: unknown) => Promise<void>;
  logger: Logger;
}

/** A request listener: session POSTs served here, everything else by `fallback` (the express app). */
export function sessionPosts(options: SessionPostOptions, fallback: (req: IncomingMessage, res: ServerResponse) => void): (req: IncomingMessage, res: ServerResponse) => void {
  const { gates, authenticate, rateLimit, logger } = options;
  const failed = (res: ServerResponse, err: unknown) => {
    // As express's error handler answers a handler that threw.
    logger.error({ err }, "http request failed");
    if (!res.headersSent) sendRpcError(res, 500, JsonRpcErrorCode.InternalError, "internal error");
    else res.destroy();
  };
  const afterAuth = (req: IncomingMessage, res: ServerResponse, length: number) => {
    if (rateLimit && !rateLimit(req, res)) return;
    readBody(req, length).then(
      (text) => {
        const body = parseBody(text);
        if (body === undefined) {
          sendRpcError(res, 400, JsonRpcErrorCode.ParseError, "Parse error: the body is not valid JSON");
          return;
        }
        options.serve(req, res, body.value).catch((err: unknown) => failed(res, err));
      },
      // The client went away before its body was in: nothing to answer.
      () => res.destroy(),
    );
  };
  return (req, res) => {
    const length = plainBodyLength(req, options);
    if (length === undefined) {
      fallback(req, res);
      return;
    }
    for (const gate of gates) if (!gate(req, res)) return;
    if (!authenticate) {
      afterAuth(req, res, length);
      return;
    }
    authenticate(req, res).then(
      (passed) => {
        if (passed) afterAuth(req, res, length);
      },
      (err: unknown) => failed(res, err),
    );
  };
}

/** The body's length when this path serves the request, else undefined (express's). */
function plainBodyLength(req: IncomingMessage, options: SessionPostOptions): number | undefined {
  if (req.method !== "POST" || req.url !== "/mcp") return undefined;
  const { headers } = req;
  const session = headers["mcp-session-id"];
  if (typeof session !== "string" || !options.holds(session)) return undefined;
  if (options.cors && headers.origin !== undefined) return undefined;
  if (headers["content-encoding"] !== undefined && headers["content-encoding"] !== "identity") return undefined;
  if (!isUtf8Json(headers["content-type"])) return undefined;
  const length = Number(headers["content-length"]);
  return Number.isInteger(length) && length > 0 && length <= options.maxBodyBytes ? length : undefined;
}

/** `application/json`, with no charset or UTF-8 (what body-parser would decode the same way). */
function isUtf8Json(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  // What clients send nearly always: no parameters to read.
  if (contentType === "application/json") return true;
  const [type, ...parameters] = contentType.split(";");
  if (type!.trim().toLowerCase() !== "application/json") return false;
  return parameters.every((parameter) => {
    const [name, value] = parameter.split("=").map((part) => part.trim().toLowerCase());
    return name !== "charset" || value === "utf-8" || value === '"utf-8"' || value === "utf8";
  });
}

/** The whole body (Node's parser holds it to the Content-Length); rejects when the request is aborted. */
function readBody(req: IncomingMessage, length: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    req.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.byteLength;
    });
    let ended = false;
    req.once("end", () => {
      ended = true;
      if (received !== length) reject(new Error("request size did not match content length"));
      else resolve(chunks.length === 1 ? chunks[0]!.toString("utf8") : Buffer.concat(chunks, received).toString("utf8"));
    });
    req.once("error", reject);
    // Before "end", the client went away (an Error only then: its stack trace costs more than the read).
    req.once("close", () => {
      if (!ended) reject(new Error("request aborted"));
    });
  });
}

/** The parsed body as body-parser's strict JSON parser takes it (an object or an array), else undefined. */
function parseBody(text: string): { value: unknown } | undefined {
  const start = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  // body-parser makes an empty body (a lone byte order mark) an empty object.
  if (start.length === 0) return { value: {} };
  // Other leading whitespace than JSON's makes JSON.parse fail below: a parse error either way.
  const first = start.trimStart()[0];
  if (first !== "{" && first !== "[") return undefined;
  try {
    return { value: JSON.parse(start) };
  } catch {
    return undefined;
  }
}

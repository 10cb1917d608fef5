/** Errors as JSON-RPC error answers: what the gateway refuses, and body parser failures (never a stack trace). */
import type { ServerResponse } from "node:http";
import type { NextFunction, Request, Response } from "express";
import { errorResponse, JsonRpcErrorCode } from "../../../../src/protocol/index.js";
import type { Logger } from "../../../../src/util/index.js";

/** A JSON-RPC error answer with no id, as express's res.json would send it (plain Node, for the fast path too). */
export function sendRpcError(res: ServerResponse, status: number, code: number, message: string): void {
  sendJson(res, status, errorResponse(null, { code, message }));
}

/** `body` as JSON with `status`, keeping the headers set so far. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const json = Buffer.from(JSON.stringify(body));
  res.statusCode = status;
  res.setHeader("content-type", "application/json; charset=utf-8");
  res.setHeader("content-length", json.byteLength);
  res.end(json);
}

/** The error handler: bad JSON, a body over `maxBodyBytes`, an unknown charset and the like become JSON-RPC errors. */
export function jsonRpcErrors(maxBodyBytes: number, logger: Logger) {
  return (err: { type?: string; status?: number; expose?: boolean; message?: string }, _req: Request, res: Response, next: NextFunction): void => {
    if (res.headersSent) {
      next(err);
    } else if (err.type === "entity.too.large") {
      sendRpcError(res, 413, JsonRpcErrorCode.InvalidRequest, `request body exceeds the limit of ${maxBodyBytes} bytes`);
    } else if (err.type === "entity.parse.failed") {
      sendRpcError(res, 400, JsonRpcErrorCode.ParseError, "Parse error: the body is not valid JSON");
    } else if (err.expose && err.status !== undefined && err.status >= 400 && err.status < 500) {
      // The client's mistake, with a message meant for it (e.g. unsupported charset "LATIN1").
      logger.debug({ err }, "http request refused");
      sendRpcError(res, err.status, JsonRpcErrorCode.InvalidRequest, `Bad Request: ${err.message ?? "the request cannot be read"}`);
    } else {
      logger.error({ err }, "http request failed");
      sendRpcError(res, err.status ?? 500, JsonRpcErrorCode.InternalError, "internal error");
    }
  };
}

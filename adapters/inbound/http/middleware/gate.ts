/**
 * The checks of a request before /mcp serves it, written against Node's request and response so that
 * express (as middleware) and the fast path for session POSTs (session-posts.ts) run the same code.
 * A gate that refuses a request answers it itself.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { RequestHandler } from "express";

/** A check that answers the request itself when it fails: false means answered, stop there. */
export type RequestGate = (req: IncomingMessage, res: ServerResponse) => boolean;

/** A check that has to wait (authentication): resolves false once it answered the request. */
export type AsyncRequestGate = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

/** A gate as express middleware. */
export function asMiddleware(gate: RequestGate): RequestHandler {
  return (req, res, next) => {
    if (gate(req, res)) next();
  };
}

/** An async gate as express middleware. */
export function asAsyncMiddleware(gate: AsyncRequestGate): RequestHandler {
  return (req, res, next) => {
    gate(req, res).then((passed) => {
      if (passed) next();
    }, next);
  };
}

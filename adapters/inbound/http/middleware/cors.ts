/**
 * CORS for the HTTP gateway: off (no CORS headers at all) unless origins are configured. A configured
 * origin may call /mcp from a browser page: preflights are answered before authentication (they carry
 * no credentials), and the headers an MCP client must read are exposed.
 */
import type { NextFunction, Request, Response } from "express";

/** What browsers must be allowed to read from an answer: the session id and the auth challenge. */
const EXPOSED = "Mcp-Session-Id, WWW-Authenticate, Retry-After";
const METHODS = "GET, POST, DELETE";
const DEFAULT_HEADERS = "Content-Type, Authorization, Mcp-Session-Id, Mcp-Protocol-Version, Last-Event-ID, Mcp-Method, Mcp-Name";

/** `*` allows every origin (fine for bearer tokens: browsers never attach them on their own). */
export function allowsOrigin(origins: readonly string[], origin: string | undefined): boolean {
  return origin !== undefined && (origins.includes("*") || origins.includes(origin));
}

export function cors(origins: readonly string[]) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const origin = req.header("origin");
    if (!allowsOrigin(origins, origin)) {
      next();
      return;
    }
    res.setHeader("Access-Control-Allow-Origin", origin!);
    res.setHeader("Vary", "Origin");
    res.setHeader("Access-Control-Expose-Headers", EXPOSED);
    if (req.method !== "OPTIONS") {
      next();
      return;
    }
    res.setHeader("Access-Control-Allow-Methods", METHODS);
    // Mcp-Param-* names depend on the tool: allow what the browser asks for.
    res.setHeader("Access-Control-Allow-Headers", req.header("access-control-request-headers") ?? DEFAULT_HEADERS);
    res.setHeader("Access-Control-Max-Age", "600");
    res.status(204).end();
  };
}

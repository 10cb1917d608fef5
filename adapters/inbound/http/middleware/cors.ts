/**
 * CORS for the HTTP gateway: off (no CORS headers at all) unless origins are configured. A configured
 * origin may call /mcp from a browser page: preflights are answered before authentication (they carry
 * no credentials), and the headers an MCP client must read are exposed.
 */
import type { RequestGate } from "./gate.js";

/** What browsers must be allowed to read from an answer: the session id and the auth challenge. */
const EXPOSED = "Mcp-Session-Id, WWW-Authenticate, Retry-After";
const METHODS = "GET, POST, DELETE";
const DEFAULT_HEADERS = "Content-Type, Authorization, Mcp-Session-Id, Mcp-Protocol-Version, Last-Event-ID, Mcp-Method, Mcp-Name";

/** `*` allows every origin (fine for bearer tokens: browsers never attach them on their own). */
export function allowsOrigin(origins: readonly string[], origin: string | undefined): boolean {
  return origin !== undefined && (origins.includes("*") || origins.includes(origin));
}

/** The CORS headers of an allowed origin; false once a preflight is answered. */
export function cors(origins: readonly string[]): RequestGate {
  return (req, res) => {
    const origin = req.headers.origin;
    if (!allowsOrigin(origins, origin)) return true;
    res.setHeader("Access-Control-Allow-Origin", origin!);
    res.setHeader("Vary", "Origin");
    res.setHeader("Access-Control-Expose-Headers", EXPOSED);
    if (req.method !== "OPTIONS") return true;
    res.setHeader("Access-Control-Allow-Methods", METHODS);
    // Mcp-Param-* names depend on the tool: allow what the browser asks for.
    res.setHeader("Access-Control-Allow-Headers", req.headers["access-control-request-headers"] ?? DEFAULT_HEADERS);
    res.setHeader("Access-Control-Max-Age", "600");
    res.writeHead(204).end();
    return false;
  };
}

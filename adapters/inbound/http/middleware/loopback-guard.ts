/**
 * DNS rebinding guards of a gateway bound to loopback: it answers only to loopback names (the Host
 * header) and to loopback pages (the Origin a browser sends). Origins configured for CORS are trusted
 * pages: the Origin guard lets them through.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { RequestGate } from "./gate.js";
import { hostHeaderValidation, localhostOriginValidation } from "@modelcontextprotocol/node";
import { allowsOrigin } from "./cors.js";

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "::1"]);

/** Whether the gateway listens on a loopback address only (and so needs the guards). */
export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOSTS.has(host);
}

/** How many accepted Host headers are remembered (a client sends the same one on every request). */
const REMEMBERED_HOSTS = 16;

/** The guards: false once the request is answered with 403. */
export function loopbackGuard(corsOrigins: readonly string[]): RequestGate {
  const validateHost = hostHeaderValidation(["localhost", "127.0.0.1", "[::1]"]);
  const validateOrigin = localhostOriginValidation();
  // The check parses the Host header as a URL; one already accepted is not parsed again.
  const acceptedHosts = new Set<string>();
  const hostAllowed = (req: IncomingMessage, res: ServerResponse): boolean => {
    const host = req.headers.host;
    if (host !== undefined && acceptedHosts.has(host)) return true;
    if (!validateHost(req, res)) return false;
    if (host !== undefined && acceptedHosts.size < REMEMBERED_HOSTS) acceptedHosts.add(host);
    return true;
  };
  return (req, res) => hostAllowed(req, res) && (allowsOrigin(corsOrigins, req.headers.origin) || validateOrigin(req, res));
}

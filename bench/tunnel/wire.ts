/**
 * The plain HTTP-over-NATS tunnel of the bench: what travels in one NATS request and its reply. No
 * MCP logic: the HTTP body is the payload, unchanged; the request headers an MCP client needs and the
 * response headers it reads ride as NATS headers; HTTP method and status in headers of their own.
 */
export const TUNNEL_SUBJECT = "bench.tunnel";
export const TUNNEL_QUEUE = "tunnel-out";

/** HTTP request headers carried to the upstream (lower case, as Node gives them). */
export const REQUEST_HEADERS = ["accept", "content-type", "mcp-session-id", "mcp-protocol-version", "last-event-id"] as const;
/** HTTP response headers carried back to the client. */
export const RESPONSE_HEADERS = ["content-type", "mcp-session-id"] as const;

export const METHOD_HEADER = "Tunnel-Method";
export const STATUS_HEADER = "Tunnel-Status";

/** How long tunnel-in waits for tunnel-out's reply. */
export const REQUEST_TIMEOUT_MS = 60_000;

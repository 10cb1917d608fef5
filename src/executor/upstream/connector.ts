/**
 * How an executor reaches its upstream MCP server, implemented by the outbound adapters: a connector
 * only says how to open a transport (transport.ts); the executor builds the session on it (opener.ts).
 */
import type { Logger } from "../../util/index.js";
import type { UpstreamTransport } from "./transport.js";

export interface UpstreamConnector {
  /** For logs and errors, e.g. `stdio: npx server-everything` or `http: https://host/mcp`; may change after a fallback. */
  readonly description: string;
  /** A new transport to the server, not yet started: every upstream session and connection gets its own. */
  openTransport(logger: Logger): UpstreamTransport;
  /**
   * Set by transports whose connection is one session (stdio): stateless (2026-07-28) requests then
   * get a connection of their own that is never initialized, where the server would otherwise take
   * them as that session's. Over HTTP each request is stateless on the server side already.
   */
  readonly connectionIsSession?: boolean;
  /**
   * A session that could not be opened, with `error`: whether the connector opens another kind of
   * transport from now on (Streamable HTTP → legacy SSE), over which the executor tries again.
   */
  fallBack?(error: unknown, logger: Logger): boolean;
}

/** How an executor reaches its upstream MCP server: implemented by the outbound adapters. */
import type { Logger } from "../util/logger.js";
import type { McpUpstream } from "./upstream.js";

export interface UpstreamConnector {
  /** For logs and errors, e.g. `stdio: npx server-everything` or `http: https://host/mcp`. */
  readonly description: string;
  /**
   * Opens a new, initialized session with the upstream server, declaring `capabilities` as the
   * client's (a client session's own, for its upstream session; roots only by default).
   */
  connect(logger: Logger, capabilities?: Record<string, unknown>): Promise<McpUpstream>;
  /**
   * Opens a connection that is never initialized, for stateless (2026-07-28) requests only: offered
   * by transports whose connection is one session (stdio), where such requests would otherwise be
   * taken as that session's. Over HTTP each request is stateless on the server side already.
   */
  connectStateless?(logger: Logger): Promise<McpUpstream>;
}

export const CLIENT_INFO = { name: "dmcp-gateway", version: "0.1.0" } as const;

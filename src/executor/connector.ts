/** How an executor reaches its upstream MCP server: implemented by the outbound adapters. */
import type { Logger } from "../util/logger.js";
import type { McpUpstream } from "./upstream.js";

export interface UpstreamConnector {
  /** For logs and errors, e.g. `stdio: npx server-everything` or `http: https://host/mcp`. */
  readonly description: string;
  /** Opens a new, initialized session with the upstream server. */
  connect(logger: Logger): Promise<McpUpstream>;
}

export const CLIENT_INFO = { name: "dmcp-gateway", version: "0.1.0" } as const;

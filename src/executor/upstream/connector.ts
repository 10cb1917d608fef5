/** How an executor reaches its upstream MCP server: implemented by the outbound adapters. */
import type { Logger } from "../../util/logger.js";
import { refusedSessions, type McpUpstream } from "./upstream.js";

export interface UpstreamConnector {
  /** For logs and errors, e.g. `stdio: npx server-everything` or `http: https://host/mcp`. */
  readonly description: string;
  /**
   * Opens a new, initialized session with the upstream server, declaring `capabilities` as the
   * client's (a client session's own, for its upstream session; roots only by default). A server
   * that serves MCP 2026-07-28 only gets a stateless connection instead (see sessionOrStateless).
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

/**
 * `connect` for a transport: an initialized session, or, once the server refused `initialize` because
 * it serves MCP 2026-07-28 only, a stateless connection (on a fresh transport) whose requests declare
 * the capabilities a session would have. The executor's own listen stream hears its list changes.
 */
export function sessionOrStateless(open: (logger: Logger) => McpUpstream): UpstreamConnector["connect"] {
  let statelessOnly = false;
  const stateless = async (logger: Logger, capabilities: Record<string, unknown> | undefined) => {
    const upstream = open(logger);
    await upstream.connectStateless(CLIENT_INFO, { capabilities }).catch(async (err: unknown) => {
      await upstream.close();
      throw err;
    });
    return upstream;
  };
  return async (logger, capabilities) => {
    if (statelessOnly) return stateless(logger, capabilities);
    const upstream = open(logger);
    try {
      await upstream.connect(CLIENT_INFO, capabilities);
      return upstream;
    } catch (err) {
      await upstream.close();
      if (!refusedSessions(err)) throw err;
      logger.info("the upstream serves MCP 2026-07-28 only (it refused initialize): the executor speaks to it statelessly");
      statelessOnly = true;
      return stateless(logger, capabilities);
    }
  };
}

/**
 * Opens the executor's upstream sessions over the transports of a connector: an initialized session,
 * or, once the server refused `initialize` because it serves MCP 2026-07-28 only, a stateless
 * connection (on a fresh transport) whose requests declare the capabilities a session would have.
 * A connector's fallback transport gets the same once its first kind failed.
 */
import type { Logger } from "../../util/index.js";
import type { UpstreamConnector } from "./connector.js";
import { McpUpstream, refusedSessions } from "./upstream.js";

export const CLIENT_INFO = { name: "dmcp-gateway", version: "0.1.0" } as const;

/** What supervises an upstream needs of its opener (the stateless lane has one of its own). */
export interface OpensUpstream {
  readonly description: string;
  connect(logger: Logger): Promise<McpUpstream>;
}

export class UpstreamOpener implements OpensUpstream {
  /** Set once the server refused `initialize`: later sessions go stateless at once. */
  private statelessOnly = false;

  constructor(private readonly connector: UpstreamConnector) {}

  get description(): string {
    return this.connector.description;
  }

  /** Whether stateless requests get a connection of their own (see UpstreamConnector.connectionIsSession). */
  get opensStatelessConnections(): boolean {
    return this.connector.connectionIsSession === true;
  }

  /**
   * Opens a new, initialized session with the upstream server, declaring `capabilities` as the
   * client's (a client session's own, for its upstream session; roots only by default).
   */
  async connect(logger: Logger, capabilities?: Record<string, unknown>): Promise<McpUpstream> {
    try {
      return await this.sessionOrStateless(logger, capabilities);
    } catch (err) {
      if (!this.connector.fallBack?.(err, logger)) throw err;
      // What the first kind of transport refused says nothing of the other.
      this.statelessOnly = false;
      return this.sessionOrStateless(logger, capabilities);
    }
  }

  /**
   * Opens a connection that is never initialized, for stateless (2026-07-28) requests only, with no
   * client capabilities of its own (each request declares its own).
   */
  connectStateless(logger: Logger): Promise<McpUpstream> {
    return this.stateless(logger, undefined);
  }

  private async sessionOrStateless(logger: Logger, capabilities: Record<string, unknown> | undefined): Promise<McpUpstream> {
    if (this.statelessOnly) return this.stateless(logger, capabilities);
    const upstream = this.open(logger);
    try {
      await upstream.connect(CLIENT_INFO, capabilities);
      return upstream;
    } catch (err) {
      await upstream.close();
      if (!refusedSessions(err)) throw err;
      logger.info("the upstream serves MCP 2026-07-28 only (it refused initialize): the executor speaks to it statelessly");
      this.statelessOnly = true;
      return this.stateless(logger, capabilities);
    }
  }

  private async stateless(logger: Logger, capabilities: Record<string, unknown> | undefined): Promise<McpUpstream> {
    const upstream = this.open(logger);
    // A server that does not answer (a child process, say) would otherwise outlive the attempt.
    await upstream.connectStateless(CLIENT_INFO, { capabilities }).catch(async (err: unknown) => {
      await upstream.close();
      throw err;
    });
    return upstream;
  }

  private open(logger: Logger): McpUpstream {
    return new McpUpstream(this.connector.openTransport(logger), logger);
  }
}

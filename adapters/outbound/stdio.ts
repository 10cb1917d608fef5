/** Outbound adapter: an MCP server run as a child process, spoken to over stdio. */
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio";
import { CLIENT_INFO, McpUpstream, sessionOrStateless, type UpstreamConnector } from "../../src/executor/index.js";
import type { Logger } from "../../src/util/logger.js";

export interface StdioServerSpec {
  command: string;
  args?: string[];
  /** Added to (or replacing variables of) the environment the child inherits from this process. */
  env?: Record<string, string>;
  cwd?: string;
}

export function stdioConnector(spec: StdioServerSpec): UpstreamConnector {
  const description = `stdio: ${[spec.command, ...(spec.args ?? [])].join(" ")}`;
  const spawn = (logger: Logger) => {
    const transport = new StdioClientTransport({
      command: spec.command,
      args: spec.args ?? [],
      // Like running the command in this shell: the child sees this process's environment (the SDK's
      // default would be a minimal one), so a server behaves wrapped as it does when run by hand.
      env: { ...inheritedEnv(), ...spec.env },
      ...(spec.cwd ? { cwd: spec.cwd } : {}),
      stderr: "pipe",
    });
    forwardStderr(transport.stderr as Readable | null, logger);
    return { transport, upstream: new McpUpstream(transport, logger) };
  };
  const connect = sessionOrStateless((logger) => spawn(logger).upstream);
  return {
    description,
    async connect(logger: Logger, capabilities?: Record<string, unknown>): Promise<McpUpstream> {
      const upstream = await connect(logger, capabilities);
      logger.debug("upstream child started");
      return upstream;
    },
    // A child of its own: the SDK's stdio server pins a connection to the revision of its first message.
    async connectStateless(logger: Logger): Promise<McpUpstream> {
      const { transport, upstream } = spawn(logger);
      // A child that does not answer would otherwise outlive the attempt.
      await upstream.connectStateless(CLIENT_INFO).catch(async (err: unknown) => {
        await upstream.close();
        throw err;
      });
      logger.debug({ pid: transport.pid }, "stateless upstream child started");
      return upstream;
    },
  };
}

function inheritedEnv(): Record<string, string> {
  return Object.fromEntries(Object.entries(process.env).filter((entry): entry is [string, string] => entry[1] !== undefined));
}

/** The child's stderr is its log: keep it, line by line, in ours (stdout belongs to MCP). */
function forwardStderr(stream: Readable | null, logger: Logger): void {
  if (!stream) return;
  const lines = createInterface({ input: stream });
  lines.on("line", (line) => {
    if (line.trim()) logger.info({ upstream_stderr: line }, "upstream log");
  });
  lines.on("error", () => undefined);
}

/** Outbound adapter: an MCP server run as a child process, spoken to over stdio. */
import type { UpstreamConnector } from "../../../src/executor/index.js";
import { StdioUpstreamTransport } from "./transport.js";

export interface StdioServerSpec {
  command: string;
  args?: string[];
  /** Added to (or replacing variables of) the environment the child inherits from this process. */
  env?: Record<string, string>;
  cwd?: string;
}

export function stdioConnector(spec: StdioServerSpec): UpstreamConnector {
  return {
    description: `stdio: ${[spec.command, ...(spec.args ?? [])].join(" ")}`,
    // A child per connection: the SDK's stdio server pins a connection to the revision of its first message.
    connectionIsSession: true,
    openTransport: (logger) =>
      new StdioUpstreamTransport(
        {
          command: spec.command,
          args: spec.args ?? [],
          // Like running the command in this shell: the child sees this process's environment (the SDK's
          // default would be a minimal one), so a server behaves wrapped as it does when run by hand.
          env: { ...inheritedEnv(), ...spec.env },
          ...(spec.cwd ? { cwd: spec.cwd } : {}),
        },
        logger,
      ),
  };
}

function inheritedEnv(): Record<string, string> {
  return Object.fromEntries(Object.entries(process.env).filter((entry): entry is [string, string] => entry[1] !== undefined));
}

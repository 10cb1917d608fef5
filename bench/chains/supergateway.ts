/**
 * supergateway (npm `supergateway`, a pinned devDependency) as an HTTP→stdio→HTTP bridge, the issue's
 * "2 processes": one supergateway serves Streamable HTTP to the client and runs a stdio command
 * (`--stdio ... --outputTransport streamableHttp --stateful`), the second turns that stdio back into
 * Streamable HTTP to the upstream (`--streamableHttp URL`). In stateful mode the first one spawns one
 * such stdio child per client session: the CPU column "stdio children" is all of them together.
 * Logging is off in both (`--logLevel none`): at info they log every message.
 */
import { packageBin } from "../lib/config.js";
import type { ToolCall } from "../lib/mcp-client.js";
import { freePort, spawnNode } from "../lib/processes.js";
import { childAlone, childDescendants, peerEndpoint, type Chain } from "./chain.js";

/** A shell word (supergateway runs --stdio through the shell). */
const quote = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`;

export async function startSupergatewayChain(upstreamUrl: string, tool: ToolCall): Promise<Chain> {
  const bin = packageBin("supergateway", "supergateway");
  const stdioCommand = [process.execPath, bin.path, "--streamableHttp", upstreamUrl, "--logLevel", "none"].map(quote).join(" ");
  const port = await freePort();
  const { child } = await spawnNode("supergateway", [
    bin.path,
    "--stdio",
    stdioCommand,
    "--outputTransport",
    "streamableHttp",
    "--stateful",
    "--port",
    String(port),
    "--logLevel",
    "none",
  ]);
  const url = await peerEndpoint(child, port, tool);
  return {
    name: "supergateway",
    path: "client → supergateway (stdio→Streamable HTTP) → stdio → supergateway (Streamable HTTP→stdio) → upstream",
    url,
    processes: [childAlone("HTTP side", child), childDescendants("stdio children", child)],
    software: `supergateway ${bin.version}`,
  };
}

/**
 * This project's chain: client → `dmcp gateway --http` → NATS → `dmcp wrap --url` → upstream, each on
 * its own nats-server. Also the BENCH_BASELINE chain ("base"): the same through another build.
 */
import { startMonitoredNats } from "../lib/nats-monitor.js";
import { waitForTool, type ToolCall } from "../lib/mcp-client.js";
import { spawnNode } from "../lib/processes.js";
import { childProcess, natsProcess, type Chain } from "./chain.js";

export interface DmcpChainOptions {
  name: "dmcp" | "base";
  /** dist/src/cli/main.js of the build to run. */
  dmcpJs: string;
  upstreamUrl: string;
  tool: ToolCall;
  nodeFlags: string[];
  gatewayArgs: string[];
}

export async function startDmcpChain(options: DmcpChainOptions): Promise<Chain> {
  const { name, dmcpJs, nodeFlags } = options;
  const prefix = name === "dmcp" ? "" : `${name} `;
  const nats = await startMonitoredNats();
  // wrap prints nothing at warn level once it serves; the gateway's catalog tells when it is up.
  const wrap = await spawnNode(`${prefix}wrap`, [dmcpJs, "wrap", "--name", "bench", "--nats", nats.server.url, "--url", options.upstreamUrl, "--log-level", "warn"], { nodeFlags });
  const gateway = await spawnNode(`${prefix}gateway`, [dmcpJs, "gateway", "--nats", nats.server.url, "--http", "0", "--log-level", "warn", ...options.gatewayArgs], {
    ready: /dmcp gateway: serving MCP at (http:\/\/\S+)/,
    nodeFlags,
  });
  const url = gateway.match![1]!;
  await waitForTool(url, options.tool.name);
  return {
    name,
    path: "client → dmcp gateway → NATS → dmcp wrap --url → upstream",
    url,
    processes: [childProcess("gateway", gateway.child), childProcess("wrap", wrap.child), natsProcess(nats)],
    nats,
  };
}

/** The bench's own plain HTTP-over-NATS tunnel (bench/tunnel/): tunnel-in, its nats-server, tunnel-out. */
import { requireBuilt, TUNNEL_IN_JS, TUNNEL_OUT_JS } from "../lib/config.js";
import { waitForTool, type ToolCall } from "../lib/mcp-client.js";
import { startMonitoredNats } from "../lib/nats-monitor.js";
import { spawnNode } from "../lib/processes.js";
import { childProcess, natsProcess, type Chain } from "./chain.js";

export async function startTunnelChain(upstreamUrl: string, tool: ToolCall, nodeFlags: string[]): Promise<Chain> {
  requireBuilt(TUNNEL_IN_JS, TUNNEL_OUT_JS);
  const nats = await startMonitoredNats();
  const out = await spawnNode("tunnel-out", [TUNNEL_OUT_JS, "--nats", nats.server.url, "--upstream", upstreamUrl], { ready: /^READY$/, nodeFlags });
  const into = await spawnNode("tunnel-in", [TUNNEL_IN_JS, "--nats", nats.server.url, "--port", "0"], { ready: /^LISTENING (\d+)$/, nodeFlags });
  const url = `http://127.0.0.1:${into.match![1]}/mcp`;
  await waitForTool(url, tool.name);
  return {
    name: "tunnel",
    path: "client → tunnel-in → NATS → tunnel-out → upstream (HTTP bytes, no MCP logic)",
    url,
    processes: [childProcess("tunnel-in", into.child), childProcess("tunnel-out", out.child), natsProcess(nats)],
    nats,
  };
}

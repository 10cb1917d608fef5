/**
 * mcp-proxy + mcp-remote (npm, pinned devDependencies), the "2 processes": `mcp-proxy`
 * serves Streamable HTTP to the client and runs `mcp-remote URL` as its stdio server, which speaks
 * Streamable HTTP to the upstream. mcp-proxy is pinned at 6.2.0: its later releases depend on
 * pipenet, which requires Node 22 (npm ci on Node 20 would warn EBADENGINE).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { packageBin } from "../lib/config.js";
import type { ToolCall } from "../lib/mcp-client.js";
import { freePort, onCleanup, spawnNode } from "../lib/processes.js";
import { childAlone, childDescendants, peerEndpoint, type Chain } from "./chain.js";

export async function startMcpProxyChain(upstreamUrl: string, tool: ToolCall): Promise<Chain> {
  const proxy = packageBin("mcp-proxy", "mcp-proxy");
  const remote = packageBin("mcp-remote", "mcp-remote");
  const port = await freePort();
  // mcp-remote keeps its state (OAuth tokens, locks) under MCP_REMOTE_CONFIG_DIR: not in the user's home.
  const configDir = mkdtempSync(join(tmpdir(), "bench-mcp-remote-"));
  onCleanup(() => rmSync(configDir, { recursive: true, force: true }));
  const env = { ...process.env, MCP_REMOTE_CONFIG_DIR: configDir };
  const { child } = await spawnNode(
    "mcp-proxy",
    [proxy.path, "--port", String(port), "--host", "127.0.0.1", "--server", "stream", "--", process.execPath, remote.path, upstreamUrl, "--transport", "http-only", "--silent"],
    { env },
  );
  const url = await peerEndpoint(child, port, tool);
  return {
    name: "mcp-proxy",
    path: "client → mcp-proxy (stdio→Streamable HTTP) → stdio → mcp-remote → upstream",
    url,
    processes: [childAlone("mcp-proxy", child), childDescendants("mcp-remote", child)],
    software: `mcp-proxy ${proxy.version}, mcp-remote ${remote.version}`,
  };
}

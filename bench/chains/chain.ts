/** What the bench knows of a chain: where its clients connect, and which processes carry its calls. */
import type { MonitoredNats } from "../lib/nats-monitor.js";
import { waitForTool, type ToolCall } from "../lib/mcp-client.js";
import { processTree } from "../lib/proc.js";
import { waitForPort, type Child } from "../lib/processes.js";

export const CHAIN_NAMES = ["direct", "dmcp", "supergateway", "mcp-proxy", "tunnel", "base", "dmcp-signed", "dmcp-durable"] as const;
export type ChainName = (typeof CHAIN_NAMES)[number];

/** One process of a chain (with whatever it spawned): a column of the CPU table. */
export interface ChainProcess {
  name: string;
  /** The pids to count now. */
  pids(): number[];
}

export interface Chain {
  name: ChainName;
  /** The path of a call, e.g. "client → gateway → NATS → wrap → upstream". */
  path: string;
  /** The MCP endpoint the clients connect to. */
  url: string;
  /** The chain's own processes (the client and the upstream are not among them). */
  processes: ChainProcess[];
  /** The third-party software it runs, with versions. */
  software?: string;
  /** The chain's nats-server, for messages per call. */
  nats?: MonitoredNats;
}

/** A spawned child and everything below it. */
export function childProcess(name: string, child: Child): ChainProcess {
  return { name, pids: () => processTree(child.proc.pid) };
}

/** The spawned child alone, for a chain that shows its children in a column of their own. */
export function childAlone(name: string, child: Child): ChainProcess {
  return { name, pids: () => (child.proc.pid === undefined ? [] : [child.proc.pid]) };
}

/** Everything the child spawned, without the child: supergateway's per-session stdio children, mcp-proxy's stdio server. */
export function childDescendants(name: string, child: Child): ChainProcess {
  return { name, pids: () => processTree(child.proc.pid).slice(1) };
}

export function natsProcess(nats: MonitoredNats): ChainProcess {
  return { name: "nats-server", pids: () => [nats.server.pid] };
}

/** The MCP endpoint of a peer that says nothing when it listens: once its port accepts and it lists the tool. */
export async function peerEndpoint(child: Child, port: number, tool: ToolCall): Promise<string> {
  await waitForPort(child.name, port, child);
  const url = `http://127.0.0.1:${port}/mcp`;
  await waitForTool(url, tool.name);
  return url;
}

/** Starts the chains a run compares (BENCH_CHAINS), all ending at the same upstream. */
import { baselineDmcpJs, DMCP_JS } from "../lib/config.js";
import type { Chain, ChainName } from "./chain.js";
import { startDmcpChain } from "./dmcp.js";
import { startMcpProxyChain } from "./mcp-proxy.js";
import { startSupergatewayChain } from "./supergateway.js";
import { startTunnelChain } from "./tunnel.js";
import type { Upstream } from "./upstream.js";

export { CHAIN_NAMES, type Chain, type ChainName, type ChainProcess } from "./chain.js";
export { startUpstream, UPSTREAM_KINDS, type Upstream, type UpstreamKind } from "./upstream.js";

export interface ChainSettings {
  nodeFlags: string[];
  gatewayArgs: string[];
  /** The BENCH_BASELINE checkout, for the "base" chain. */
  baselineDir: string | undefined;
}

/** One chain; they start one after the other (several Node processes starting at once would crowd two cores). */
export async function startChain(name: ChainName, upstream: Upstream, settings: ChainSettings): Promise<Chain> {
  const { url, tool } = upstream;
  switch (name) {
    case "direct":
      return { name, path: "client → upstream", url, processes: [] };
    case "dmcp":
    case "dmcp-signed":
    case "dmcp-durable":
      return startDmcpChain({ name, dmcpJs: DMCP_JS, upstreamUrl: url, tool, nodeFlags: settings.nodeFlags, gatewayArgs: settings.gatewayArgs });
    case "base":
      if (settings.baselineDir === undefined) throw new Error("the base chain needs BENCH_BASELINE");
      return startDmcpChain({ name, dmcpJs: baselineDmcpJs(settings.baselineDir), upstreamUrl: url, tool, nodeFlags: settings.nodeFlags, gatewayArgs: settings.gatewayArgs });
    case "supergateway":
      return startSupergatewayChain(url, tool);
    case "mcp-proxy":
      return startMcpProxyChain(url, tool);
    case "tunnel":
      return startTunnelChain(url, tool, settings.nodeFlags);
  }
}

/**
 * This project's chain: client → `dmcp gateway --http` → NATS → `dmcp wrap --url` → upstream, on a
 * nats-server of its own. Its variants, each a chain of its own processes: "base" (the same through the
 * BENCH_BASELINE build), "dmcp-signed" (every message signed and checked: both sides --sign-key,
 * --trust-key the other's key, --require-signatures) and "dmcp-durable" (wrap --delivery durable).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitForTool, type ToolCall } from "../lib/mcp-client.js";
import { startMonitoredNats } from "../lib/nats-monitor.js";
import { onCleanup, spawnNode } from "../lib/processes.js";
import { childProcess, natsProcess, type Chain } from "./chain.js";

export type DmcpVariant = "dmcp" | "base" | "dmcp-signed" | "dmcp-durable";

export interface DmcpChainOptions {
  name: DmcpVariant;
  /** dist/src/cli/main.js of the build to run. */
  dmcpJs: string;
  upstreamUrl: string;
  tool: ToolCall;
  nodeFlags: string[];
  gatewayArgs: string[];
}

/** Extra flags of the gateway and the wrap of a variant. */
function variantArgs(name: DmcpVariant, dmcpJs: string): { gateway: string[]; wrap: string[] } {
  if (name === "dmcp-durable") return { gateway: [], wrap: ["--delivery", "durable"] };
  if (name !== "dmcp-signed") return { gateway: [], wrap: [] };
  const dir = mkdtempSync(join(tmpdir(), "bench-keys-"));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  const key = (file: string) => {
    const seed = join(dir, file);
    return { seed, publicKey: execFileSync(process.execPath, [dmcpJs, "keygen", "--out", seed], { encoding: "utf8" }).trim() };
  };
  const [gateway, wrap] = [key("gateway.nk"), key("wrap.nk")];
  const signed = (own: typeof gateway, other: typeof gateway) => ["--sign-key", own.seed, "--trust-key", other.publicKey, "--require-signatures"];
  return { gateway: signed(gateway, wrap), wrap: signed(wrap, gateway) };
}

export async function startDmcpChain(options: DmcpChainOptions): Promise<Chain> {
  const { name, dmcpJs, nodeFlags } = options;
  const prefix = name === "dmcp" ? "" : `${name} `;
  const extra = variantArgs(name, dmcpJs);
  const nats = await startMonitoredNats();
  // wrap prints nothing at warn level once it serves; the gateway's catalog tells when it is up.
  const wrap = await spawnNode(
    `${prefix}wrap`,
    [dmcpJs, "wrap", "--name", "bench", "--nats", nats.server.url, "--url", options.upstreamUrl, "--log-level", "warn", ...extra.wrap],
    {
      nodeFlags,
    },
  );
  const gateway = await spawnNode(
    `${prefix}gateway`,
    [dmcpJs, "gateway", "--nats", nats.server.url, "--http", "0", "--log-level", "warn", ...extra.gateway, ...options.gatewayArgs],
    {
      ready: /dmcp gateway: serving MCP at (http:\/\/\S+)/,
      nodeFlags,
    },
  );
  const url = gateway.match![1]!;
  await waitForTool(url, options.tool.name);
  return {
    name,
    path: `client → dmcp gateway → NATS → dmcp wrap --url → upstream${[...extra.gateway, ...extra.wrap].length > 0 ? ` (${name.slice("dmcp-".length)})` : ""}`,
    url,
    processes: [childProcess("gateway", gateway.child), childProcess("wrap", wrap.child), natsProcess(nats)],
    nats,
  };
}

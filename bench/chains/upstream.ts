/**
 * The upstream every chain ends at: an MCP server over Streamable HTTP, one process shared by all
 * chains (their rounds never overlap). By default the project's conformance fixture (the server the
 * MCP conformance scenarios run against, see docs/conformance.md) and its plain text tool; with
 * BENCH_UPSTREAM=raw the raw fixture's echo tool, as the bench measured before.
 */
import { CONFORMANCE_SERVER_JS, RAW_SERVER_JS, requireBuilt } from "../lib/config.js";
import type { ToolCall } from "../lib/mcp-client.js";
import { spawnNode, type Child } from "../lib/processes.js";

export const UPSTREAM_KINDS = ["conformance", "raw"] as const;
export type UpstreamKind = (typeof UPSTREAM_KINDS)[number];

export interface Upstream {
  kind: UpstreamKind;
  description: string;
  url: string;
  child: Child;
  tool: ToolCall;
}

const SPECS: Record<UpstreamKind, { script: string; args: string[]; description: string; tool: ToolCall }> = {
  conformance: {
    script: CONFORMANCE_SERVER_JS,
    args: [],
    description: "the conformance fixture (test/support/fixtures/conformance-server.ts), tools/call test_simple_text",
    tool: { name: "test_simple_text", arguments: {}, expectText: "This is a simple text response for testing." },
  },
  raw: {
    script: RAW_SERVER_JS,
    args: ["--name", "bench"],
    description: "the raw fixture (test/support/fixtures/raw-server.ts), tools/call echo",
    tool: { name: "echo", arguments: { text: "x" }, expectText: "x" },
  },
};

export async function startUpstream(kind: UpstreamKind, nodeFlags: string[]): Promise<Upstream> {
  const spec = SPECS[kind];
  requireBuilt(spec.script);
  const { child, match } = await spawnNode("upstream", [spec.script, "--http", "0", ...spec.args], { ready: /^LISTENING (\d+)$/, nodeFlags });
  return { kind, description: spec.description, url: `http://127.0.0.1:${match![1]}/mcp`, child, tool: spec.tool };
}

/**
 * `BENCH_CACHE=1` or sub-command `cache`: the gateway cache (issue 16). Its own nats-server, the
 * counting fixture (test/support/fixtures/counting-server.ts) wrapped with an opt-in TTL for its
 * read-only `lookup`, and a gateway:
 *
 * - latency at concurrency 1 of a cached read (`lookup`, served by the gateway from its local tier),
 *   of `ping` (answered by the gateway itself: the floor of HTTP and session) and of an uncached call
 *   (`write`: not read-only, it crosses the bus to the upstream), and of a miss (`lookup` of a new key
 *   each time: the local tier, the bucket, a claim in it, the upstream, the answer stored), each one
 *   JSON-RPC POST of the same session (plain fetch, so that no client library's work differs between
 *   them). What a cached read adds at the gateway is its p50 above ping's; what the cache costs a
 *   miss is its p50 above the uncached call's.
 * - upstream requests when 100 client sessions read one key at once within one TTL (the fixture
 *   counts them in its counts file).
 *
 * With BENCH_BASELINE, the same stack again through that build (its own nats-server, wrap and
 * gateway), measured in the same alternating halves: both gateways' p50s and CPU per call by kind.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import type { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { BenchError, DIST, DMCP_JS, requireBuilt } from "./lib/config.js";
import { callTool, closeClient, connectClient, connectPool, waitForTool, type ToolCall } from "./lib/mcp-client.js";
import { onCleanup, spawnNode, startNats } from "./lib/processes.js";
import { cpuMs } from "./lib/proc.js";
import { fmt, latency, ratio, table, type Latency } from "./lib/stats.js";
import type { TargetLine } from "./lib/targets.js";
import { GatewayCache } from "../src/gateway/index.js";
import { silentLogger } from "../src/util/index.js";

const COUNTING_SERVER_JS = resolve(DIST, "test/support/fixtures/counting-server.js");
const CACHED_P50_TARGET_MS = 0.3;

export interface CacheSettings {
  /** Calls at concurrency 1 per measured kind. */
  serialCalls: number;
  /** Client sessions reading one key at once. */
  readers: number;
  /** `dist/src/cli/main.js` of another build, measured side by side (BENCH_BASELINE). */
  baselineDmcpJs?: string | undefined;
}

/** One gateway stack of the bench: its four kinds of call and the gateway's pid. */
interface Stack {
  name: string;
  url: string;
  gatewayPid: number | undefined;
  client: Client;
  kinds: (() => Promise<void>)[];
}

const KIND_NAMES = ["cached read", "ping", "uncached call", "miss"];

export async function runCache(settings: CacheSettings): Promise<TargetLine[]> {
  requireBuilt(COUNTING_SERVER_JS, DMCP_JS);
  console.log(`\n== cache: a cached read against ping, an uncached call and a miss (${settings.serialCalls} calls each at concurrency 1); ${settings.readers} readers of one key`);
  const dir = mkdtempSync(join(tmpdir(), "dmcp-bench-cache-"));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  const counts = join(dir, "counts");
  const stack = await startStack("dmcp", DMCP_JS, counts);
  const stacks = [stack];
  if (settings.baselineDmcpJs) stacks.push(await startStack("base", settings.baselineDmcpJs, join(dir, "base-counts")));
  for (const each of stacks) for (const kind of each.kinds) await timed(kind, Math.min(200, settings.serialCalls));
  // Alternating halves (and stacks), so that drift favours none.
  const samples = stacks.map(() => [[], [], [], []] as number[][]);
  const cpu = stacks.map(() => [0, 0, 0, 0]);
  for (let half = 0; half < 2; half++) {
    for (const [s, each] of half === 0 ? stacks.entries() : [...stacks.entries()].reverse()) {
      for (const [index, kind] of each.kinds.entries()) {
        const before = cpuMs(each.gatewayPid);
        samples[s]![index]!.push(...(await timed(kind, settings.serialCalls / 2)));
        cpu[s]![index]! += (cpuMs(each.gatewayPid) ?? Number.NaN) - (before ?? Number.NaN);
      }
    }
  }
  for (const each of stacks) await closeClient(each.client);
  const [hit, floor, through, fresh] = samples[0]!.map(latency) as [Latency, Latency, Latency, Latency];
  const added = hit.p50 - floor.p50;
  const url = stack.url;

  const readers = await connectPool(url, settings.readers, "cache-readers");
  const hot: ToolCall = { name: "slow_lookup", arguments: { key: "hot", ms: 500 }, expectText: "slow_lookup hot #1" };
  await Promise.all(readers.map((reader: Client) => callTool(reader, hot)));
  const upstreamRequests = readFileSync(counts, "utf8")
    .split("\n")
    .filter((line) => line === "slow_lookup:hot").length;
  await Promise.all(readers.map(closeClient));

  console.log(
    table(
      ["concurrency 1", "p50 ms", "p90 ms", "p99 ms"],
      [
        ["cached read (lookup, local tier)", fmt(hit.p50, 3), fmt(hit.p90, 3), fmt(hit.p99, 3)],
        ["ping (answered by the gateway)", fmt(floor.p50, 3), fmt(floor.p90, 3), fmt(floor.p99, 3)],
        ["uncached call (write, over the bus)", fmt(through.p50, 3), fmt(through.p90, 3), fmt(through.p99, 3)],
        ["cache miss (lookup of a new key)", fmt(fresh.p50, 3), fmt(fresh.p90, 3), fmt(fresh.p99, 3)],
      ],
    ),
  );
  const ownHit = await cacheHitMicroseconds(20_000);
  console.log(`cached read p50 above ping: ${fmt(added, 3)} ms; uncached / cached p50: ×${fmt(through.p50 / hit.p50)}`);
  console.log(
    `a miss above the uncached call (bucket read, claim; storing and releasing happen after the answer): p50 +${fmt(fresh.p50 - through.p50, 3)} ms, miss / uncached p50 ×${fmt(fresh.p50 / through.p50)}`,
  );
  if (stacks.length > 1) {
    const p50s = samples.map((kinds) => kinds.map((values) => latency(values).p50));
    const perCall = cpu.map((kinds) => kinds.map((ms) => ms / settings.serialCalls));
    console.log(
      table(
        ["gateway", ...KIND_NAMES.map((kind) => `${kind} p50 ms`), "cached − ping ms", ...KIND_NAMES.map((kind) => `${kind} CPU/call ms`)],
        stacks.map((each, s) => [each.name, ...p50s[s]!.map((p50) => fmt(p50, 3)), fmt(p50s[s]![0]! - p50s[s]![1]!, 3), ...perCall[s]!.map((ms) => fmt(ms, 3))]),
      ),
    );
    console.log(`dmcp ÷ base, gateway CPU per call: ${KIND_NAMES.map((kind, index) => `${kind} ${ratio(perCall[0]![index], perCall[1]![index])}`).join(", ")}`);
  }
  console.log(`the cache's own work per hit (decide, keys, local lookup, copy, marker; in-process, 20000 hits): ${fmt(ownHit, 1)} µs`);
  console.log(`${settings.readers} sessions reading one key at once: ${upstreamRequests} upstream request(s)`);
  return [
    { target: `cached read: p50 added by the gateway (above ping) ≤ ${CACHED_P50_TARGET_MS} ms (issue 16)`, measured: `${fmt(added, 3)} ms`, met: added <= CACHED_P50_TARGET_MS },
    { target: `upstream requests for ${settings.readers} concurrent readers of one key = 1 (issue 16)`, measured: String(upstreamRequests), met: upstreamRequests === 1 },
  ];
}

/** A nats-server, the counting fixture wrapped with a TTL for `lookup`, and a gateway, all through the build of `dmcpJs`; one client session. */
async function startStack(name: string, dmcpJs: string, counts: string): Promise<Stack> {
  writeFileSync(counts, "");
  const nats = await startNats();
  // One upstream process for every client session (--max-sessions 0), so that its counts are all in one place.
  await spawnNode(`${name} cache wrap`, [
    dmcpJs,
    "wrap",
    "--name",
    "counter",
    "--nats",
    nats.url,
    "--max-sessions",
    "0",
    "--cache-ttl",
    "*lookup=10m",
    "--log-level",
    "warn",
    "--",
    process.execPath,
    COUNTING_SERVER_JS,
    "--counts",
    counts,
  ]);
  const gateway = await spawnNode(`${name} cache gateway`, [dmcpJs, "gateway", "--nats", nats.url, "--http", "0", "--log-level", "warn"], {
    ready: /dmcp gateway: serving MCP at (http:\/\/\S+)/,
  });
  const url = gateway.match![1]!;
  await waitForTool(url, "lookup");
  const client = await connectClient(url, `bench-cache-${name}`);
  const post = rawPoster(url, client);
  const cached = () => post("tools/call", { name: "lookup", arguments: { key: "warm" } }, "lookup warm #1");
  const uncached = () => post("tools/call", { name: "write", arguments: { key: "cold" } }, undefined);
  const ping = () => post("ping", {}, undefined);
  let newKeys = 0;
  const miss = () => {
    newKeys += 1;
    return post("tools/call", { name: "lookup", arguments: { key: `miss-${newKeys}` } }, `lookup miss-${newKeys} #1`);
  };
  return { name, url, gatewayPid: gateway.child.proc.pid, client, kinds: [cached, ping, uncached, miss] };
}

/** What the cache itself does for one local hit, in process: mean µs over `hits` hits of one read-only tool's answer. */
async function cacheHitMicroseconds(hits: number): Promise<number> {
  const cache = new GatewayCache({ logger: silentLogger(), id: "bench", sealed: () => false });
  const tool = { name: "lookup", inputSchema: { type: "object" }, annotations: { readOnlyHint: true } };
  const catalog = { tools: [tool], resources: [], prompts: [], resource_templates: [] };
  cache.servicesChanged(new Map([["counter", { catalog, capabilities: {}, cache: { rules: [{ pattern: "*", ttl_ms: 600_000, scope: "private" as const }] } }]]));
  const params = { name: "lookup", arguments: { key: "warm" } };
  const call = { method: "tools/call", params, transport: "http", identity: { kind: "token" as const, subject: "bench" }, stateless: false, signal: new AbortController().signal };
  const route = { service: "counter", params };
  const fetch = async () => ({ content: [{ type: "text", text: "lookup warm #1" }] });
  const once = () => cache.serve(call, route, cache.decide(call, route)!, fetch);
  for (let i = 0; i < 1000; i++) await once();
  const t0 = performance.now();
  for (let i = 0; i < hits; i++) await once();
  return ((performance.now() - t0) * 1000) / hits;
}

/** `count` runs of `call` in a row, each timed (ms). */
async function timed(call: () => Promise<void>, count: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await call();
    times.push(performance.now() - t0);
  }
  return times;
}

/** Sends one JSON-RPC request on the SDK client's session as a plain POST; throws unless it answers with the expected text. */
function rawPoster(url: string, client: Client): (method: string, params: Record<string, unknown>, expectText: string | undefined) => Promise<void> {
  const transport = client.transport as StreamableHTTPClientTransport;
  const headers = {
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    "mcp-session-id": transport.sessionId ?? "",
    "mcp-protocol-version": transport.protocolVersion ?? "2025-11-25",
  };
  let id = 0;
  return async (method, params, expectText) => {
    const response = await fetch(url, { method: "POST", headers, body: JSON.stringify({ jsonrpc: "2.0", id: ++id, method, params }) });
    const body = await response.text();
    if (!response.ok || (expectText !== undefined && !body.includes(expectText)) || body.includes('"error"'))
      throw new BenchError(`unexpected ${method} answer: ${body.slice(0, 300)}`);
  };
}

/**
 * `BENCH_MEMORY=1` or sub-command `memory`: the gateway's resident memory with many calls in flight
 * on a slow tool (the raw fixture's `sleep`), and again once they are over. Its own gateway, wrap
 * --url, nats-server and upstream. Idle: with the client sessions open and warmed up, before the
 * calls; in flight: when the gateway's dmcp_gateway_calls_in_flight reaches the count (and the peak
 * sampled every 100 ms); after: once none is in flight and the settle time has passed.
 */
import type { Client } from "@modelcontextprotocol/client";
import { DMCP_JS, RAW_SERVER_JS, requireBuilt } from "./lib/config.js";
import { gatewayMetric, waitForMetric } from "./lib/gateway-metrics.js";
import { callTool, closeClient, connectPool, waitForTool, type ToolCall } from "./lib/mcp-client.js";
import { rssBytes } from "./lib/proc.js";
import { spawnNode, startNats } from "./lib/processes.js";
import { fmt, mib, table } from "./lib/stats.js";
import type { TargetLine } from "./lib/targets.js";

export interface MemorySettings {
  calls: number;
  sessions: number;
  sleepMs: number;
  settleSeconds: number;
}

const RSS_LIMIT_BYTES = 150 * 2 ** 20;
/** "Back to its idle figure": within this share above it (a garbage-collected heap does not return to the byte). */
const IDLE_TOLERANCE = 0.1;
const IN_FLIGHT = "dmcp_gateway_calls_in_flight";

export async function runMemory(settings: MemorySettings): Promise<TargetLine[]> {
  requireBuilt(RAW_SERVER_JS, DMCP_JS);
  console.log(`\n== memory: gateway RSS with ${settings.calls} calls of sleep(${settings.sleepMs} ms) in flight over ${settings.sessions} client sessions`);
  const nats = await startNats();
  const upstream = await spawnNode("memory upstream", [RAW_SERVER_JS, "--http", "0", "--name", "memory"], { ready: /^LISTENING (\d+)$/ });
  const upstreamUrl = `http://127.0.0.1:${upstream.match![1]}/mcp`;
  await spawnNode("memory wrap", [DMCP_JS, "wrap", "--name", "memory", "--nats", nats.url, "--url", upstreamUrl, "--log-level", "warn"]);
  const gateway = await spawnNode("memory gateway", [DMCP_JS, "gateway", "--nats", nats.url, "--http", "0", "--log-level", "warn"], {
    ready: /dmcp gateway: serving MCP at (http:\/\/\S+)/,
  });
  const url = gateway.match![1]!;
  const pid = gateway.child.proc.pid;
  await waitForTool(url, "sleep");
  const started = rssBytes(pid);

  const clients = await connectPool(url, settings.sessions, "memory");
  const quick: ToolCall = { name: "sleep", arguments: { ms: 0 }, expectText: "slept 0" };
  const slow: ToolCall = { name: "sleep", arguments: { ms: settings.sleepMs }, expectText: `slept ${settings.sleepMs}` };
  // Warm-up: every session has called once (upstream sessions, JIT) before the idle figure.
  for (let i = 0; i < 4; i++) await Promise.all(clients.map((client) => callTool(client, quick)));
  const idle = rssBytes(pid);

  let peak = idle ?? 0;
  const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(pid) ?? 0)), 100);
  const timeoutMs = settings.sleepMs + 60_000;
  const calls = Promise.all(Array.from({ length: settings.calls }, (_, i) => callTool(clients[i % clients.length] as Client, slow, timeoutMs)));
  let settled = false;
  void calls.then(
    () => (settled = true),
    () => (settled = true),
  );
  // The gateway's in-flight gauge, polled (it offers no push): its highest value and the RSS then.
  let most: { calls: number; rss: number | undefined } | undefined;
  while (!settled) {
    const value = await gatewayMetric(url, IN_FLIGHT);
    if (value === undefined) break;
    if (value > (most?.calls ?? -1)) most = { calls: value, rss: rssBytes(pid) };
    if (value >= settings.calls) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await calls;
  clearInterval(sampler);
  if (most !== undefined) await waitForMetric(url, IN_FLIGHT, {}, (value) => (value ?? 0) === 0, "no call in flight", 10_000);
  // Settling is the measurement here: the time the gateway gets to give memory back.
  await new Promise((r) => setTimeout(r, settings.settleSeconds * 1000));
  const after = rssBytes(pid);
  await Promise.all(clients.map(closeClient));

  console.log(
    table(
      ["gateway RSS", "MB"],
      [
        ["started, serving, no client session", mib(started)],
        [`idle: ${settings.sessions} sessions open, warmed up`, mib(idle)],
        [most === undefined ? `in flight: n/a (no ${IN_FLIGHT})` : `${most.calls} calls in flight (gateway's gauge)`, mib(most?.rss)],
        ["peak (sampled every 100 ms)", mib(peak)],
        [`after, ${settings.settleSeconds} s without calls`, mib(after)],
      ],
    ),
  );
  const held = most?.rss ?? peak;
  const reached = most !== undefined && most.calls >= settings.calls;
  return [
    {
      target: `gateway RSS with ${settings.calls} calls in flight ≤ ${mib(RSS_LIMIT_BYTES)}`,
      measured: `${mib(held)}${most === undefined ? " (peak)" : reached ? "" : ` (at most ${most.calls} were in flight at once: raise BENCH_MEMORY_SLEEP_MS)`}`,
      met: (most === undefined || reached) && held <= RSS_LIMIT_BYTES,
    },
    {
      target: `gateway RSS back to idle after them (within ${fmt(IDLE_TOLERANCE * 100, 0)} %)`,
      measured: `${mib(after)} against ${mib(idle)} idle`,
      met: after !== undefined && idle !== undefined && after <= idle * (1 + IDLE_TOLERANCE),
    },
  ];
}

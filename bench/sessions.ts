/**
 * `npm run bench:sessions`: what sharing HTTP sessions between gateways costs and gives (issue 15).
 * Not a test: it reports, and exits non-zero only when the run itself breaks.
 *
 *   clients ──HTTP──▶ round-robin proxy (per request) ──▶ 1 or 2 dmcp gateways ──NATS──▶ dmcp wrap ──stdio──▶ fixture
 *
 * Real processes on loopback, one private nats-server; the fixture's `echo`, one shared upstream
 * session (`--max-sessions 0`, so that no per-session child process is measured). It prints:
 *
 *   throughput  calls/s, p50 and the gateways' CPU per call of SESSIONS_CLIENTS sessions calling in a
 *               loop: one gateway reached directly, one behind the proxy, two behind the proxy (every
 *               other request of each session on the other gateway)
 *   take-up     the first call of a session on a gateway that did not initialize it (reads the session
 *               from the bucket) against its next call there
 *   failover    SESSIONS_FAILOVER sessions initialized on gateway A, A SIGKILLed: from the kill until
 *               each session's next call, through the proxy, is answered by B
 *
 * Environment: SESSIONS_CLIENTS (default 16), SESSIONS_SECONDS (5 per row), SESSIONS_ROUNDS (2,
 * alternating the rows), SESSIONS_TAKEUP (200 sessions), SESSIONS_FAILOVER (50 sessions).
 */
import { performance } from "node:perf_hooks";
import type { StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { startGatewayHttp, type Child } from "../test/support/processes.js";
import { startRoundRobinProxy, type RoundRobinProxy } from "../test/support/round-robin.js";
import { BenchError, DMCP_JS, envNumber, RAW_SERVER_JS, requireBuilt } from "./lib/config.js";
import { describeMachine } from "./lib/machine.js";
import { closeClient, connectClient, connectPool, drive, waitForTool, type ToolCall } from "./lib/mcp-client.js";
import { cpuMs } from "./lib/proc.js";
import { childDied, cleanup, spawnNode, startNats } from "./lib/processes.js";
import { fmt, latency, table } from "./lib/stats.js";

const TOOL: ToolCall = { name: "echo", arguments: { text: "hi" }, expectText: "hi" };

interface Gateway {
  child: Child;
  url: string;
  origin: string;
}

/** A gateway started as the tests start one (not a bench child: the failover kills it, which the bench's children may not do). */
async function startGateway(natsUrl: string): Promise<Gateway> {
  const child = await startGatewayHttp(natsUrl, ["--log-level", "warn"]);
  return { child, url: child.url, origin: new URL(child.url).origin };
}

const gatewayCpu = (gateways: Gateway[]): number => gateways.reduce((sum, g) => sum + (cpuMs(g.child.process.pid) ?? 0), 0);

/** A session opened on `url` by the SDK's client, then closed there without a DELETE: its id stays valid. */
async function sessionOn(url: string, name: string): Promise<string> {
  const client = await connectClient(url, name);
  const id = (client.transport as StreamableHTTPClientTransport).sessionId!;
  await client.close();
  return id;
}

/** One echo call of session `id` through `url`, as plain JSON-RPC; throws unless it is answered. */
async function echoIn(url: string, id: string): Promise<void> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-session-id": id, "mcp-protocol-version": "2025-11-25" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: TOOL.name, arguments: TOOL.arguments } }),
  });
  const text = await response.text();
  if (response.status !== 200 || !text.includes('"text":"hi"')) throw new BenchError(`session ${id}: ${response.status} ${text.slice(0, 200)}`);
}

interface Row {
  label: string;
  url: string;
  gateways: Gateway[];
  calls: number;
  seconds: number;
  cpuMs: number;
  latencies: number[];
}

async function measure(row: Row, clients: number, seconds: number): Promise<void> {
  const pool = await connectPool(row.url, clients, row.label.replace(/\W+/g, "-"));
  await drive(pool, TOOL, { calls: clients * 20 }, false);
  const cpuBefore = gatewayCpu(row.gateways);
  const run = await drive(pool, TOOL, { seconds }, true);
  row.cpuMs += gatewayCpu(row.gateways) - cpuBefore;
  row.calls += run.calls;
  row.seconds += run.seconds;
  row.latencies.push(...run.latencies);
  await Promise.all(pool.map(closeClient));
}

/** Sessions initialized through `initUrl`, then called twice through `callUrl`: the first call's and the second call's latencies. */
async function takeUp(initUrl: string, callUrl: string, sessions: number): Promise<{ first: number[]; second: number[] }> {
  const first: number[] = [];
  const second: number[] = [];
  for (let i = 0; i < sessions; i++) {
    const id = await sessionOn(initUrl, `takeup-${i}`);
    for (const into of [first, second]) {
      const t0 = performance.now();
      await echoIn(callUrl, id);
      into.push(performance.now() - t0);
    }
  }
  return { first, second };
}

async function main(): Promise<void> {
  requireBuilt(DMCP_JS, RAW_SERVER_JS);
  const clients = envNumber("SESSIONS_CLIENTS", 16);
  const seconds = envNumber("SESSIONS_SECONDS", 5);
  const rounds = envNumber("SESSIONS_ROUNDS", 2);
  const takeUpSessions = envNumber("SESSIONS_TAKEUP", 200);
  const failoverSessions = envNumber("SESSIONS_FAILOVER", 50);
  console.log(describeMachine());

  const nats = await startNats();
  const a = await startGateway(nats.url);
  const b = await startGateway(nats.url);
  await spawnNode("wrap", [
    DMCP_JS,
    "wrap",
    "--name",
    "fx",
    "--nats",
    nats.url,
    "--max-sessions",
    "0",
    "--log-level",
    "warn",
    "--",
    process.execPath,
    RAW_SERVER_JS,
    "--stdio",
    "--name",
    "fx",
  ]);
  await Promise.all([waitForTool(a.url, "echo"), waitForTool(b.url, "echo")]);
  const proxies: RoundRobinProxy[] = [await startRoundRobinProxy([a.origin]), await startRoundRobinProxy([a.origin, b.origin])];
  try {
    const rows: Row[] = [
      { label: "1 gateway, direct", url: a.url, gateways: [a], calls: 0, seconds: 0, cpuMs: 0, latencies: [] },
      { label: "1 gateway, behind the proxy", url: proxies[0]!.url, gateways: [a], calls: 0, seconds: 0, cpuMs: 0, latencies: [] },
      { label: "2 gateways, behind the proxy", url: proxies[1]!.url, gateways: [a, b], calls: 0, seconds: 0, cpuMs: 0, latencies: [] },
    ];
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? rows : [...rows].reverse();
      for (const row of order) await measure(row, clients, seconds / rounds);
    }
    const one = rows[1]!;
    console.log(`\n== throughput: ${clients} sessions calling echo in a loop, ${seconds} s per row over ${rounds} alternating rounds`);
    console.log(
      table(
        ["", "calls/s", "÷ 1 gateway behind the proxy", "p50 ms", "p99 ms", "gateway CPU/call ms"],
        rows.map((row) => {
          const rate = row.calls / row.seconds;
          const lat = latency(row.latencies);
          return [row.label, fmt(rate, 0), `×${fmt(rate / (one.calls / one.seconds))}`, fmt(lat.p50), fmt(lat.p99), fmt(row.cpuMs / row.calls, 3)];
        }),
      ),
    );

    const took = await takeUp(a.url, b.url, takeUpSessions);
    const first = latency(took.first);
    const second = latency(took.second);
    console.log(`\n== take-up: ${takeUpSessions} sessions initialized on A, then called on B`);
    console.log(
      table(
        ["call on B", "p50 ms", "p99 ms", "max ms"],
        [
          ["first (reads the session from the bucket)", fmt(first.p50), fmt(first.p99), fmt(Math.max(...took.first))],
          ["second (B holds it)", fmt(second.p50), fmt(second.p99), fmt(Math.max(...took.second))],
        ],
      ),
    );

    const ids: string[] = [];
    for (let i = 0; i < failoverSessions; i++) ids.push(await sessionOn(a.url, `failover-${i}`));
    const killedAt = performance.now();
    a.child.kill("SIGKILL");
    // Each session's next call goes through the two-gateway proxy, which finds A refusing and takes B.
    let failed = 0;
    const answeredAfter = await Promise.all(
      ids.map(async (id) => {
        // A client that gets an error tries again, as a client of a balancer does.
        for (;;) {
          try {
            await echoIn(proxies[1]!.url, id);
            return performance.now() - killedAt;
          } catch (err) {
            failed++;
            if (performance.now() - killedAt > 30_000) throw err;
          }
        }
      }),
    );
    const after = latency(answeredAfter);
    console.log(`\n== failover: ${failoverSessions} sessions initialized on A, A SIGKILLed, each session's next call through the proxy`);
    console.log(table(["from the kill until answered by B", "p50 ms", "p99 ms", "max ms"], [["", fmt(after.p50), fmt(after.p99), fmt(Math.max(...answeredAfter))]]));
    console.log(`${failed} calls failed on the way (the clients tried again)`);
  } finally {
    await Promise.all(proxies.map((proxy) => proxy.close()));
    await Promise.allSettled([a.child.stop(), b.child.stop()]);
  }
}

await Promise.race([main(), childDied])
  .catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  })
  .finally(cleanup);

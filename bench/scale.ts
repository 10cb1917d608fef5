/**
 * `BENCH_SCALE=1` or sub-command `scale`: K replicas of an I/O-bound tool. Each replica is a
 * `dmcp wrap --max-sessions 0` of its own serial-sleep server (bench/upstreams/), which runs one
 * `sleep` call at a time: one replica serves at most 1000/ms calls/s, so calls/s can grow only with
 * replicas. For each K (replicas added one after the other, behind one gateway on one nats-server):
 * a fresh set of client sessions calls in a loop for a time; calls/s, its ratio to K=1 against the
 * target 0.8·K, and the CPU all the bench's processes used, against what the cores have.
 */
import { DMCP_JS, requireBuilt, SERIAL_SLEEP_SERVER_JS } from "./lib/config.js";
import { waitForMetric } from "./lib/gateway-metrics.js";
import { cores } from "./lib/machine.js";
import { closeClient, connectPool, drive, waitForTool, type ToolCall } from "./lib/mcp-client.js";
import { cpuMs, processTree } from "./lib/proc.js";
import { spawnNode, startNats } from "./lib/processes.js";
import { fmt, latency, table } from "./lib/stats.js";
import type { TargetLine } from "./lib/targets.js";

export interface ScaleSettings {
  replicas: number[];
  concurrency: number;
  sleepMs: number;
  seconds: number;
}

const SERVICE = "scale";
const GROWTH_PER_REPLICA = 0.8;

/** CPU ms of this process and every process below it (gateway, wraps, their servers, nats-server). */
function benchCpuMs(): number {
  const self = process.cpuUsage();
  return processTree(process.pid)
    .slice(1)
    .reduce((sum, pid) => sum + (cpuMs(pid) ?? 0), (self.user + self.system) / 1000);
}

export async function runScale(settings: ScaleSettings): Promise<TargetLine[]> {
  requireBuilt(SERIAL_SLEEP_SERVER_JS, DMCP_JS);
  const { sleepMs, concurrency } = settings;
  const perReplica = 1000 / sleepMs;
  console.log(
    `\n== scale: K replicas of a tool that sleeps ${sleepMs} ms and runs one call at a time (at most ${fmt(perReplica, 0)} calls/s per replica); ` +
      `${concurrency} client sessions calling in a loop, ${settings.seconds} s per K`,
  );
  const nats = await startNats();
  const gateway = await spawnNode("scale gateway", [DMCP_JS, "gateway", "--nats", nats.url, "--http", "0", "--log-level", "warn"], {
    ready: /dmcp gateway: serving MCP at (http:\/\/\S+)/,
  });
  const url = gateway.match![1]!;
  const tool: ToolCall = { name: "sleep", arguments: { ms: sleepMs }, expectText: `slept ${sleepMs}` };
  const wrapArgs = ["wrap", "--name", SERVICE, "--nats", nats.url, "--max-sessions", "0", "--log-level", "warn", "--", process.execPath, SERIAL_SLEEP_SERVER_JS];

  const rows: string[][] = [];
  const lines: TargetLine[] = [];
  let started = 0;
  let base: number | undefined;
  for (const k of [...settings.replicas].sort((a, b) => a - b)) {
    while (started < k) await spawnNode(`scale wrap ${++started}`, [DMCP_JS, ...wrapArgs]);
    await waitForMetric(url, "dmcp_registry_instances", { service: SERVICE, status: "ready" }, (value) => value === k, `${k} ready replicas of ${SERVICE}`, 20_000);
    await waitForTool(url, "sleep");
    const clients = await connectPool(url, concurrency, `scale-${k}`);
    await drive(clients, tool, { calls: concurrency * 2 }, false);
    const cpuBefore = benchCpuMs();
    const run = await drive(clients, tool, { seconds: settings.seconds }, true);
    const cpuSpent = benchCpuMs() - cpuBefore;
    const busy = cpuSpent / (run.seconds * 1000 * cores());
    // What the cores allow at this CPU cost per call, whatever the replicas could serve.
    const ceiling = (cores() * 1000) / (cpuSpent / run.calls);
    await Promise.all(clients.map(closeClient));
    const rate = run.calls / run.seconds;
    base ??= rate;
    const growth = rate / base;
    const ideal = Math.min(k, concurrency) * perReplica;
    rows.push([
      String(k),
      fmt(rate, 0),
      fmt(ideal, 0),
      `×${fmt(growth)}`,
      `×${fmt(GROWTH_PER_REPLICA * k)}`,
      fmt(latency(run.latencies).p50, 1),
      fmt(cpuSpent / run.calls, 2),
      `${fmt(busy * 100, 0)} %`,
      fmt(ceiling, 0),
    ]);
    if (k > 1)
      lines.push({
        target: `calls/s with ${k} replicas ≥ ${GROWTH_PER_REPLICA}·${k} × with 1`,
        measured: `×${fmt(growth)} (${fmt(rate, 0)} against ${fmt(base, 0)})`,
        met: growth >= GROWTH_PER_REPLICA * k,
      });
  }
  console.log(table(["replicas K", "calls/s", "ideal", "÷ K=1", "target", "p50 ms", "CPU/call ms", `CPU busy (${cores()} cores)`, "cores allow calls/s"], rows));
  console.log(
    "ideal: K × 1000/ms, what K serial replicas serve when nothing else limits them; CPU/call: CPU time of all the bench's processes (client, gateway, nats-server, replicas) per call; " +
      "CPU busy: that time over the wall time the cores had; cores allow: cores × 1000 / CPU per call, the calls/s beyond which more replicas cannot help on this machine",
  );
  return lines;
}

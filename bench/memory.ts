/**
 * `BENCH_MEMORY=1` or sub-command `memory`: the gateway's memory with many calls in flight on a slow
 * tool (the raw fixture's `sleep`), and again once they are over. Its own gateway, wrap --url,
 * nats-server and upstream (with BENCH_BASELINE, the baseline's gateway too, on the same stack, one
 * after the other). Idle: with the client sessions open and warmed up, before the calls; in flight:
 * when the gateway's dmcp_gateway_calls_in_flight reaches the count (and the peak sampled every
 * 100 ms); after: once none is in flight and the settle time has passed.
 *
 * Per phase it reads RSS (VmRSS) and the V8 heap (the gateway's own nodejs_heap_size_* metrics), as
 * an operator sees them; at idle and after, a probe preloaded into the gateway (lib/memory-probe.ts)
 * then runs full GCs and reports the heap and RSS after them: what the gateway still holds (heap
 * used: live objects, with the old space's unusable fragments), against what V8 and malloc keep
 * without using it (RSS above it).
 */
import type { Client } from "@modelcontextprotocol/client";
import { fileURLToPath } from "node:url";
import { DMCP_JS, RAW_SERVER_JS, requireBuilt } from "./lib/config.js";
import { gatewayMetric, waitForMetric } from "./lib/gateway-metrics.js";
import { callTool, closeClient, connectPool, waitForTool, type ToolCall } from "./lib/mcp-client.js";
import { rssBytes } from "./lib/proc.js";
import { spawnNode, startNats, stopChild, type Child } from "./lib/processes.js";
import { fmt, mib, table } from "./lib/stats.js";
import type { ProbedUsage } from "./lib/memory-probe.js";
import type { TargetLine } from "./lib/targets.js";

/** What the gateway's probe reports: its memory before and after its full GCs. */
interface Probed {
  before: ProbedUsage;
  after: ProbedUsage;
}

export interface MemorySettings {
  calls: number;
  sessions: number;
  sleepMs: number;
  settleSeconds: number;
  /** The BENCH_BASELINE build's dmcp, measured first on the same stack. */
  baselineDmcpJs?: string | undefined;
}

const RSS_LIMIT_BYTES = 150 * 2 ** 20;
/** "Back to its idle figure": within this share above it (a garbage-collected heap does not return to the byte). */
const IDLE_TOLERANCE = 0.1;
const IN_FLIGHT = "dmcp_gateway_calls_in_flight";
const HEAP_USED = "nodejs_heap_size_used_bytes";
const HEAP_TOTAL = "nodejs_heap_size_total_bytes";
const SPACE_SIZE = "nodejs_heap_space_size_total_bytes";
const PROBE_JS = fileURLToPath(new URL("./lib/memory-probe.js", import.meta.url));
const PROBE_TIMEOUT_MS = 60_000;

/** One phase as an operator sees it (no GC forced), and for idle and after, the probe's full GCs. */
interface Phase {
  rss: number | undefined;
  heapTotal: number | undefined;
  heapUsed: number | undefined;
  /** V8's young generation as it is (its semi-spaces grow under allocation and shrink only at a GC of V8's choosing). */
  newSpace: number | undefined;
  probe?: Probed | undefined;
}

/** The seconds after the calls at which the bench reads the gateway as it settles, up to the settle time. */
const SETTLE_CHECKPOINTS_S = [1, 5, 15, 30, 60, 120];

interface Measured {
  label: string;
  started: Phase;
  idle: Phase;
  inFlight: Phase & { calls: number | undefined };
  peakRss: number;
  /** The gateway as it settles: read at each checkpoint (seconds after the calls) up to the settle time. */
  settling: { seconds: number; phase: Phase }[];
  after: Phase;
}

export async function runMemory(settings: MemorySettings): Promise<TargetLine[]> {
  requireBuilt(RAW_SERVER_JS, DMCP_JS, PROBE_JS);
  console.log(`\n== memory: the gateway's memory with ${settings.calls} calls of sleep(${settings.sleepMs} ms) in flight over ${settings.sessions} client sessions`);
  const nats = await startNats();
  const upstream = await spawnNode("memory upstream", [RAW_SERVER_JS, "--http", "0", "--name", "memory"], { ready: /^LISTENING (\d+)$/ });
  const upstreamUrl = `http://127.0.0.1:${upstream.match![1]}/mcp`;
  await spawnNode("memory wrap", [DMCP_JS, "wrap", "--name", "memory", "--nats", nats.url, "--url", upstreamUrl, "--log-level", "warn"]);
  const builds = [...(settings.baselineDmcpJs ? [{ label: "base", dmcpJs: settings.baselineDmcpJs }] : []), { label: "dmcp", dmcpJs: DMCP_JS }];
  const results: Measured[] = [];
  for (const build of builds) results.push(await measureGateway(build.label, build.dmcpJs, nats.url, settings));

  const mark = (label: string) => (results.length > 1 ? ` (${label})` : "");
  for (const m of results) {
    const row = (what: string, p: Phase): string[] => [what, mib(p.rss), mib(p.heapTotal), mib(p.heapUsed)];
    console.log(`\ngateway${mark(m.label)} as it runs (no GC forced; heap: its nodejs_heap_size_* metrics)`);
    console.log(
      table(
        ["gateway", "RSS", "heap total", "heap used"],
        [
          row("started, serving, no client session", m.started),
          row(`idle: ${settings.sessions} sessions open, warmed up`, m.idle),
          row(m.inFlight.calls === undefined ? `in flight: n/a (no ${IN_FLIGHT})` : `${m.inFlight.calls} calls in flight (gateway's gauge)`, m.inFlight),
          ["peak (sampled every 100 ms)", mib(m.peakRss), "", ""],
          row(`after, ${settings.settleSeconds} s without calls`, m.after),
        ],
      ),
    );
    console.log(`gateway${mark(m.label)} as it settles after the calls (no GC forced)`);
    console.log(
      table(
        ["seconds after the calls", "RSS", "heap total", "heap used", "new space"],
        m.settling.map(({ seconds, phase }) => [`${fmt(seconds, 0)} s`, mib(phase.rss), mib(phase.heapTotal), mib(phase.heapUsed), mib(phase.newSpace)]),
      ),
    );
    const gcRow = (what: string, u: ProbedUsage | undefined): string[] => [
      what,
      mib(u?.rss),
      mib(u?.heapTotal),
      mib(u?.heapUsed),
      mib(u?.spaces.new_space?.size),
      mib(u?.spaces.old_space?.size),
      mib(u?.external),
    ];
    console.log(`gateway${mark(m.label)} right after that, after full GCs (the bench's probe)`);
    console.log(
      table(
        ["gateway, after full GCs", "RSS", "heap total", "heap used", "new space", "old space", "external"],
        [gcRow("idle", m.idle.probe?.after), gcRow("after the calls", m.after.probe?.after)],
      ),
    );
    console.log(
      "(heap used after full GCs: live objects, and the old space's free fragments too small to reuse until V8 compacts it; a heap snapshot, BENCH_MEMORY_SNAPSHOTS, counts live objects only)",
    );
  }

  return results.flatMap((m) => {
    const held = m.inFlight.rss ?? m.peakRss;
    const reached = m.inFlight.calls !== undefined && m.inFlight.calls >= settings.calls;
    return [
      {
        target: `gateway${mark(m.label)} RSS with ${settings.calls} calls in flight ≤ ${mib(RSS_LIMIT_BYTES)}`,
        measured: `${mib(held)}${m.inFlight.calls === undefined ? " (peak)" : reached ? "" : ` (at most ${m.inFlight.calls} were in flight at once: raise BENCH_MEMORY_SLEEP_MS)`}`,
        met: (m.inFlight.calls === undefined || reached) && held <= RSS_LIMIT_BYTES,
      },
      {
        target: `gateway${mark(m.label)} RSS back to idle after them (within ${fmt(IDLE_TOLERANCE * 100, 0)} %, ${settings.settleSeconds} s later, no GC forced)`,
        measured: `${mib(m.after.rss)} against ${mib(m.idle.rss)} idle (${backAt(m)})`,
        met: backToIdle(m.after, m.idle),
      },
    ];
  });
}

const backToIdle = (phase: Phase, idle: Phase) => phase.rss !== undefined && idle.rss !== undefined && phase.rss <= idle.rss * (1 + IDLE_TOLERANCE);

/** The first checkpoint of the settling at which RSS was back to idle, as the target line tells it. */
function backAt(m: Measured): string {
  const first = m.settling.find(({ phase }) => backToIdle(phase, m.idle));
  const read = m.settling.map(({ seconds }) => fmt(seconds, 0)).join(", ");
  return first === undefined ? `not back at ${read} s` : `back at ${fmt(first.seconds, 0)} s of ${read} s`;
}

/** One gateway (`dmcpJs`) on the stack at `natsUrl`, through the phases; stopped at the end. */
async function measureGateway(label: string, dmcpJs: string, natsUrl: string, settings: MemorySettings): Promise<Measured> {
  const gateway = await spawnNode(`memory gateway (${label})`, [dmcpJs, "gateway", "--nats", natsUrl, "--http", "0", "--log-level", "warn"], {
    ready: /dmcp gateway: serving MCP at (http:\/\/\S+)/,
    nodeFlags: ["--expose-gc", "--import", new URL("./lib/memory-probe.js", import.meta.url).href],
  });
  const url = gateway.match![1]!;
  const pid = gateway.child.proc.pid;
  const phase = async (): Promise<Phase> => {
    const rss = rssBytes(pid);
    return {
      rss,
      heapTotal: await gatewayMetric(url, HEAP_TOTAL),
      heapUsed: await gatewayMetric(url, HEAP_USED),
      newSpace: await gatewayMetric(url, SPACE_SIZE, { space: "new" }),
    };
  };
  await waitForTool(url, "sleep");
  const started = await phase();

  const clients = await connectPool(url, settings.sessions, "memory");
  const quick: ToolCall = { name: "sleep", arguments: { ms: 0 }, expectText: "slept 0" };
  const slow: ToolCall = { name: "sleep", arguments: { ms: settings.sleepMs }, expectText: `slept ${settings.sleepMs}` };
  // A quick call is tried twice: after the pauses of this bench (settling, the probe, the other
  // build's run) a connection reused at the moment its server's keep-alive timeout (5 s) closes it
  // fails (the client's to the gateway, or the wrap's to the upstream), and nothing here is about that.
  const warm = (client: Client) => callTool(client, quick).catch(() => callTool(client, quick));
  // Warm-up: every session has called once (upstream sessions, JIT) before the idle figure.
  for (let i = 0; i < 4; i++) await Promise.all(clients.map(warm));
  const idle = await phase();
  idle.probe = await probe(gateway.child);
  // The probe's pauses leave the connections idle for seconds: fresh ones for the calls measured.
  await Promise.all(clients.map(warm));

  let peakRss = idle.rss ?? 0;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, rssBytes(pid) ?? 0)), 100);
  const timeoutMs = settings.sleepMs + 60_000;
  const calls = Promise.all(Array.from({ length: settings.calls }, (_, i) => callTool(clients[i % clients.length] as Client, slow, timeoutMs)));
  let settled = false;
  void calls.then(
    () => (settled = true),
    () => (settled = true),
  );
  // The gateway's in-flight gauge, polled (it offers no push): its highest value and the memory then.
  let inFlight: Measured["inFlight"] = { calls: undefined, rss: undefined, heapTotal: undefined, heapUsed: undefined, newSpace: undefined };
  while (!settled) {
    const value = await gatewayMetric(url, IN_FLIGHT);
    if (value === undefined) break;
    if (value > (inFlight.calls ?? -1)) inFlight = { calls: value, ...(await phase()) };
    if (value >= settings.calls) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await calls;
  clearInterval(sampler);
  if (inFlight.calls !== undefined) await waitForMetric(url, IN_FLIGHT, {}, (value) => (value ?? 0) === 0, "no call in flight", 10_000);
  // Settling is the measurement here: the time the gateway gets to give memory back, read on the way.
  const settledAt = Date.now();
  const checkpoints = [...SETTLE_CHECKPOINTS_S.filter((s) => s < settings.settleSeconds), settings.settleSeconds];
  const settling: Measured["settling"] = [];
  for (const seconds of checkpoints) {
    await new Promise((r) => setTimeout(r, Math.max(0, settledAt + seconds * 1000 - Date.now())));
    settling.push({ seconds, phase: await phase() });
  }
  const after = settling.at(-1)!.phase;
  after.probe = await probe(gateway.child);
  await Promise.all(clients.map(closeClient));
  await stopChild(gateway.child);
  return { label, started, idle, inFlight, peakRss, settling, after };
}

/** Asks the gateway's probe (SIGUSR2) for its memory before and after a full GC. */
function probe(child: Child): Promise<Probed | undefined> {
  const stderr = child.proc.stderr!;
  return new Promise((resolve) => {
    let partial = "";
    const done = (result: Probed | undefined) => {
      clearTimeout(timer);
      stderr.off("data", onData);
      resolve(result);
    };
    const onData = (chunk: string) => {
      const lines = (partial + chunk).split("\n");
      partial = lines.pop() ?? "";
      const line = lines.find((l) => l.startsWith("MEMORY-PROBE "));
      if (line) done(JSON.parse(line.slice("MEMORY-PROBE ".length)) as Probed);
    };
    const timer = setTimeout(() => done(undefined), PROBE_TIMEOUT_MS);
    stderr.on("data", onData);
    child.proc.kill("SIGUSR2");
  });
}

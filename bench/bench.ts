/**
 * `npm run bench`: tools/call latency and throughput against an MCP server over Streamable HTTP,
 * directly and through the bus (gateway + NATS + wrap), in one run.
 *
 *   client ──HTTP──▶ upstream                                    (direct)
 *   client ──HTTP──▶ gateway ──NATS──▶ wrap ──HTTP──▶ upstream   (bus)
 *
 * Every component is a real process on loopback: a private nats-server (random port), the fixture MCP
 * server (`dist/test/fixtures/raw-server.js --http 0`), `dmcp wrap --url` and `dmcp gateway --http 0`.
 * The clients live in this process: one SDK `Client` session per worker, each worker calling `echo` in a
 * loop. Both paths are measured in alternating rounds (A B, B A, ...) so that drift (thermal, page
 * cache, JIT) does not favour one of them.
 *
 * The targets (bus adds ≤ 1 ms at p50, keeps ≥ 90 % of the direct calls/s) are reported, never
 * enforced: this is a measurement, not a test. The exit code is non-zero only when the bench itself
 * breaks (a process does not start, a call fails).
 *
 * Environment:
 *   BENCH_SECONDS      measured seconds per path, split over the rounds (default 5)
 *   BENCH_ROUNDS       alternating rounds (default 2)
 *   BENCH_CONCURRENCY  workers = client sessions (default 16)
 *   BENCH_WARMUP       warm-up calls per path before measuring (default 300)
 *   BENCH_SERIAL_CALLS calls of the single-client (concurrency 1) measurement per path (default 1000)
 *   BENCH_CPU_PROF     a directory: run gateway, wrap and upstream with --cpu-prof into it
 *   BENCH_VERBOSE=1    echo the children's stderr
 *   BENCH_GATEWAY_ARGS extra `dmcp gateway` flags, e.g. "--json-responses"
 *   BENCH_BASELINE     another build of this project (its checkout, with dist/ built): runs a third path,
 *                      "base", through that build's gateway and wrap (on their own nats-server, same
 *                      upstream), in the same alternating rounds, and prints bus/base ratios, so that a
 *                      change is compared with its baseline under the same machine load
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { startNatsServer, type EmbeddedNats } from "../src/bus/nats-server.js";
import { terminate } from "../src/util/terminate.js";

// ---------------------------------------------------------------------------------------------------
// Configuration

function envNumber(name: string, fallback: number, { integer = true, min = 1 } = {}): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
    throw new BenchError(`${name} must be ${integer ? "an integer" : "a number"} ≥ ${min}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

class BenchError extends Error {
  override name = "BenchError";
}

const TARGET_ADDED_P50_MS = 1;
const TARGET_THROUGHPUT_RATIO = 0.9;
const START_TIMEOUT_MS = 20_000;
const CATALOG_TIMEOUT_MS = 20_000;
const STOP_GRACE_MS = 5_000;

/** dist/ — this file runs as dist/bench/bench.js. */
const DIST = fileURLToPath(new URL("..", import.meta.url));
const RAW_SERVER_JS = resolve(DIST, "test/fixtures/raw-server.js");
const DMCP_JS = resolve(DIST, "src/cli/main.js");

/** `dist/src/cli/main.js` of the BENCH_BASELINE build, given its checkout or its dist/. */
function baselineDmcpJs(dir: string): string {
  for (const candidate of [resolve(dir, "dist/src/cli/main.js"), resolve(dir, "src/cli/main.js")]) {
    if (existsSync(candidate)) return candidate;
  }
  throw new BenchError(`BENCH_BASELINE=${dir}: no dist/src/cli/main.js there (build that checkout first)`);
}

// ---------------------------------------------------------------------------------------------------
// Child processes

interface Child {
  name: string;
  proc: ChildProcess;
  exited: Promise<void>;
  stderrTail: () => string;
}

const children: Child[] = [];
let nats: EmbeddedNats | undefined;
let verbose = false;

/** Rejects as soon as any child exits while the bench still needs it; raced against main(). */
let reportDeath: (err: BenchError) => void = () => undefined;
const childDied = new Promise<never>((_, reject) => (reportDeath = reject));
childDied.catch(() => undefined);

/**
 * Spawns `node args...` and resolves with the first match of `ready` on its stderr (or at once when
 * `ready` is undefined). Rejects (with the tail of its stderr) if it exits first or does not get ready
 * in time.
 */
function spawnNode(name: string, args: string[], ready: RegExp | undefined, nodeFlags: string[] = []): Promise<{ child: Child; match: RegExpMatchArray | undefined }> {
  const proc = spawn(process.execPath, [...nodeFlags, ...args], { stdio: ["ignore", "ignore", "pipe"] });
  const lines: string[] = [];
  let partial = "";
  let exitInfo: string | undefined;
  const exited = new Promise<void>((resolveExit) => {
    proc.once("exit", (code, signal) => {
      exitInfo = signal ? `signal ${signal}` : `code ${code}`;
      resolveExit();
    });
    proc.once("error", (err) => {
      exitInfo = `spawn error: ${err.message}`;
      if (proc.pid === undefined) resolveExit();
    });
  });
  const stderrTail = () => [...lines, partial].filter((l) => l !== "").slice(-20).join("\n");
  const child: Child = { name, proc, exited, stderrTail };
  children.push(child);

  return new Promise((resolveReady, rejectReady) => {
    let settled = false;
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const tail = stderrTail();
      rejectReady(new BenchError(`${name} ${why}${tail ? `\n--- ${name} stderr ---\n${tail}` : ""}`));
    };
    const timer = setTimeout(() => fail(`did not get ready within ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
    proc.stderr!.setEncoding("utf8");
    proc.stderr!.on("data", (chunk: string) => {
      const split = (partial + chunk).split("\n");
      partial = split.pop() ?? "";
      for (const line of split) {
        lines.push(line);
        if (lines.length > 50) lines.shift();
        if (verbose) process.stderr.write(`[${name}] ${line}\n`);
        if (settled || ready === undefined) continue;
        const match = line.match(ready);
        if (match) {
          settled = true;
          clearTimeout(timer);
          resolveReady({ child, match });
        }
      }
    });
    if (ready === undefined) {
      proc.once("spawn", () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolveReady({ child, match: undefined });
      });
    }
    void exited.then(() => {
      fail(`exited before it was ready (${exitInfo})`);
      // Any exit before cleanup breaks the bench.
      if (!shuttingDown) {
        const tail = stderrTail();
        reportDeath(new BenchError(`${name} exited unexpectedly (${exitInfo})${tail ? `\n--- ${name} stderr ---\n${tail}` : ""}`));
      }
    });
  });
}

let shuttingDown = false;

/** SIGTERM to every child, SIGKILL after the grace period; then stops nats-server. Idempotent. */
async function cleanup(): Promise<void> {
  shuttingDown = true;
  // All children at once; they stay listed until gone so that the exit handler can still SIGKILL them.
  await Promise.all(
    children.map((child) => terminate(child.proc, child.exited, STOP_GRACE_MS)),
  );
  children.length = 0;
  const servers = [nats, baseNats];
  nats = undefined;
  baseNats = undefined;
  await Promise.all(servers.map((server) => server?.stop()));
}

/** Last resort when this process dies without running cleanup(): no orphans. */
process.once("exit", () => {
  for (const child of children) {
    try {
      child.proc.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
});

// ---------------------------------------------------------------------------------------------------
// CPU accounting (Linux /proc): where each call's CPU time goes, per process

/** The columns of the CPU table: one per role on a call's path. */
const PROCS = ["client", "upstream", "gateway", "wrap", "nats"] as const;
type Proc = (typeof PROCS)[number];
/** CPU ms by process name: the roles, and "base gateway", "base wrap", "base nats" of the baseline. */
type CpuSnapshot = Partial<Record<string, number>>;
let baseNats: EmbeddedNats | undefined;

/** The process that plays `proc` on `path`: the baseline's own gateway, wrap and nats-server for "base". */
function processFor(path: Path, proc: Proc): string {
  return path === "base" && (proc === "gateway" || proc === "wrap" || proc === "nats") ? `base ${proc}` : proc;
}

const clockTicks = (() => {
  if (process.platform !== "linux") return undefined;
  try {
    const ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    return Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of a process in ms, from /proc/<pid>/stat; undefined where unavailable. */
function procCpuMs(pid: number | undefined): number | undefined {
  if (clockTicks === undefined || pid === undefined || pid <= 0) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks; // fields 14 and 15 of stat(5)
  } catch {
    return undefined;
  }
}

function cpuSnapshot(): CpuSnapshot {
  const self = process.cpuUsage();
  const snapshot: CpuSnapshot = { client: (self.user + self.system) / 1000 };
  for (const child of children) {
    const ms = procCpuMs(child.proc.pid);
    if (ms !== undefined) snapshot[child.name] = ms;
  }
  for (const [name, server] of [["nats", nats], ["base nats", baseNats]] as const) {
    const ms = procCpuMs(server?.pid);
    if (ms !== undefined) snapshot[name] = ms;
  }
  return snapshot;
}

function cpuDelta(before: CpuSnapshot, after: CpuSnapshot): CpuSnapshot {
  const delta: CpuSnapshot = {};
  for (const [name, a] of Object.entries(after)) {
    const b = before[name];
    if (a !== undefined && b !== undefined) delta[name] = a - b;
  }
  return delta;
}

// ---------------------------------------------------------------------------------------------------
// Clients and measurement

type Path = "direct" | "bus" | "base";

async function connectClient(url: string, name: string): Promise<Client> {
  const client = new Client({ name, version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  return client;
}

async function closeClient(client: Client): Promise<void> {
  const transport = client.transport as StreamableHTTPClientTransport | undefined;
  await transport?.terminateSession().catch(() => undefined);
  await client.close().catch(() => undefined);
}

/** One echo call; throws unless the answer is the echoed text. */
async function echo(client: Client): Promise<void> {
  const result = await client.callTool({ name: "echo", arguments: { text: "x" } });
  const first = (result.content as Array<{ type?: string; text?: string }> | undefined)?.[0];
  if (result.isError || first?.type !== "text" || first.text !== "x") {
    throw new BenchError(`unexpected echo result: ${JSON.stringify(result).slice(0, 300)}`);
  }
}

interface Sample {
  calls: number;
  seconds: number;
  latencies: number[];
  /** CPU ms each process spent during the sample. */
  cpu: CpuSnapshot;
}

/** Runs `clients.length` workers, each calling in a loop, until `calls` calls or `seconds` pass. */
async function drive(clients: Client[], stop: { calls: number } | { seconds: number }, record: boolean): Promise<Sample> {
  const latencies: number[] = [];
  let started = 0;
  const cpuBefore = cpuSnapshot();
  const begin = performance.now();
  const end = "seconds" in stop ? begin + stop.seconds * 1000 : Number.POSITIVE_INFINITY;
  const limit = "calls" in stop ? stop.calls : Number.POSITIVE_INFINITY;
  const worker = async (client: Client) => {
    while (started < limit && performance.now() < end) {
      started++;
      const t0 = performance.now();
      await echo(client);
      if (record) latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(clients.map(worker));
  const seconds = (performance.now() - begin) / 1000;
  return { calls: started, seconds, latencies, cpu: cpuDelta(cpuBefore, cpuSnapshot()) };
}

interface Stats {
  calls: number;
  seconds: number;
  rate: number;
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  /** CPU ms per call, by the role the process plays on this path. */
  cpuPerCall: Partial<Record<Proc, number>>;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length) - 1; // nearest rank
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))]!;
}

function stats(path: Path, samples: Sample[]): Stats {
  const calls = samples.reduce((n, s) => n + s.calls, 0);
  const seconds = samples.reduce((n, s) => n + s.seconds, 0);
  const sorted = Float64Array.from(samples.flatMap((s) => s.latencies)).sort();
  const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
  const cpuPerCall: Partial<Record<Proc, number>> = {};
  for (const proc of PROCS) {
    const name = processFor(path, proc);
    if (samples.every((s) => s.cpu[name] !== undefined)) cpuPerCall[proc] = samples.reduce((n, s) => n + s.cpu[name]!, 0) / calls;
  }
  return { calls, seconds, rate: calls / seconds, p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99), mean, cpuPerCall };
}

// ---------------------------------------------------------------------------------------------------
// Setup

async function waitForEcho(gatewayUrl: string): Promise<void> {
  const deadline = Date.now() + CATALOG_TIMEOUT_MS;
  const client = await connectClient(gatewayUrl, "bench-probe");
  try {
    for (;;) {
      const { tools } = await client.listTools(undefined, { cacheMode: "bypass" });
      if (tools.some((t) => t.name === "echo")) return;
      if (Date.now() > deadline) {
        throw new BenchError(`the gateway did not list the echo tool within ${CATALOG_TIMEOUT_MS} ms (tools: ${tools.map((t) => t.name).join(", ") || "none"})`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await closeClient(client);
  }
}

// ---------------------------------------------------------------------------------------------------
// Output

const fmt = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : "n/a");

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

// ---------------------------------------------------------------------------------------------------
// Main

/** Starts wrap and gateway of one build (`dmcpJs`) on `natsUrl`; resolves with the gateway's MCP URL. */
async function startBusPath(prefix: string, dmcpJs: string, natsUrl: string, upstreamUrl: string, nodeFlags: string[]): Promise<string> {
  // wrap prints nothing at warn level once it serves; the gateway's catalog tells when it is up.
  await spawnNode(`${prefix}wrap`, [dmcpJs, "wrap", "--name", "bench", "--nats", natsUrl, "--url", upstreamUrl, "--log-level", "warn"], undefined, nodeFlags);
  const gateway = await spawnNode(
    `${prefix}gateway`,
    [dmcpJs, "gateway", "--nats", natsUrl, "--http", "0", "--log-level", "warn", ...(process.env["BENCH_GATEWAY_ARGS"] ?? "").split(/\s+/).filter(Boolean)],
    /dmcp gateway: serving MCP at (http:\/\/\S+)/,
    nodeFlags,
  );
  const gatewayUrl = gateway.match![1]!;
  await waitForEcho(gatewayUrl);
  return gatewayUrl;
}

/** Round `round`'s order of the paths: rotated and, every other round, reversed, so no path is always first or last. */
function roundOrder(paths: Path[], round: number): Path[] {
  const rotated = [...paths.slice(round % paths.length), ...paths.slice(0, round % paths.length)];
  return Math.floor(round / paths.length) % 2 === 0 ? rotated : rotated.reverse();
}

async function main(): Promise<void> {
  const seconds = envNumber("BENCH_SECONDS", 5, { integer: false, min: 0.1 });
  const rounds = envNumber("BENCH_ROUNDS", 2);
  const concurrency = envNumber("BENCH_CONCURRENCY", 16);
  const warmup = envNumber("BENCH_WARMUP", 300, { min: 0 });
  const serialCalls = envNumber("BENCH_SERIAL_CALLS", 1000);
  const profDir = process.env["BENCH_CPU_PROF"] ? resolve(process.env["BENCH_CPU_PROF"]) : undefined;
  const baselineDir = process.env["BENCH_BASELINE"] ? resolve(process.env["BENCH_BASELINE"]) : undefined;
  verbose = process.env["BENCH_VERBOSE"] === "1";

  for (const file of [RAW_SERVER_JS, DMCP_JS]) {
    if (!existsSync(file)) throw new BenchError(`${file} is missing: run \`npm run build\` first`);
  }
  const baseDmcpJs = baselineDir === undefined ? undefined : baselineDmcpJs(baselineDir);
  let nodeFlags: string[] = [];
  if (profDir) {
    mkdirSync(profDir, { recursive: true });
    nodeFlags = ["--cpu-prof", `--cpu-prof-dir=${profDir}`];
  }

  const cpuList = cpus();
  console.log("dmcp-gateway bench: tools/call echo over Streamable HTTP, direct vs gateway + NATS + wrap");
  console.log(
    `node ${process.version} (${process.platform}/${process.arch}), ${cpuList.length} CPU(s): ${cpuList[0]?.model.trim() ?? "unknown"}, ` +
      `${(totalmem() / 2 ** 30).toFixed(1)} GiB, load avg ${loadavg().map((l) => l.toFixed(2)).join(" ")}`,
  );
  console.log(
    `concurrency ${concurrency} (one client session each), ${seconds} s measured per path over ${rounds} alternating round(s), ` +
      `${warmup} warm-up calls per path; serial: ${serialCalls} calls per path` +
      (profDir ? `; CPU profiles → ${profDir}` : ""),
  );
  if (baseDmcpJs) console.log(`baseline ("base"): gateway + NATS + wrap of ${baseDmcpJs}`);

  // 1. The bus and the processes.
  nats = await startNatsServer({ host: "127.0.0.1", port: -1, jetstream: true });
  const upstream = await spawnNode("upstream", [RAW_SERVER_JS, "--http", "0", "--name", "bench"], /^LISTENING (\d+)$/, nodeFlags);
  const upstreamUrl = `http://127.0.0.1:${upstream.match![1]}/mcp`;
  const urls: Partial<Record<Path, string>> = { direct: upstreamUrl };
  urls.bus = await startBusPath("", DMCP_JS, nats.url, upstreamUrl, nodeFlags);
  console.log(`nats ${nats.url}; upstream ${upstreamUrl}; gateway ${urls.bus}`);
  if (baseDmcpJs) {
    // Its own nats-server: the two executors serve the same name and must not answer each other's gateway.
    baseNats = await startNatsServer({ host: "127.0.0.1", port: -1, jetstream: true });
    urls.base = await startBusPath("base ", baseDmcpJs, baseNats.url, upstreamUrl, nodeFlags);
    console.log(`base: nats ${baseNats.url}; gateway ${urls.base}`);
  }
  if (profDir) {
    console.log(`CPU profile files by pid: ${children.map((c) => `${c.name} ${c.proc.pid}`).join(", ")}`);
  }
  console.log("");

  const paths = Object.keys(urls) as Path[];

  // 2. Sessions: `concurrency` per path; the serial measurement reuses the first of each.
  const pools = {} as Record<Path, Client[]>;
  for (const path of paths) {
    pools[path] = await Promise.all(Array.from({ length: concurrency }, (_, i) => connectClient(urls[path]!, `bench-${path}-${i}`)));
  }

  // 3. Warm-up (JIT, connection pools, the executor's upstream session).
  for (const path of paths) await drive(pools[path], { calls: warmup }, false);

  // 4. Concurrent measurement, changing the order each round.
  const samples = Object.fromEntries(paths.map((p) => [p, [] as Sample[]])) as Record<Path, Sample[]>;
  for (let round = 0; round < rounds; round++) {
    for (const path of roundOrder(paths, round)) {
      const sample = await drive(pools[path], { seconds: seconds / rounds }, true);
      samples[path].push(sample);
      process.stderr.write(`  round ${round + 1}/${rounds} ${path.padEnd(6)} ${sample.calls} calls in ${fmt(sample.seconds)} s\n`);
    }
  }
  const concurrent = Object.fromEntries(paths.map((p) => [p, stats(p, samples[p])])) as Record<Path, Stats>;

  // 5. Serial (concurrency 1): latency without queueing. Same alternation.
  const serialSamples = Object.fromEntries(paths.map((p) => [p, [] as Sample[]])) as Record<Path, Sample[]>;
  for (let round = 0; round < rounds; round++) {
    for (const path of roundOrder(paths, round)) {
      const one = [pools[path][0]!];
      if (round === 0) await drive(one, { calls: Math.min(200, serialCalls) }, false);
      serialSamples[path].push(await drive(one, { calls: Math.ceil(serialCalls / rounds) }, true));
    }
  }
  const serial = Object.fromEntries(paths.map((p) => [p, stats(p, serialSamples[p])])) as Record<Path, Stats>;

  await Promise.all(paths.flatMap((path) => pools[path].map(closeClient)));

  // 6. Report.
  const row = (label: string, s: Stats) => [label, String(s.calls), fmt(s.rate, 0), fmt(s.p50), fmt(s.p90), fmt(s.p99), fmt(s.mean)];
  const ratioRow = (label: string, a: Stats, b: Stats) => [label, "", `${fmt((a.rate / b.rate) * 100, 1)} %`, `×${fmt(a.p50 / b.p50)}`, `×${fmt(a.p90 / b.p90)}`, `×${fmt(a.p99 / b.p99)}`, `×${fmt(a.mean / b.mean)}`];
  const latencyTable = (set: Record<Path, Stats>) => {
    const rows = paths.map((p) => row(p, set[p]));
    rows.push(ratioRow("bus/direct", set.bus, set.direct));
    if (set.base) rows.push(ratioRow("base/direct", set.base, set.direct), ratioRow("bus/base", set.bus, set.base));
    return table(["path", "calls", "calls/s", "p50 ms", "p90 ms", "p99 ms", "mean ms"], rows);
  };
  console.log(`\ntools/call at concurrency ${concurrency}:`);
  console.log(latencyTable(concurrent));
  console.log(`\ntools/call at concurrency 1 (single client, no queueing):`);
  console.log(latencyTable(serial));

  if (clockTicks !== undefined) {
    const total = (s: Stats) => PROCS.reduce<number>((n, proc) => n + (s.cpuPerCall[proc] ?? 0), 0);
    const cpuRow = (label: string, s: Stats) => {
      const values = PROCS.map((proc) => s.cpuPerCall[proc]);
      return [label, ...values.map((v) => (v === undefined ? "n/a" : fmt(v, 3))), fmt(total(s), 3), `${fmt((total(s) * s.rate) / 10, 0)} %`];
    };
    const cpuRatioRow = (label: string, a: Stats, b: Stats) => {
      const ratio = (x: number | undefined, y: number | undefined) => (x === undefined || y === undefined ? "n/a" : `×${fmt(x / y)}`);
      return [label, ...PROCS.map((proc) => ratio(a.cpuPerCall[proc], b.cpuPerCall[proc])), ratio(total(a), total(b)), ""];
    };
    const rows: string[][] = [];
    for (const [set, level] of [[concurrent, `c=${concurrency}`], [serial, "c=1"]] as const) {
      for (const path of paths) rows.push(cpuRow(`${path} ${level}`, set[path]));
      if (set.base) rows.push(cpuRatioRow(`bus/base ${level}`, set.bus, set.base));
    }
    console.log(`\nCPU time per call in ms, by process (/proc; ${cpuList.length} CPU(s) = ${cpuList.length * 100} % available):`);
    console.log(table(["path", ...PROCS, "total", "CPU busy"], rows));
  }

  const addedP50 = concurrent.bus.p50 - concurrent.direct.p50;
  const addedSerialP50 = serial.bus.p50 - serial.direct.p50;
  const ratio = concurrent.bus.rate / concurrent.direct.rate;
  const met = (ok: boolean) => (ok ? "MET" : "NOT MET");
  console.log("");
  console.log(`added p50 (concurrency ${concurrency}): ${fmt(addedP50, 3)} ms (target ≤ ${TARGET_ADDED_P50_MS} ms): ${met(addedP50 <= TARGET_ADDED_P50_MS)}`);
  console.log(`added p50 (concurrency 1):  ${fmt(addedSerialP50, 3)} ms (target ≤ ${TARGET_ADDED_P50_MS} ms): ${met(addedSerialP50 <= TARGET_ADDED_P50_MS)}`);
  console.log(`throughput ratio (concurrency ${concurrency}): ${fmt(ratio * 100, 1)} % (target ≥ ${TARGET_THROUGHPUT_RATIO * 100} %): ${met(ratio >= TARGET_THROUGHPUT_RATIO)}`);
  console.log(`node ${process.version}, ${cpuList.length} CPU(s); all processes (client, upstream, nats, wrap, gateway${baseDmcpJs ? ", and the baseline's" : ""}) share them`);
}

let interrupted = false;
const onSignal = (signal: NodeJS.Signals) => {
  interrupted = true;
  process.stderr.write(`bench: ${signal}, cleaning up\n`);
  void cleanup().finally(() => process.exit(130));
};
process.once("SIGINT", onSignal);
process.once("SIGTERM", onSignal);

Promise.race([main(), childDied]).then(
  async () => {
    await cleanup();
    process.exit(0);
  },
  async (err: unknown) => {
    if (interrupted) return; // calls fail while the signal handler tears everything down; it exits
    const detail = err instanceof Error ? (verbose || !(err instanceof BenchError || "code" in err) ? (err.stack ?? err.message) : err.message) : String(err);
    process.stderr.write(`bench failed: ${detail}\n`);
    await cleanup().catch(() => undefined);
    process.exit(1);
  },
);

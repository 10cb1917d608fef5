/**
 * `npm run bench [-- compare|memory|scale|cache|all]`: what a tools/call costs through dmcp and through the
 * alternatives, side by side in one run, and the targets of issue 14 against it.
 *
 * compare (the default): one upstream (the conformance fixture over Streamable HTTP, `test_simple_text`)
 * reached through each chain, all real processes on loopback:
 *
 *   direct        client ──HTTP──▶ upstream
 *   dmcp          client ──HTTP──▶ dmcp gateway ──NATS──▶ dmcp wrap --url ──HTTP──▶ upstream
 *   supergateway  client ──HTTP──▶ supergateway ──stdio──▶ supergateway ──HTTP──▶ upstream
 *   mcp-proxy     client ──HTTP──▶ mcp-proxy ──stdio──▶ mcp-remote ──HTTP──▶ upstream
 *   tunnel        client ──HTTP──▶ tunnel-in ──NATS──▶ tunnel-out ──HTTP──▶ upstream   (bench/tunnel: bytes, no MCP)
 *   base          as dmcp, through the BENCH_BASELINE build (only with it)
 *   dmcp-signed   as dmcp, every message signed and checked (only in BENCH_CHAINS)
 *   dmcp-durable  as dmcp, with wrap --delivery durable (only in BENCH_CHAINS)
 *
 * The clients live in this process: N workers calling in a loop, by default all through one SDK Client
 * session per chain, so that supergateway (one stdio child per session) runs as the 2 processes. The
 * chains are measured in alternating rounds (rotated, and reversed every other round) so that drift
 * (thermal, page cache, JIT, other load) favours none. For every chain: calls/s at concurrency N,
 * p50/p99 at N and at 1, CPU per call of each of its processes (utime + stime from /proc before and
 * after each round; client and upstream shown, never counted in a chain's total), messages through
 * its nats-server, and ratios against direct, the tunnel and supergateway.
 *
 * memory: the gateway's RSS and V8 heap with many calls in flight on a slow tool, and after them
 * (as they run, and after full GCs that a probe preloaded into the gateway runs: bench/memory.ts).
 * scale: calls/s of K replicas of an I/O-bound tool, for each K.
 * cache: a cached read's latency against ping and an uncached call, and the upstream requests of
 * 100 concurrent readers of one key (bench/cache.ts).
 *
 * Targets are reported, never enforced: a bench is a measurement, not a test. The exit code is
 * non-zero only when the bench itself breaks (a process does not start, a call fails).
 *
 * Environment (compare):
 *   BENCH_CHAINS       chains to compare, in order (default direct,dmcp,supergateway,mcp-proxy,tunnel;
 *                      base is added when BENCH_BASELINE is set)
 *   BENCH_UPSTREAM     conformance (default: the conformance fixture, test_simple_text) or raw (the raw
 *                      fixture's echo, as the bench measured before)
 *   BENCH_SECONDS      measured seconds at concurrency N per chain, split over the rounds (default 5)
 *   BENCH_ROUNDS       alternating rounds (default 2)
 *   BENCH_CONCURRENCY  N: workers calling at once per chain (default 16)
 *   BENCH_SESSIONS     client sessions per chain, the workers sharing them in turn (default 1; N gives each
 *                      worker its own, as the bench did before: supergateway then runs N stdio children)
 *   BENCH_WARMUP       warm-up calls per chain before measuring (default 300)
 *   BENCH_SERIAL_CALLS calls at concurrency 1 per chain, split over the rounds (default 1000)
 *   BENCH_IDLE_SECONDS seconds with no call after the warm-up, over which each chain's nats-server counts
 *                      the messages of its own (heartbeats, refreshes), taken off the rounds' counts as a
 *                      rate to give the calls' own messages per call (default 20; 0: not measured)
 *   BENCH_CPU_PROF     a directory: run the dmcp gateway and wrap, the tunnel and the upstream with
 *                      --cpu-prof into it (the bench prints which pid is which)
 *   BENCH_GATEWAY_ARGS extra `dmcp gateway` flags, e.g. "--json-responses"
 *   BENCH_BASELINE     another build of this project (its checkout, with dist/ built): adds the chain
 *                      "base" through that build's gateway and wrap (own nats-server, same upstream),
 *                      measured in the same rounds, with ratios against it, so that a change is
 *                      compared with its baseline under the same machine load
 * Environment (memory, also run by the default command when BENCH_MEMORY=1):
 *   BENCH_MEMORY_CALLS     calls in flight at once (default 1000)
 *   BENCH_MEMORY_SESSIONS  client sessions they are spread over (default 100)
 *   BENCH_MEMORY_SLEEP_MS  how long each call sleeps (default 15000; enough for all to be in flight)
 *   BENCH_MEMORY_SETTLE_S  seconds without calls before the "after" figure (default 60: V8 gives the
 *                          memory back when its memory reducer runs, 15 to 60 s after the calls in
 *                          the runs of docs/performance.md, Round 5); read on the way at 1, 5, 15, 30 s
 *   BENCH_MEMORY_SNAPSHOTS a directory: heap snapshots of the gateway at idle and after, to compare by
 *                          constructor (writing one grows RSS: the figures after it mean nothing)
 *   BENCH_BASELINE         as above: that build's gateway measured first, on the same stack
 * Environment (scale, also run by the default command when BENCH_SCALE=1):
 *   BENCH_SCALE_REPLICAS     values of K (default 1,2,4,8)
 *   BENCH_SCALE_CONCURRENCY  client sessions calling in a loop (default 32)
 *   BENCH_SCALE_SLEEP_MS     how long the tool sleeps (default 20)
 *   BENCH_SCALE_SECONDS      measured seconds per K (default 5)
 * Environment (cache, also run by the default command when BENCH_CACHE=1):
 *   BENCH_CACHE_CALLS    calls at concurrency 1 per measured kind (default 2000)
 *   BENCH_CACHE_READERS  client sessions reading one key at once (default 100)
 *   BENCH_BASELINE       as above: the same stack through that build, measured alongside (p50s and
 *                        gateway CPU per call by kind)
 * Always:
 *   BENCH_VERBOSE=1    echo the children's stderr
 *   BENCH_MARKDOWN=1   print the tables as Markdown (as in docs/performance.md)
 */
import { mkdirSync } from "node:fs";
import { loadavg } from "node:os";
import { resolve } from "node:path";
import { CHAIN_NAMES, startUpstream, UPSTREAM_KINDS, type ChainName } from "./chains/index.js";
import { runCompare } from "./compare/run.js";
import { baselineDmcpJs, BenchError, DMCP_JS, envFlag, envIntegers, envList, envNumber, requireBuilt } from "./lib/config.js";
import { describeMachine } from "./lib/machine.js";
import { childDied, cleanup, setVerbose } from "./lib/processes.js";
import { setMarkdown } from "./lib/stats.js";
import { formatTargets, type TargetLine } from "./lib/targets.js";
import { runCache } from "./cache.js";
import { runMemory } from "./memory.js";
import { runScale } from "./scale.js";

const COMMANDS = ["compare", "memory", "scale", "cache", "all"] as const;
type Command = (typeof COMMANDS)[number];
const DEFAULT_CHAINS: ChainName[] = ["direct", "dmcp", "supergateway", "mcp-proxy", "tunnel"];

function command(): Command {
  const given = process.argv[2] ?? "compare";
  if (!(COMMANDS as readonly string[]).includes(given)) throw new BenchError(`unknown sub-command "${given}" (one of ${COMMANDS.join(", ")})`);
  return given as Command;
}

async function compare(): Promise<TargetLine[]> {
  const profDir = process.env.BENCH_CPU_PROF ? resolve(process.env.BENCH_CPU_PROF) : undefined;
  const baselineDir = process.env.BENCH_BASELINE ? resolve(process.env.BENCH_BASELINE) : undefined;
  const chains = envList("BENCH_CHAINS", DEFAULT_CHAINS, CHAIN_NAMES);
  if (baselineDir !== undefined && !chains.includes("base")) chains.push("base");
  if (baselineDir === undefined && chains.includes("base")) throw new BenchError("BENCH_CHAINS has base: set BENCH_BASELINE to the checkout to compare with");
  const [upstreamKind] = envList("BENCH_UPSTREAM", ["conformance"], UPSTREAM_KINDS);
  let nodeFlags: string[] = [];
  if (profDir) {
    mkdirSync(profDir, { recursive: true });
    nodeFlags = ["--cpu-prof", `--cpu-prof-dir=${profDir}`];
  }
  const concurrency = envNumber("BENCH_CONCURRENCY", 16);
  const upstream = await startUpstream(upstreamKind ?? "conformance", nodeFlags);
  return runCompare(upstream, {
    chains,
    concurrency,
    sessions: Math.min(concurrency, envNumber("BENCH_SESSIONS", 1)),
    seconds: envNumber("BENCH_SECONDS", 5, { integer: false, min: 0.1 }),
    rounds: envNumber("BENCH_ROUNDS", 2),
    warmup: envNumber("BENCH_WARMUP", 300, { min: 0 }),
    idleSeconds: envNumber("BENCH_IDLE_SECONDS", 20, { integer: false, min: 0 }),
    serialCalls: envNumber("BENCH_SERIAL_CALLS", 1000),
    nodeFlags,
    gatewayArgs: (process.env.BENCH_GATEWAY_ARGS ?? "").split(/\s+/).filter(Boolean),
    baselineDir,
  });
}

const memory = () =>
  runMemory({
    calls: envNumber("BENCH_MEMORY_CALLS", 1000),
    sessions: envNumber("BENCH_MEMORY_SESSIONS", 100),
    sleepMs: envNumber("BENCH_MEMORY_SLEEP_MS", 15_000),
    settleSeconds: envNumber("BENCH_MEMORY_SETTLE_S", 60, { integer: false, min: 0 }),
    baselineDmcpJs: process.env.BENCH_BASELINE ? baselineDmcpJs(resolve(process.env.BENCH_BASELINE)) : undefined,
  });

const scale = () =>
  runScale({
    replicas: envIntegers("BENCH_SCALE_REPLICAS", [1, 2, 4, 8]),
    concurrency: envNumber("BENCH_SCALE_CONCURRENCY", 32),
    sleepMs: envNumber("BENCH_SCALE_SLEEP_MS", 20, { min: 1 }),
    seconds: envNumber("BENCH_SCALE_SECONDS", 5, { integer: false, min: 0.1 }),
  });

const cache = () =>
  runCache({
    serialCalls: envNumber("BENCH_CACHE_CALLS", 2000, { min: 2 }),
    readers: envNumber("BENCH_CACHE_READERS", 100),
    baselineDmcpJs: process.env.BENCH_BASELINE ? baselineDmcpJs(resolve(process.env.BENCH_BASELINE)) : undefined,
  });

async function main(): Promise<void> {
  const which = command();
  setVerbose(envFlag("BENCH_VERBOSE"));
  setMarkdown(envFlag("BENCH_MARKDOWN"));
  requireBuilt(DMCP_JS);
  console.log(`dmcp-gateway bench (${which}), ${new Date().toISOString()}`);
  console.log(describeMachine());
  const targets: TargetLine[] = [];
  if (which === "compare" || which === "all") targets.push(...(await compare()));
  if (which === "memory" || which === "all" || (which === "compare" && envFlag("BENCH_MEMORY"))) targets.push(...(await memory()));
  if (which === "scale" || which === "all" || (which === "compare" && envFlag("BENCH_SCALE"))) targets.push(...(await scale()));
  if (which === "cache" || which === "all" || (which === "compare" && envFlag("BENCH_CACHE"))) targets.push(...(await cache()));
  console.log("\ntargets (issue 14 unless marked; reported, not enforced):");
  console.log(formatTargets(targets));
  console.log(
    `\nload average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")} (1, 5, 15 min) at the end`,
  );
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
    const verbose = envFlag("BENCH_VERBOSE");
    const detail = err instanceof Error ? (verbose || !(err instanceof BenchError || "code" in err) ? (err.stack ?? err.message) : err.message) : String(err);
    // fetch's own message says nothing ("fetch failed"): what failed is in its cause.
    const cause = err instanceof Error && err.cause instanceof Error ? `\ncaused by: ${err.cause.message}` : "";
    process.stderr.write(`bench failed: ${detail}${cause}\n`);
    await cleanup().catch(() => undefined);
    process.exit(1);
  },
);

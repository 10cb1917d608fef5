/**
 * The comparison (`npm run bench`, sub-command `compare`): the same tools/call through every chain of
 * BENCH_CHAINS to one upstream, side by side in one run.
 */
import type { Client } from "@modelcontextprotocol/client";
import { startChain, type Chain, type ChainName, type ChainSettings, type Upstream } from "../chains/index.js";
import { closeClient, connectPool, drive } from "../lib/mcp-client.js";
import { startedChildren } from "../lib/processes.js";
import type { TargetLine } from "../lib/targets.js";
import { idleMessageRates } from "./background.js";
import { measure, type MeasureSettings } from "./measure.js";
import { figuresTable, messagesTable, processTable, ratiosTable, type Results } from "./report.js";
import { summarize } from "./summary.js";
import { compareTargets } from "./targets.js";

export interface CompareSettings extends MeasureSettings, ChainSettings {
  chains: ChainName[];
  concurrency: number;
  /** Client sessions per chain, shared by the workers in turn (one each when equal to the concurrency). */
  sessions: number;
  warmup: number;
  /** Seconds with no call, after the warm-up, over which each chain's nats-server traffic of its own is counted. */
  idleSeconds: number;
}

export async function runCompare(upstream: Upstream, settings: CompareSettings): Promise<TargetLine[]> {
  const { concurrency } = settings;
  console.log(
    `\n== compare: tools/call ${upstream.tool.name} through each chain to ${upstream.description}\n` +
      `${concurrency} workers calling in a loop over ${settings.sessions} client session(s) per chain (SDK Client over Streamable HTTP), ${settings.seconds} s at c=${concurrency} and ${settings.serialCalls} calls at c=1 per chain, ` +
      `over ${settings.rounds} alternating round(s); ${settings.warmup} warm-up calls per chain first`,
  );
  const chains: Chain[] = [];
  for (const name of settings.chains) {
    const chain = await startChain(name, upstream, settings);
    chains.push(chain);
    console.log(`  ${chain.name.padEnd(12)} ${chain.path}${chain.software ? ` (${chain.software})` : ""}`);
  }
  if (settings.nodeFlags.length > 0)
    console.log(
      `  CPU profile files by pid: ${startedChildren()
        .map((c) => `${c.name} ${c.proc.pid}`)
        .join(", ")}`,
    );

  const sessions: Record<string, Client[]> = {};
  /** The client each worker calls through. */
  const pools: Record<string, Client[]> = {};
  for (const chain of chains) {
    sessions[chain.name] = await connectPool(chain.url, settings.sessions, chain.name);
    pools[chain.name] = Array.from({ length: concurrency }, (_, i) => sessions[chain.name]![i % settings.sessions]!);
  }
  // Warm-up: JIT, connection pools, upstream sessions.
  for (const chain of chains) await drive(pools[chain.name]!, upstream.tool, { calls: settings.warmup }, false);
  const idleRates = settings.idleSeconds > 0 ? await idleMessageRates(chains, settings.idleSeconds) : {};

  const samples = await measure(chains, pools, upstream.tool, upstream.child.proc.pid, settings);
  await Promise.all(Object.values(sessions).flatMap((pool) => pool.map(closeClient)));

  const results: Results = { chains, concurrency, idleRates, concurrent: {}, serial: {} };
  for (const chain of chains) {
    results.concurrent[chain.name] = summarize(chain, samples.concurrent[chain.name]!, idleRates[chain.name]);
    results.serial[chain.name] = summarize(chain, samples.serial[chain.name]!, idleRates[chain.name]);
  }
  console.log(`\ntools/call per chain (CPU/call: the chain's own processes, client and upstream not counted; NATS msgs: through the chain's nats-server):`);
  console.log(figuresTable(results));
  console.log(`\nratios (÷: this chain's figure divided by the other's; −: p50 at c=1 minus the other's):`);
  console.log(ratiosTable(results));
  console.log(`\nCPU time per call by process (/proc utime+stime over the measured rounds; client and upstream in parentheses):`);
  console.log(processTable(results));
  const messages = messagesTable(results);
  if (messages !== undefined) {
    console.log(
      `\nNATS messages through each chain's nats-server (/varz): with no call, over ${settings.idleSeconds} s after the warm-up; per call, all that the rounds counted, and what is left without the idle rate over their time (the calls' own):`,
    );
    console.log(messages);
  }
  return compareTargets(results);
}

/**
 * The comparison's measurement: every chain in alternating rounds (rotated and, every other round,
 * reversed, so that no chain is always first or last and drift favours none), first at concurrency N
 * for a time, then at concurrency 1 for a number of calls; CPU, latencies and NATS messages per round.
 */
import { performance } from "node:perf_hooks";
import type { Client } from "@modelcontextprotocol/client";
import type { Chain, ChainName } from "../chains/index.js";
import { drive, type ToolCall } from "../lib/mcp-client.js";
import { countedBetween, type MessageCounts } from "../lib/nats-monitor.js";
import { fmt } from "../lib/stats.js";
import { cpuSpent, snapshot } from "./cpu.js";

export interface Sample {
  calls: number;
  seconds: number;
  latencies: number[];
  /** CPU ms by process name (the chain's, "client" and "upstream"). */
  cpu: Record<string, number | undefined>;
  /** Messages through the chain's nats-server, and the seconds between the two counts they come from. */
  messages?: MessageCounts & { seconds: number };
}

export type Samples = Record<string, Sample[]>;

export interface MeasureSettings {
  rounds: number;
  /** Seconds at concurrency N per chain, over all rounds. */
  seconds: number;
  /** Calls at concurrency 1 per chain, over all rounds. */
  serialCalls: number;
}

/** Round `round`'s order of the chains. */
export function roundOrder<T>(items: T[], round: number): T[] {
  const shift = round % items.length;
  const rotated = [...items.slice(shift), ...items.slice(0, shift)];
  return Math.floor(round / items.length) % 2 === 0 ? rotated : rotated.reverse();
}

async function measured(chain: Chain, upstreamPid: number | undefined, run: () => Promise<{ calls: number; seconds: number; latencies: number[] }>): Promise<Sample> {
  const messagesBefore = await chain.nats?.counts();
  const countedFrom = performance.now();
  const before = snapshot(chain, upstreamPid);
  const driven = await run();
  const cpu = cpuSpent(before, snapshot(chain, upstreamPid));
  const messagesAfter = await chain.nats?.counts();
  const seconds = (performance.now() - countedFrom) / 1000;
  const messages = messagesBefore && messagesAfter ? { ...countedBetween(messagesBefore, messagesAfter), seconds } : undefined;
  return { ...driven, cpu, ...(messages ? { messages } : {}) };
}

export async function measure(
  chains: Chain[],
  pools: Record<string, Client[]>,
  tool: ToolCall,
  upstreamPid: number | undefined,
  settings: MeasureSettings,
): Promise<{ concurrent: Samples; serial: Samples }> {
  const names = chains.map((c) => c.name);
  const byName = new Map<ChainName, Chain>(chains.map((c) => [c.name, c]));
  const concurrent: Samples = Object.fromEntries(names.map((n) => [n, []]));
  const serial: Samples = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = 0; round < settings.rounds; round++) {
    for (const name of roundOrder(names, round)) {
      const sample = await measured(byName.get(name)!, upstreamPid, () => drive(pools[name]!, tool, { seconds: settings.seconds / settings.rounds }, true));
      concurrent[name]!.push(sample);
      process.stderr.write(`  round ${round + 1}/${settings.rounds} c=${pools[name]!.length} ${name.padEnd(12)} ${sample.calls} calls in ${fmt(sample.seconds)} s\n`);
    }
  }
  for (let round = 0; round < settings.rounds; round++) {
    for (const name of roundOrder(names, round)) {
      const one = [pools[name]![0]!];
      if (round === 0) await drive(one, tool, { calls: Math.min(200, settings.serialCalls) }, false);
      const sample = await measured(byName.get(name)!, upstreamPid, () => drive(one, tool, { calls: Math.ceil(settings.serialCalls / settings.rounds) }, true));
      serial[name]!.push(sample);
      process.stderr.write(`  round ${round + 1}/${settings.rounds} c=1 ${name.padEnd(12)} ${sample.calls} calls in ${fmt(sample.seconds)} s\n`);
    }
  }
  return { concurrent, serial };
}

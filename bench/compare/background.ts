/**
 * The messages a chain's nats-server carries with no call at all (heartbeats, registry refreshes,
 * the checks of watches and follows), as rates: what the measured rounds count beside the calls'
 * own messages. All chains are read over the same idle window.
 */
import { performance } from "node:perf_hooks";
import type { Chain, ChainName } from "../chains/index.js";
import { countedBetween, type MessageCounts } from "../lib/nats-monitor.js";

/** Messages per second published to (in), delivered by (out) and stored by (by stream) a chain's nats-server while idle. */
export type MessageRates = MessageCounts;

export async function idleMessageRates(chains: Chain[], seconds: number): Promise<Partial<Record<ChainName, MessageRates>>> {
  const monitored = chains.filter((chain) => chain.nats !== undefined);
  const read = () => Promise.all(monitored.map(async (chain) => ({ counts: await chain.nats!.counts(), at: performance.now() })));
  const before = await read();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const after = await read();
  const rates: Partial<Record<ChainName, MessageRates>> = {};
  monitored.forEach((chain, i) => {
    const [from, to] = [before[i]!, after[i]!];
    rates[chain.name] = perUnit(countedBetween(from.counts, to.counts), (to.at - from.at) / 1000);
  });
  return rates;
}

/** Counts divided by `unit` (seconds for a rate, calls for a figure per call). */
export function perUnit(counts: MessageCounts, unit: number): MessageCounts {
  const stored: Record<string, number> = {};
  for (const [stream, n] of Object.entries(counts.stored)) stored[stream] = n / unit;
  return { in: counts.in / unit, out: counts.out / unit, stored };
}

/** `counts` less `rates` over `seconds`: what the counts hold beyond the idle traffic. */
export function beyondIdle(counts: MessageCounts, rates: MessageRates, seconds: number): MessageCounts {
  const stored: Record<string, number> = {};
  for (const [stream, n] of Object.entries(counts.stored)) stored[stream] = n - (rates.stored[stream] ?? 0) * seconds;
  return { in: counts.in - rates.in * seconds, out: counts.out - rates.out * seconds, stored };
}

/** Figures of one chain at one concurrency, from its rounds' samples. */
import type { Chain } from "../chains/index.js";
import { latency, type Latency } from "../lib/stats.js";
import type { MessageCounts } from "../lib/nats-monitor.js";
import { beyondIdle, perUnit, type MessageRates } from "./background.js";
import type { Sample } from "./measure.js";

export interface ChainStats {
  calls: number;
  /** Calls per second over all rounds. */
  rate: number;
  /** Calls per second of each round. */
  roundRates: number[];
  latency: Latency;
  /** CPU ms per call by process name: the chain's processes, "client" and "upstream". */
  cpuPerCall: Record<string, number | undefined>;
  /** CPU ms per call of the chain's own processes together (0 for direct; undefined without /proc). */
  chainCpuPerCall: number | undefined;
  /** CPU ms per call of each round, the chain's processes together. */
  roundChainCpu: Array<number | undefined>;
  /** Messages published to (in), delivered by (out) and stored by the chain's nats-server, per call: all it counted. */
  messagesPerCall?: MessageCounts;
  /** The same without the chain's idle traffic over the rounds (its idle rate × their time): the calls' own. */
  callMessagesPerCall?: MessageCounts;
}

const chainCpu = (chain: Chain, cpu: Record<string, number | undefined>): number | undefined =>
  chain.processes.reduce<number | undefined>((sum, proc) => (sum === undefined || cpu[proc.name] === undefined ? undefined : sum + cpu[proc.name]!), 0);

export function summarize(chain: Chain, samples: Sample[], idleRates: MessageRates | undefined): ChainStats {
  const calls = samples.reduce((n, s) => n + s.calls, 0);
  const seconds = samples.reduce((n, s) => n + s.seconds, 0);
  const names = new Set(samples.flatMap((s) => Object.keys(s.cpu)));
  const cpuPerCall: Record<string, number | undefined> = {};
  for (const name of names) {
    cpuPerCall[name] = samples.every((s) => s.cpu[name] !== undefined) ? samples.reduce((n, s) => n + s.cpu[name]!, 0) / calls : undefined;
  }
  const stats: ChainStats = {
    calls,
    rate: calls / seconds,
    roundRates: samples.map((s) => s.calls / s.seconds),
    latency: latency(samples.flatMap((s) => s.latencies)),
    cpuPerCall,
    chainCpuPerCall: chainCpu(chain, cpuPerCall),
    roundChainCpu: samples.map((s) => {
      const total = chainCpu(chain, s.cpu);
      return total === undefined ? undefined : total / s.calls;
    }),
  };
  if (samples.every((s) => s.messages !== undefined)) {
    const total: MessageCounts = { in: 0, out: 0, stored: {} };
    let seconds = 0;
    for (const { messages } of samples) {
      total.in += messages!.in;
      total.out += messages!.out;
      for (const [stream, n] of Object.entries(messages!.stored)) total.stored[stream] = (total.stored[stream] ?? 0) + n;
      seconds += messages!.seconds;
    }
    stats.messagesPerCall = perUnit(total, calls);
    if (idleRates !== undefined) stats.callMessagesPerCall = perUnit(beyondIdle(total, idleRates, seconds), calls);
  }
  return stats;
}

/** The comparison's tables: figures per chain, ratios against direct, the tunnel and supergateway, CPU per process. */
import type { Chain, ChainName } from "../chains/index.js";
import { fmt, ratio, table } from "../lib/stats.js";
import { CLIENT, UPSTREAM } from "./cpu.js";
import type { MessageRates } from "./background.js";
import type { ChainStats } from "./summary.js";

export interface Results {
  chains: Chain[];
  concurrency: number;
  /** Each chain's message rates over the idle window (chains with a nats-server; none without the window). */
  idleRates: Partial<Record<ChainName, MessageRates>>;
  /** By chain name, at concurrency N and at concurrency 1. */
  concurrent: Partial<Record<ChainName, ChainStats>>;
  serial: Partial<Record<ChainName, ChainStats>>;
}

const range = (values: Array<number | undefined>, digits: number) => {
  const known = values.filter((v): v is number => v !== undefined && Number.isFinite(v));
  if (known.length === 0) return "n/a";
  const [low, high] = [Math.min(...known), Math.max(...known)];
  return fmt(low, digits) === fmt(high, digits) ? fmt(low, digits) : `${fmt(low, digits)}–${fmt(high, digits)}`;
};

/** "–" where a chain has no processes of its own (direct). */
const chainCpu = (chain: Chain, stats: ChainStats) => (chain.processes.length === 0 ? "–" : fmt(stats.chainCpuPerCall, 3));

const difference = (a: number | undefined, b: number | undefined) => {
  if (a === undefined || b === undefined || !Number.isFinite(a - b)) return "n/a";
  return `${a >= b ? "+" : "−"}${fmt(Math.abs(a - b))} ms`;
};

export function figuresTable({ chains, concurrency, concurrent, serial }: Results): string {
  const c = `c=${concurrency}`;
  const rows = chains.map((chain) => {
    const [many, one] = [concurrent[chain.name]!, serial[chain.name]!];
    const messages = many.messagesPerCall ? `${fmt(many.messagesPerCall.in, 1)} / ${fmt(many.messagesPerCall.out, 1)}` : "–";
    return [
      chain.name,
      fmt(many.rate, 0),
      range(many.roundRates, 0),
      fmt(many.latency.p50),
      fmt(many.latency.p99),
      fmt(one.latency.p50),
      fmt(one.latency.p99),
      chainCpu(chain, many),
      chain.processes.length === 0 ? "–" : range(many.roundChainCpu, 3),
      chainCpu(chain, one),
      messages,
    ];
  });
  return table(
    ["chain", `calls/s ${c}`, "per round", `p50 ${c} ms`, `p99 ${c} ms`, "p50 c=1 ms", "p99 c=1 ms", `CPU/call ${c} ms`, "per round", "CPU/call c=1 ms", "NATS msgs/call in / out"],
    rows,
  );
}

/** The chains others are compared with, where the run has them. */
const REFERENCES: ChainName[] = ["direct", "tunnel", "supergateway", "base"];

export function ratiosTable({ chains, concurrent, serial }: Results): string {
  const present = new Set(chains.map((c) => c.name));
  // dmcp is the reference of its variants, when the run has them.
  const variants = present.has("base") || present.has("dmcp-signed") || present.has("dmcp-durable");
  const references = [...REFERENCES, ...(variants ? (["dmcp"] as const) : [])].filter((name) => present.has(name));
  if (references.length === 0) return "(no chain to compare with: direct, tunnel, supergateway, base or dmcp)";
  const cpuReferences = references.filter((name) => name !== "direct");
  const cpuOf = (name: ChainName) => (chains.find((c) => c.name === name)!.processes.length === 0 ? undefined : concurrent[name]!.chainCpuPerCall);
  const rows = chains.map((chain) => [
    chain.name,
    ...references.map((ref) => ratio(concurrent[chain.name]!.rate, concurrent[ref]!.rate)),
    ...cpuReferences.map((ref) => ratio(cpuOf(chain.name), cpuOf(ref))),
    ...references.map((ref) => difference(serial[chain.name]!.latency.p50, serial[ref]!.latency.p50)),
  ]);
  const header = (label: string, names: ChainName[], sign: string) => names.map((name, i) => (i === 0 ? `${label} ${sign}${name}` : `${sign}${name}`));
  return table(["chain", ...header("calls/s", references, "÷"), ...header("CPU/call", cpuReferences, "÷"), ...header("p50 c=1", references, "−")], rows);
}

export function processTable({ chains, concurrency, concurrent, serial }: Results): string {
  const rows: string[][] = [];
  for (const chain of chains) {
    const [many, one] = [concurrent[chain.name]!, serial[chain.name]!];
    for (const proc of chain.processes) rows.push([chain.name, proc.name, fmt(many.cpuPerCall[proc.name], 3), fmt(one.cpuPerCall[proc.name], 3)]);
    if (chain.processes.length > 0) rows.push([chain.name, "= chain", fmt(many.chainCpuPerCall, 3), fmt(one.chainCpuPerCall, 3)]);
    for (const name of [CLIENT, UPSTREAM]) rows.push([chain.name, `(${name})`, fmt(many.cpuPerCall[name], 3), fmt(one.cpuPerCall[name], 3)]);
  }
  return table(["chain", "process", `CPU/call c=${concurrency} ms`, "CPU/call c=1 ms"], rows);
}

const inOut = (counts: { in: number; out: number } | undefined, digits: number) => (counts === undefined ? "n/a" : `${fmt(counts.in, digits)} / ${fmt(counts.out, digits)}`);

/**
 * Messages of the chains with a nats-server: idle rates, and per call all of them and the calls' own;
 * then, by stream, what JetStream stored of them. Undefined when no chain has a nats-server.
 */
export function messagesTable({ chains, concurrency, idleRates, concurrent, serial }: Results): string | undefined {
  const monitored = chains.filter((chain) => chain.nats !== undefined);
  if (monitored.length === 0) return undefined;
  const c = `c=${concurrency}`;
  const rows: string[][] = [];
  for (const chain of monitored) {
    const [idle, many, one] = [idleRates[chain.name], concurrent[chain.name]!, serial[chain.name]!];
    rows.push([
      chain.name,
      "published / delivered",
      inOut(idle, 2),
      inOut(many.messagesPerCall, 4),
      inOut(many.callMessagesPerCall, 4),
      inOut(one.messagesPerCall, 4),
      inOut(one.callMessagesPerCall, 4),
    ]);
    const streams = new Set([...Object.keys(idle?.stored ?? {}), ...Object.keys(many.messagesPerCall?.stored ?? {}), ...Object.keys(one.messagesPerCall?.stored ?? {})]);
    for (const stream of [...streams].sort()) {
      // Streams that stored nothing idle or in the rounds (e.g. the durable work queue of a direct chain) are left out.
      if (![idle, many.messagesPerCall, one.messagesPerCall].some((counts) => (counts?.stored[stream] ?? 0) !== 0)) continue;
      const stored = (counts: { stored: Record<string, number> } | undefined, digits: number) => fmt(counts === undefined ? undefined : (counts.stored[stream] ?? 0), digits);
      rows.push([
        chain.name,
        `stored in ${stream}`,
        stored(idle, 2),
        stored(many.messagesPerCall, 4),
        stored(many.callMessagesPerCall, 4),
        stored(one.messagesPerCall, 4),
        stored(one.callMessagesPerCall, 4),
      ]);
    }
  }
  return table(["chain", "messages", "idle, per s", `per call ${c}, all`, `${c}, the calls' own`, "c=1, all", "c=1, the calls' own"], rows);
}

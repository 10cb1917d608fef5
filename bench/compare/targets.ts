/** The targets of issue 14 that the comparison measures, and the two set earlier for the bus path. */
import type { ChainName } from "../chains/index.js";
import { fmt } from "../lib/stats.js";
import type { TargetLine } from "../lib/targets.js";
import type { Results } from "./report.js";

const GATEWAY_CPU_MS = 0.4;
const EXECUTOR_CPU_MS = 0.35;
const THROUGHPUT_OVER_SUPERGATEWAY = 1.3;
const P50_OVER_TUNNEL_MS = 0.3;
const EARLIER_ADDED_P50_MS = 1;
/** Messages per call are compared to this (see below). */
const MESSAGE_PRECISION = 0.001;
const EARLIER_THROUGHPUT_RATIO = 0.9;

export function compareTargets({ concurrency, concurrent, serial }: Results): TargetLine[] {
  const c = `c=${concurrency}`;
  const needs = (target: string, names: ChainName[], line: () => Omit<TargetLine, "target">): TargetLine => {
    const absent = names.filter((name) => concurrent[name] === undefined);
    return absent.length > 0 ? { target, missing: `${absent.join(" and ")} not in BENCH_CHAINS` } : { target, ...line() };
  };
  const dmcp = () => concurrent.dmcp!;
  const tunnel = () => concurrent.tunnel!;
  const perProcess = (name: string, limit: number, label: string) =>
    needs(`${label} CPU per call (${c}) ≤ ${limit} ms`, ["dmcp"], () => {
      const value = dmcp().cpuPerCall[name];
      return { measured: `${fmt(value, 3)} ms`, met: value !== undefined && value <= limit };
    });
  const addedP50 = (stats: Results["concurrent"], level: string) =>
    needs(`(earlier target) p50 added to direct's (${level}) ≤ ${EARLIER_ADDED_P50_MS} ms`, ["dmcp", "direct"], () => {
      const added = stats.dmcp!.latency.p50 - stats.direct!.latency.p50;
      return { measured: `${fmt(added, 3)} ms`, met: added <= EARLIER_ADDED_P50_MS };
    });
  return [
    needs(`chain CPU per call (${c}) ≤ the tunnel's`, ["dmcp", "tunnel"], () => {
      const [a, b] = [dmcp().chainCpuPerCall, tunnel().chainCpuPerCall];
      return { measured: `${fmt(a, 3)} ms against ${fmt(b, 3)} ms (×${fmt(a !== undefined && b ? a / b : undefined)})`, met: a !== undefined && b !== undefined && a <= b };
    }),
    perProcess("gateway", GATEWAY_CPU_MS, "gateway"),
    perProcess("wrap", EXECUTOR_CPU_MS, "executor (wrap)"),
    needs(`nats-server messages per call caused by calls (${c}) ≤ the tunnel's, to ${MESSAGE_PRECISION} message`, ["dmcp", "tunnel"], () => {
      const [a, b] = [dmcp().callMessagesPerCall, tunnel().callMessagesPerCall];
      const [rawA, rawB] = [dmcp().messagesPerCall, tunnel().messagesPerCall];
      const raw = `; all counted: ${fmt(rawA?.in, 3)} / ${fmt(rawA?.out, 3)} against ${fmt(rawB?.in, 3)} / ${fmt(rawB?.out, 3)}`;
      if (a === undefined || b === undefined) return { measured: `n/a (BENCH_IDLE_SECONDS=0: no idle rate to take off)${raw}`, met: false };
      // The idle rates are estimates (periodic messages counted over BENCH_IDLE_SECONDS): the calls' own
      // messages are compared to a thousandth of a message per call, about what the estimate is good for
      // at a thousand calls a second (a message per window more or less is 0.05/s over 20 s).
      const atMost = (x: number, y: number) => Math.round(x / MESSAGE_PRECISION) <= Math.round(y / MESSAGE_PRECISION);
      return {
        measured: `${fmt(a.in, 3)} in / ${fmt(a.out, 3)} out against ${fmt(b.in, 3)} / ${fmt(b.out, 3)}${raw}`,
        met: atMost(a.in, b.in) && atMost(a.out, b.out),
      };
    }),
    needs(`nats-server CPU per call (${c}) ≤ the tunnel's`, ["dmcp", "tunnel"], () => {
      const [a, b] = [dmcp().cpuPerCall["nats-server"], tunnel().cpuPerCall["nats-server"]];
      return { measured: `${fmt(a, 3)} ms against ${fmt(b, 3)} ms`, met: a !== undefined && b !== undefined && a <= b };
    }),
    needs(`calls/s (${c}) ≥ ${THROUGHPUT_OVER_SUPERGATEWAY}× supergateway's`, ["dmcp", "supergateway"], () => {
      const value = dmcp().rate / concurrent.supergateway!.rate;
      return { measured: `${fmt(dmcp().rate, 0)} against ${fmt(concurrent.supergateway!.rate, 0)} (×${fmt(value)})`, met: value >= THROUGHPUT_OVER_SUPERGATEWAY };
    }),
    needs(`p50 at c=1 within ${P50_OVER_TUNNEL_MS} ms of the tunnel's`, ["dmcp", "tunnel"], () => {
      const added = serial.dmcp!.latency.p50 - serial.tunnel!.latency.p50;
      return {
        measured: `${fmt(serial.dmcp!.latency.p50)} ms against ${fmt(serial.tunnel!.latency.p50)} ms (${added >= 0 ? "+" : ""}${fmt(added)} ms)`,
        met: added <= P50_OVER_TUNNEL_MS,
      };
    }),
    addedP50(concurrent, c),
    addedP50(serial, "c=1"),
    needs(`(earlier target) calls/s (${c}) ≥ ${EARLIER_THROUGHPUT_RATIO * 100} % of direct`, ["dmcp", "direct"], () => {
      const value = dmcp().rate / concurrent.direct!.rate;
      return { measured: `${fmt(value * 100, 1)} %`, met: value >= EARLIER_THROUGHPUT_RATIO };
    }),
  ];
}

/** The figures of a fuzz run, as printed by `npm run fuzz` and by the test on failure. */
import { HEAP_CHECKPOINTS, type FuzzReport } from "./run.js";
import { formatTallies } from "./tally.js";

const MiB = 1024 * 1024;

export function formatReport(report: FuzzReport): string {
  const mib = (bytes: number) => (bytes / MiB).toFixed(1);
  const lines = [
    `dmcp fuzz: seed ${report.seed}, ${(report.durationMs / 1000).toFixed(1)} s`,
    "",
    formatTallies(report.tallies),
    "",
    "drop counters and error reports (expected = what the oracle says was sent invalid):",
    ...report.counters.map((c) => `  ${c.expected === c.actual ? "ok      " : "MISMATCH"}  ${c.what}: expected ${c.expected}, counted ${c.actual}`),
    "",
    "memory (RSS, MiB: start / peak / end; writing the heap snapshots below adds to it):",
    ...report.memory.map((m) => `  ${m.name.padEnd(14)} ${mib(m.startBytes).padStart(7)} / ${mib(m.peakBytes).padStart(7)} / ${mib(m.endBytes).padStart(7)}`),
    `live heap after a full garbage collection (MiB: ${HEAP_CHECKPOINTS.join(" / ")}):`,
    ...report.heap.map((h) => `  ${h.name.padEnd(14)} ${h.bytes.map((b) => mib(b).padStart(7)).join(" / ")}`),
    "",
    `sessions opened by fuzz inputs over HTTP (each closed again): ${report.sessionsOpenedOverHttp}`,
    "valid calls afterwards:",
    ...report.afterwards.map((a) => `  ${a.ok ? "ok    " : "FAILED"}  ${a.edge}: ${a.detail}`),
    `processes that exited during the run: ${report.crashed.length === 0 ? "none" : report.crashed.join(", ")}`,
    `unhandled rejections, uncaught exceptions, warnings on stderr: ${report.trouble.length === 0 ? "none" : ""}`,
    ...report.trouble.map((line) => `  ${line}`),
    "errors logged (level error and above; not failures by themselves):",
    ...report.loggedErrors.map((e) => `  ${e.name}: ${e.count}${e.examples.map((x) => `\n    ${x}`).join("")}`),
  ];
  return lines.join("\n");
}

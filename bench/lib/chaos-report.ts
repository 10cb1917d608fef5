/** The report of a chaos run (`npm run chaos`, `npm run chaos:cluster`): what each phase's calls ended with, as a table. */
import type { CallOutcome } from "../../test/support/load.js";

export interface Report {
  phase: string;
  sent: number;
  answered: number;
  failed: Record<string, number>;
  lost: number;
  duplicated: number;
  deadLettered: number;
  /** Calls whose tool ran upstream more than once (when the run counts them). */
  ranAgain?: number;
  inFlightAtFault?: number;
  recoveryMs?: number;
}

export function summarize(name: string, outcomes: CallOutcome[], responses: Map<number, number>, deadLettered: number, faultAt?: number): Report {
  const failed: Record<string, number> = {};
  for (const outcome of outcomes) {
    if (!outcome.error) continue;
    const data = outcome.error.data as { dmcp_code?: unknown; last_error?: { code?: unknown } } | undefined;
    // A dead-lettered call shows why its last attempt failed.
    const code = String(data?.dmcp_code ?? outcome.error.code) + (data?.last_error?.code ? ` (last: ${String(data.last_error.code)})` : "");
    failed[code] = (failed[code] ?? 0) + 1;
  }
  const report: Report = {
    phase: name,
    sent: outcomes.length,
    answered: outcomes.filter((o) => o.result).length,
    failed,
    lost: outcomes.filter((o) => o.lost).length,
    duplicated: outcomes.filter((o) => (responses.get(o.id) ?? 0) > 1).length,
    deadLettered,
  };
  if (faultAt !== undefined) {
    const inFlight = outcomes.filter((o) => o.sentAt <= faultAt && (o.answeredAt ?? Number.POSITIVE_INFINITY) > faultAt);
    report.inFlightAtFault = inFlight.length;
    report.recoveryMs = Math.max(0, ...inFlight.map((o) => (o.answeredAt ?? Number.NaN) - faultAt));
  }
  return report;
}

export function print(reports: Report[]): void {
  const rows = reports.map((r) => [
    r.phase,
    String(r.sent),
    String(r.answered),
    Object.entries(r.failed)
      .map(([code, n]) => `${n} ${code}`)
      .join(", ") || "0",
    String(r.lost),
    String(r.duplicated),
    String(r.deadLettered),
    r.ranAgain === undefined ? "-" : String(r.ranAgain),
    r.recoveryMs === undefined ? "-" : `${Math.round(r.recoveryMs)} ms (${r.inFlightAtFault} in flight)`,
  ]);
  const header = ["phase", "sent", "answered", "failed", "lost", "duplicated", "dead-lettered", "ran again", "recovery"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((cell, i) => cell.padEnd(widths[i]!)).join("  ");
  process.stdout.write(`\n${line(header)}\n${line(widths.map((w) => "-".repeat(w)))}\n${rows.map(line).join("\n")}\n`);
}

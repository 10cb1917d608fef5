/**
 * What became of each fuzz input, per target: answered (a response, an error, an HTTP status, a decode
 * result), dropped (no answer by design, counted by a metric the run checks), consumed (no answer by
 * design, a valid message acted on), or failed (no answer where one was due, a wrong answer, an
 * exception). Each outcome has a kind, e.g. `http 400 parse_error` or `INVALID_ENVELOPE`.
 */
export type OutcomeClass = "answered" | "dropped" | "consumed" | "failed";

/**
 * How long a request may wait for its answer: every input the targets send gets one at once, so a
 * request still unanswered after this long was left to a deadline (dropped somewhere on its way).
 */
export const ANSWER_WITHIN_MS = 5_000;

const CLASSES: OutcomeClass[] = ["answered", "dropped", "consumed", "failed"];
const MAX_EXAMPLES = 5;

/** The outcomes of one input. */
export interface InputOutcomes {
  record(outcome: OutcomeClass, kind: string, count?: number): void;
  fail(kind: string, detail: string): void;
}

export class Tally {
  readonly kinds = new Map<string, number>();
  readonly classes: Record<OutcomeClass, number> = { answered: 0, dropped: 0, consumed: 0, failed: 0 };
  /** Inputs that made a failure, shortened, with what went wrong. */
  readonly failures: string[] = [];
  tried = 0;
  /** Processes of this target that exited, or exceptions thrown out of in-process code. */
  crashes = 0;
  /** Slowest single input (in-process targets), in ms. */
  slowestMs = 0;
  /** Requests left without an answer after ANSWER_WITHIN_MS (answered later, or never). */
  unansweredInTime = 0;
  /** Some of them, shortened, with how long they waited. */
  readonly lateExamples: string[] = [];

  /** Inputs with at least one outcome: every input must be accounted for. */
  accounted = 0;

  constructor(readonly target: string) {}

  /** Starts one input; what becomes of it (a batch may have several outcomes) is recorded through the result. */
  begin(): InputOutcomes {
    this.tried++;
    let counted = false;
    const first = () => {
      if (!counted) this.accounted++;
      counted = true;
    };
    return {
      record: (outcome, kind, count = 1) => {
        if (count > 0) first();
        this.record(outcome, kind, count);
      },
      fail: (kind, detail) => {
        first();
        this.fail(kind, detail);
      },
    };
  }

  private record(outcome: OutcomeClass, kind: string, count = 1): void {
    if (count <= 0) return;
    this.classes[outcome] += count;
    const key = `${outcome}: ${kind}`;
    this.kinds.set(key, (this.kinds.get(key) ?? 0) + count);
  }

  /** A failure of the target as a whole (not of one input), e.g. prototype pollution found at the end. */
  fail(kind: string, detail: string): void {
    this.record("failed", kind);
    if (this.failures.length < MAX_EXAMPLES) this.failures.push(`${kind}: ${detail}`);
  }

  /** Adds the figures of another run of the same target. */
  add(other: Tally): void {
    this.tried += other.tried;
    this.accounted += other.accounted;
    this.crashes += other.crashes;
    this.slowestMs = Math.max(this.slowestMs, other.slowestMs);
    this.unansweredInTime += other.unansweredInTime;
    this.lateExamples.push(...other.lateExamples.slice(0, Math.max(0, MAX_EXAMPLES - this.lateExamples.length)));
    for (const outcome of CLASSES) this.classes[outcome] += other.classes[outcome];
    for (const [kind, count] of other.kinds) this.kinds.set(kind, (this.kinds.get(kind) ?? 0) + count);
    this.failures.push(...other.failures.slice(0, Math.max(0, MAX_EXAMPLES - this.failures.length)));
  }

  /** A request whose answer took `waitedMs` (Infinity: none came); counted when that is over ANSWER_WITHIN_MS. */
  answeredAfter(waitedMs: number, detail: () => string): void {
    if (waitedMs <= ANSWER_WITHIN_MS) return;
    this.unansweredInTime++;
    if (this.lateExamples.length < MAX_EXAMPLES) this.lateExamples.push(`${Number.isFinite(waitedMs) ? `${Math.round(waitedMs)} ms` : "never"}: ${detail()}`);
  }

  crash(detail: string): void {
    this.crashes++;
    if (this.failures.length < MAX_EXAMPLES) this.failures.push(`crash: ${detail}`);
  }
}

/** A short, printable rendering of an input's bytes. */
export function preview(bytes: Uint8Array | string, max = 160): string {
  const text = typeof bytes === "string" ? bytes : Buffer.from(bytes).toString("utf8");
  const shown = JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text);
  return text.length > max ? `${shown} (${text.length} chars)` : shown;
}

/**
 * The figures table: one row per target (outcome columns count outcomes, and a batch has one per
 * message; `unaccounted` counts inputs with no outcome at all; `no answer in 5 s` counts requests),
 * then outcomes by kind.
 */
export function formatTallies(tallies: Tally[]): string {
  const header = ["target", "inputs", ...CLASSES, "crashes", "unaccounted", `no answer in ${ANSWER_WITHIN_MS / 1000} s`];
  const rows = tallies.map((t) => [t.target, t.tried, ...CLASSES.map((c) => t.classes[c]), t.crashes, t.tried - t.accounted, t.unansweredInTime].map(String));
  const total = ["total", ...header.slice(1).map((_, i) => String(rows.reduce((sum, row) => sum + Number(row[i + 1]), 0)))];
  const table = [header, ...rows, total];
  const widths = header.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  const line = (row: string[]) => row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  ");
  const out = [line(header), ...rows.map(line), line(total), ""];
  for (const t of tallies) {
    out.push(`${t.target}: outcomes by kind${t.slowestMs > 0 ? ` (slowest input ${t.slowestMs.toFixed(1)} ms)` : ""}`);
    const kinds = [...t.kinds].sort((a, b) => b[1] - a[1]);
    for (const [kind, count] of kinds) out.push(`  ${String(count).padStart(7)}  ${kind}`);
    for (const failure of t.failures) out.push(`  ! ${failure}`);
    for (const late of t.lateExamples) out.push(`  ! no answer in ${ANSWER_WITHIN_MS / 1000} s (${late})`);
  }
  return out.join("\n");
}

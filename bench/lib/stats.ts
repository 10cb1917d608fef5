/** Percentiles and the number formats of the bench's tables. */

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))]!;
}

export interface Latency {
  p50: number;
  p90: number;
  p99: number;
  mean: number;
}

export function latency(values: number[]): Latency {
  const sorted = Float64Array.from(values).sort();
  const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
  return { p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99), mean };
}

export const fmt = (n: number | undefined, digits = 2): string => (n !== undefined && Number.isFinite(n) ? n.toFixed(digits) : "n/a");

/** "×1.23" for a ratio, "n/a" when either side is missing. */
export const ratio = (a: number | undefined, b: number | undefined, digits = 2): string => (a === undefined || b === undefined || b === 0 ? "n/a" : `×${fmt(a / b, digits)}`);

export const mib = (bytes: number | undefined): string => (bytes === undefined ? "n/a" : `${fmt(bytes / 2 ** 20, 1)} MB`);

let markdown = false;

/** BENCH_MARKDOWN=1: tables as Markdown, ready for docs/performance.md. */
export function setMarkdown(on: boolean): void {
  markdown = on;
}

/** A plain-text table (first column left-aligned, the others right-aligned), or a Markdown one. */
export function table(header: string[], rows: string[][]): string {
  if (markdown) {
    const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
    return [line(header), line(header.map((_, i) => (i === 0 ? "---" : "---:"))), ...rows.map(line)].join("\n");
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

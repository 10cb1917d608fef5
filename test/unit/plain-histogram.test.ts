/**
 * The call-duration histogram counts in plain numbers (src/metrics/plain-histogram.ts): a scrape must
 * read exactly what prom-client's own Histogram would show for the same observations.
 */
import { Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { PlainHistogram } from "../../src/metrics/plain-histogram.js";

const BOUNDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const LABEL_SETS = [
  { service: "a", method: "tools/call", outcome: "ok" },
  { service: 'b"q\\', method: "resources/read", outcome: "bus_unavailable" },
];

describe("PlainHistogram", () => {
  it("is scraped exactly as prom-client's Histogram with the same observations, before and after a reset", async () => {
    const theirs = new Registry();
    const ours = new Registry();
    const histogram = new Histogram({ name: "d_seconds", help: "Time", labelNames: ["service", "method", "outcome"], buckets: BOUNDS, registers: [theirs] });
    const plain = new PlainHistogram("d_seconds", "Time", BOUNDS, ours);
    const pairs = LABEL_SETS.map((labels) => ({ bound: histogram.labels(labels), series: plain.series(labels) }));
    // On the bounds, between them, below the first and above the last.
    const values = [0.0004, 0.001, 0.0011, 0.0025, 0.3, 500, 2.5, 0.05, 0.0250001, 120];
    values.forEach((value, i) => {
      const { bound, series } = pairs[i % pairs.length]!;
      bound.observe(value);
      series.observe(value);
    });
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(await ours.metrics()).toContain('d_seconds_bucket{le="+Inf",service="a",method="tools/call",outcome="ok"} 5');

    theirs.resetMetrics();
    ours.resetMetrics();
    expect(await ours.metrics()).toBe(await theirs.metrics());
    pairs[1]!.bound.observe(0.2);
    pairs[1]!.series.observe(0.2);
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });
});

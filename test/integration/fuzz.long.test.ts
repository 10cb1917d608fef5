/**
 * The CI-sized fuzz run: the same generators, targets and checks as `npm run fuzz` (bench/fuzz/), with a
 * few thousand inputs instead of 100,000, against a real nats-server, executor, agent and gateways.
 * The seed is random on each run (FUZZ_SEED=<n> replays one); a failure prints the whole report, seed
 * included.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatReport } from "../../bench/fuzz/report.js";
import { runFuzz, type FuzzReport } from "../../bench/fuzz/run.js";
import { ANSWER_WITHIN_MS } from "../../bench/fuzz/tally.js";

const INPUTS = 3_000;
const MiB = 1024 * 1024;

describe(`fuzzing with ${INPUTS} generated inputs (envelope parsing, HTTP bodies, stdio lines, bus messages)`, () => {
  let report: FuzzReport;
  let figures = "";

  beforeAll(async () => {
    const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
    report = await runFuzz({ inputs: INPUTS, seed });
    figures = formatReport(report);
  }, 600_000);

  afterAll(() => {
    if (report) process.stderr.write(`${figures}\n`);
  });

  it("tries every target with its share of the inputs", () => {
    expect(report.tallies.map((t) => t.target)).toEqual(["envelope", "http", "stdio", "bus"]);
    expect(
      report.tallies.reduce((sum, t) => sum + t.tried, 0),
      figures,
    ).toBeGreaterThanOrEqual(INPUTS);
    for (const tally of report.tallies) expect(tally.tried, figures).toBeGreaterThan(0);
  });

  it("crashes no process, and no process reports an unhandled rejection or exception", () => {
    expect(report.crashed, figures).toEqual([]);
    expect(report.trouble, figures).toEqual([]);
    for (const tally of report.tallies) expect(tally.crashes, `${tally.target}\n${figures}`).toBe(0);
  });

  it("answers every input or drops it with a counted error", () => {
    for (const tally of report.tallies) {
      expect(tally.accounted, `${tally.target}: inputs without an outcome\n${figures}`).toBe(tally.tried);
      expect(tally.failures, `${tally.target}\n${figures}`).toEqual([]);
      expect(tally.classes.failed, `${tally.target}\n${figures}`).toBe(0);
    }
    for (const counter of report.counters) expect(counter.actual, `${counter.what}\n${figures}`).toBe(counter.expected);
  });

  it("answers every request within 5 s, none left to a deadline", () => {
    for (const tally of report.tallies) expect(tally.unansweredInTime, `${tally.target}: requests without an answer after ${ANSWER_WITHIN_MS} ms\n${figures}`).toBe(0);
  });

  it("leaves every process answering a valid call on each edge", () => {
    expect(report.afterwards.map((a) => a.edge)).toEqual(["http", "stdio", "bus"]);
    for (const call of report.afterwards) expect(call.ok, `${call.edge}: ${call.detail}\n${figures}`).toBe(true);
  });

  it("keeps memory bounded", () => {
    // Generous bounds: a few thousand inputs must not cost a process tens of MiB of live heap.
    for (const heap of report.heap) expect(heap.bytes.at(-1)! - heap.bytes[0]!, `${heap.name}\n${figures}`).toBeLessThan(32 * MiB);
    for (const usage of report.memory) expect(usage.peakBytes - usage.startBytes, `${usage.name}\n${figures}`).toBeLessThan(256 * MiB);
  });
});

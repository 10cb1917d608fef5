/**
 * The verdict of the conformance runner (scripts/conformance): what counts as a regression through
 * the bus, how known gaps excuse it, and when a known gap is stale. The runs themselves are
 * `npm run conformance`; this checks the judgement on results shaped like the suite's.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadKnownGaps } from "../../scripts/conformance/known-gaps.js";
import { judge, lostChecks, renderTable, type Results } from "../../scripts/conformance/report.js";
import type { CheckResult, ScenarioResult } from "../../scripts/conformance/suite.js";

const SCENARIOS = ["ping", "tools-call-sampling", "sep-2640-skills-list"];

function scenario(name: string, statuses: Record<string, CheckResult["status"]>): ScenarioResult {
  return { scenario: name, checks: Object.entries(statuses).map(([id, status]) => ({ id, status })) };
}

function results(byTarget: Partial<Record<"direct" | "http" | "stdio", ScenarioResult[]>>): Results {
  return new Map(Object.entries(byTarget).map(([target, list]) => [target as "direct", new Map(list!.map((r) => [r.scenario, r]))]));
}

const direct = [
  scenario("ping", { ping: "SUCCESS" }),
  scenario("tools-call-sampling", { "tools-call-sampling": "SUCCESS" }),
  scenario("sep-2640-skills-list", { "skills-list": "SUCCESS", "skills-get": "SUCCESS" }),
];

function gapsFile(gaps: unknown): string {
  const file = join(mkdtempSync(join(tmpdir(), "gaps-")), "gaps.json");
  writeFileSync(file, JSON.stringify({ gaps }));
  return file;
}

describe("conformance verdict", () => {
  it("passes when the bus passes every scenario with every check", () => {
    const verdict = judge(SCENARIOS, ["direct", "http"], results({ direct, http: direct }), []);
    expect(verdict).toMatchObject({ ok: true, regressions: [], directFailures: [], staleGaps: [] });
  });

  it("flags a scenario that passes directly and fails through the bus", () => {
    const http = [direct[0]!, scenario("tools-call-sampling", { "tools-call-sampling": "FAILURE" }), direct[2]!];
    const verdict = judge(SCENARIOS, ["direct", "http"], results({ direct, http }), []);
    expect(verdict.ok).toBe(false);
    expect(verdict.regressions).toEqual([{ scenario: "tools-call-sampling", target: "http" }]);
  });

  it("counts a scenario that passes with fewer successful checks (skipped, warned) as a regression", () => {
    const skipped = scenario("sep-2640-skills-list", { "skills-list": "SKIPPED", "skills-get": "SKIPPED" });
    expect(lostChecks(direct[2], skipped)).toEqual(["skills-list", "skills-get"]);
    const verdict = judge(SCENARIOS, ["direct", "stdio"], results({ direct, stdio: [direct[0]!, direct[1]!, skipped] }), []);
    expect(verdict.regressions).toEqual([{ scenario: "sep-2640-skills-list", target: "stdio" }]);
    expect(renderTable(SCENARIOS, ["direct", "stdio"], results({ direct, stdio: [direct[0]!, direct[1]!, skipped] }), [])).toContain("**LOSS**");
  });

  it("lets a listed known gap fail, and fails on a known gap that passes", () => {
    const gaps = loadKnownGaps(gapsFile([{ scenarios: ["tools-call-sampling", "ping"], targets: ["http"], reason: "not relayed yet" }]), SCENARIOS);
    const http = [direct[0]!, scenario("tools-call-sampling", { "tools-call-sampling": "FAILURE" }), direct[2]!];
    const verdict = judge(SCENARIOS, ["direct", "http"], results({ direct, http }), gaps);
    expect(verdict.regressions).toEqual([]);
    expect(verdict.staleGaps.map((stale) => stale.gap.scenario)).toEqual(["ping"]);
    expect(verdict.ok).toBe(false);
  });

  it("fails when the fixture itself fails a scenario, and does not blame the bus for it", () => {
    const broken = [scenario("ping", { ping: "FAILURE" }), direct[1]!, direct[2]!];
    const verdict = judge(SCENARIOS, ["direct", "http"], results({ direct: broken, http: broken }), []);
    expect(verdict.directFailures).toEqual(["ping"]);
    expect(verdict.regressions).toEqual([]);
  });

  it("treats a scenario without a result as failed", () => {
    const crashed: ScenarioResult = { scenario: "ping", checks: [], error: "socket hang up" };
    const verdict = judge(SCENARIOS, ["direct", "http"], results({ direct, http: [crashed, direct[1]!, direct[2]!] }), []);
    expect(verdict.regressions).toEqual([{ scenario: "ping", target: "http" }]);
  });

  it("rejects a known-gaps file with an unknown scenario, no reason, or an unknown target", () => {
    expect(() => loadKnownGaps(gapsFile([{ scenarios: ["no-such-scenario"], reason: "x" }]), SCENARIOS)).toThrow(/unknown scenario/);
    expect(() => loadKnownGaps(gapsFile([{ scenarios: ["ping"], reason: " " }]), SCENARIOS)).toThrow(/needs a reason/);
    expect(() => loadKnownGaps(gapsFile([{ scenarios: ["ping"], targets: ["ftp"], reason: "x" }]), SCENARIOS)).toThrow(/targets/);
  });
});

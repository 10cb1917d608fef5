/**
 * Compares the conformance results of the targets and renders them: the scenario table (direct vs
 * through the bus), the failing checks with the suite's own messages, and the verdict (what fails
 * the run).
 *
 * Through the bus a scenario must do more than pass: every check that succeeds directly must succeed
 * there too. A scenario can pass with fewer checks (a capability the gateway does not advertise
 * makes the suite skip the whole scenario), and that is a loss like a failure.
 */
import { isKnownGap, type KnownGap } from "./known-gaps.js";
import type { CheckResult, ScenarioResult } from "./suite.js";
import { TARGET_TITLES, type TargetName } from "./target-names.js";

export type Results = Map<TargetName, Map<string, ScenarioResult>>;

export interface Outcome {
  passed: boolean;
  success: number;
  failure: number;
  warning: number;
}

export interface Verdict {
  /** Scenarios that pass directly and fail through the bus, not listed as known gaps. */
  regressions: { scenario: string; target: TargetName }[];
  /** Scenarios the fixture fails directly, not listed as known gaps. */
  directFailures: string[];
  /** Known gaps whose scenario passes on a listed target: the entry must go. */
  staleGaps: { gap: KnownGap; target: TargetName }[];
  ok: boolean;
}

export function outcomeOf(result: ScenarioResult | undefined): Outcome {
  const count = (status: CheckResult["status"]) => result?.checks.filter((check) => check.status === status).length ?? 0;
  const failure = count("FAILURE");
  return { passed: result !== undefined && result.error === undefined && failure === 0, success: count("SUCCESS"), failure, warning: count("WARNING") };
}

/** Ids of the checks that succeed directly but not (or not every time) through `other`. */
export function lostChecks(direct: ScenarioResult | undefined, other: ScenarioResult | undefined): string[] {
  if (!direct) return [];
  const succeeded = (result: ScenarioResult | undefined) => {
    const byId = new Map<string, boolean>();
    for (const check of result?.checks ?? []) byId.set(check.id, (byId.get(check.id) ?? true) && check.status === "SUCCESS");
    return byId;
  };
  const there = succeeded(other);
  return [...succeeded(direct)].filter(([id, ok]) => ok && there.get(id) !== true).map(([id]) => id);
}

/** Passed, and (through the bus) lost none of the checks that succeed directly. */
export function holds(results: Results, target: TargetName, scenario: string): boolean {
  const result = results.get(target)?.get(scenario);
  if (!outcomeOf(result).passed) return false;
  return target === "direct" || lostChecks(results.get("direct")?.get(scenario), result).length === 0;
}

export function judge(scenarios: readonly string[], targets: readonly TargetName[], results: Results, gaps: readonly KnownGap[]): Verdict {
  const passes = (target: TargetName, scenario: string) => holds(results, target, scenario);
  const verdict: Verdict = { regressions: [], directFailures: [], staleGaps: [], ok: true };
  for (const scenario of scenarios) {
    for (const target of targets) {
      const gap = isKnownGap(gaps, scenario, target);
      const passing = passes(target, scenario);
      if (gap && passing) verdict.staleGaps.push({ gap, target });
      if (gap || passing) continue;
      if (target === "direct") verdict.directFailures.push(scenario);
      else if (!targets.includes("direct") || passes("direct", scenario)) verdict.regressions.push({ scenario, target });
    }
  }
  verdict.ok = verdict.regressions.length === 0 && verdict.directFailures.length === 0 && verdict.staleGaps.length === 0;
  return verdict;
}

/** The scenario table: one row per scenario, one column per target, pass/FAIL with check counts. */
export function renderTable(scenarios: readonly string[], targets: readonly TargetName[], results: Results, gaps: readonly KnownGap[]): string {
  const lines = [`| Scenario | ${targets.map((t) => TARGET_TITLES[t]).join(" | ")} |`, `|---|${targets.map(() => "---").join("|")}|`];
  for (const scenario of scenarios) {
    const direct = results.get("direct")?.get(scenario);
    const cells = targets.map((target) => {
      const result = results.get(target)?.get(scenario);
      const lost = target === "direct" ? [] : lostChecks(direct, result);
      return cell(result, lost.length, isKnownGap(gaps, scenario, target) !== undefined);
    });
    lines.push(`| ${scenario} | ${cells.join(" | ")} |`);
  }
  const totals = targets.map((target) => `**${scenarios.filter((scenario) => holds(results, target, scenario)).length}/${scenarios.length}**`);
  lines.push(`| **scenarios passed** | ${totals.join(" | ")} |`);
  return lines.join("\n");
}

function cell(result: ScenarioResult | undefined, lost: number, knownGap: boolean): string {
  if (!result) return "not run";
  const gap = knownGap ? ", known gap" : "";
  if (result.error !== undefined) return `**FAIL** (no result${gap})`;
  const outcome = outcomeOf(result);
  const counts = `${outcome.success}/${outcome.success + outcome.failure}${outcome.warning ? `, ${outcome.warning} warn` : ""}`;
  if (!outcome.passed) return `**FAIL** (${counts}${gap})`;
  return lost > 0 ? `**LOSS** (${counts}, ${lost} check${lost > 1 ? "s" : ""} lost${gap})` : `pass (${counts})`;
}

/** Every failing check (and every warning that only the bus shows), with the suite's message. */
export function renderFailures(scenarios: readonly string[], targets: readonly TargetName[], results: Results, gaps: readonly KnownGap[]): string {
  const sections: string[] = [];
  for (const scenario of scenarios) {
    const direct = results.get("direct")?.get(scenario);
    for (const target of targets) {
      const result = results.get(target)?.get(scenario);
      if (!result) continue;
      const lines: string[] = [];
      if (result.error !== undefined) lines.push(`- the scenario produced no result: ${oneLine(result.error)}`);
      for (const check of result.checks.filter((c) => c.status === "FAILURE")) lines.push(`- \`${check.id}\` FAILURE: ${oneLine(check.errorMessage ?? check.description ?? "")}`);
      if (target !== "direct") {
        for (const id of lostChecks(direct, result)) {
          const there = result.checks.filter((c) => c.id === id && c.status !== "SUCCESS" && c.status !== "FAILURE");
          if (result.checks.some((c) => c.id === id && c.status === "FAILURE")) continue; // listed above
          if (there.length === 0) lines.push(`- \`${id}\` not reported through the bus (succeeds directly)`);
          for (const check of there) lines.push(`- \`${id}\` ${check.status} (succeeds directly): ${oneLine(check.errorMessage ?? check.description ?? "")}`);
        }
      }
      if (lines.length === 0) continue;
      const gap = isKnownGap(gaps, scenario, target);
      sections.push(`#### ${scenario} — ${TARGET_TITLES[target]}${gap ? ` (known gap ${gap.cause})` : ""}\n\n${lines.join("\n")}`);
    }
  }
  return sections.length > 0 ? sections.join("\n\n") : "None.";
}

/** The known gaps, one item per cause, numbered as in the file. */
export function renderKnownGaps(gaps: readonly KnownGap[]): string {
  const causes = new Map<number, KnownGap[]>();
  for (const gap of gaps) causes.set(gap.cause, [...(causes.get(gap.cause) ?? []), gap]);
  if (causes.size === 0) return "None.";
  return [...causes]
    .map(([cause, entries]) => {
      const targets = entries[0]!.targets.map((t) => TARGET_TITLES[t]).join(" and ");
      return `${cause}. ${targets}: ${entries.map((e) => e.scenario).join(", ")}.\n   Cause: ${entries[0]!.reason}.`;
    })
    .join("\n");
}

export function renderVerdict(verdict: Verdict): string {
  const lines: string[] = [];
  for (const { scenario, target } of verdict.regressions)
    lines.push(`- REGRESSION: ${scenario} passes directly but fails or loses checks through the bus (${TARGET_TITLES[target]})`);
  for (const scenario of verdict.directFailures) lines.push(`- FIXTURE: ${scenario} fails against the fixture directly`);
  for (const { gap, target } of verdict.staleGaps) lines.push(`- STALE KNOWN GAP: ${gap.scenario} passes (${TARGET_TITLES[target]}); remove it from the known-gaps file`);
  return lines.length > 0 ? lines.join("\n") : "- every scenario that passes directly passes through the bus, or is a listed known gap";
}

function oneLine(text: string, max = 500): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

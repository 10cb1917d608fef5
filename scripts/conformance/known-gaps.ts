/**
 * The known-gaps file: scenarios that pass against the fixture directly but do not pass yet through
 * the bus, each with the reason. It lets CI run the conformance comparison while the gateway work
 * goes on, without hiding a new regression: a scenario not listed fails the run, and so does a
 * listed one that passes (the entry must then be removed).
 *
 *   { "gaps": [ { "scenarios": ["tools-call-sampling"], "targets": ["http", "stdio"], "reason": "..." } ] }
 *
 * One entry per cause: the scenarios it breaks and why. `targets` defaults to both bus targets;
 * "direct" may be listed for a fixture gap.
 */
import { readFileSync } from "node:fs";
import { TARGETS, type TargetName } from "./target-names.js";

export interface KnownGap {
  scenario: string;
  targets: TargetName[];
  reason: string;
  /** Which entry of the file (1-based): one cause, several scenarios. */
  cause: number;
}

/** One gap per scenario and cause; a scenario listed under two causes keeps both. */
export function loadKnownGaps(file: string, knownScenarios: readonly string[]): KnownGap[] {
  const parsed = JSON.parse(readFileSync(file, "utf8")) as { gaps?: unknown };
  if (!Array.isArray(parsed.gaps)) throw new Error(`${file}: expected {"gaps": [...]}`);
  return parsed.gaps.flatMap((entry: unknown, index) => {
    const where = `${file}: gaps[${index}]`;
    const gap = entry as { scenarios?: unknown; targets?: unknown; reason?: unknown };
    const scenarios = gap.scenarios;
    if (!Array.isArray(scenarios) || scenarios.length === 0) throw new Error(`${where}: scenarios must be a non-empty list`);
    const unknown = scenarios.filter((name) => typeof name !== "string" || !knownScenarios.includes(name));
    if (unknown.length > 0) throw new Error(`${where}: unknown scenario(s) ${JSON.stringify(unknown)}`);
    if (typeof gap.reason !== "string" || gap.reason.trim() === "") throw new Error(`${where}: every gap needs a reason`);
    const targets = gap.targets ?? ["http", "stdio"];
    if (!Array.isArray(targets) || targets.length === 0 || !targets.every((t) => (TARGETS as readonly unknown[]).includes(t))) {
      throw new Error(`${where}: targets must be a non-empty list of ${TARGETS.join(", ")}`);
    }
    const reason = gap.reason.trim();
    return (scenarios as string[]).map((scenario) => ({ scenario, targets: targets as TargetName[], reason, cause: index + 1 }));
  });
}

export function isKnownGap(gaps: readonly KnownGap[], scenario: string, target: TargetName): KnownGap | undefined {
  return gaps.find((gap) => gap.scenario === scenario && gap.targets.includes(target));
}

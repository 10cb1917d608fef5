#!/usr/bin/env node
/**
 * `npm run check:deps`: checks the sources against the dependency rules of .dependency-cruiser.cjs,
 * prints the violations rule by rule, and exits 1 on any. (depcruise itself exits with the number of
 * errors, which the shell reads modulo 256: 256 violations would pass. So it runs here for its JSON.)
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

/** Everything with imports: the product (src/, adapters/) and what only builds or tests it. */
const ROOTS = ["src", "adapters", "test", "bench", "examples", "scripts"];
const root = fileURLToPath(new URL("..", import.meta.url));
const depcruise = fileURLToPath(new URL("../node_modules/dependency-cruiser/bin/dependency-cruise.mjs", import.meta.url));

let report;
try {
  report = execFileSync(process.execPath, [depcruise, "--config", ".dependency-cruiser.cjs", "--output-type", "json", ...ROOTS], {
    cwd: root,
    encoding: "utf8",
    maxBuffer: 512 * 1024 * 1024,
    stdio: ["ignore", "pipe", "inherit"],
  });
} catch {
  // Its own message is above (stderr is shared); with the JSON reporter it fails only when it cannot run.
  console.error("check:deps: dependency-cruiser could not run");
  process.exit(2);
}
const { summary } = JSON.parse(report);

/** A cycle is shown whole, from the module that closes it; any other violation as from → to. */
const describe = (violation) => {
  const cycle = (violation.cycle ?? []).map((step) => (typeof step === "string" ? step : step.name));
  return [violation.from, ...(cycle.length > 0 ? cycle : [violation.to])].join(" → ");
};

const byRule = new Map();
for (const violation of summary.violations) byRule.set(violation.rule.name, [...(byRule.get(violation.rule.name) ?? []), violation]);
for (const rule of summary.ruleSetUsed.forbidden ?? []) {
  const violations = byRule.get(rule.name);
  if (!violations) continue;
  console.log(`\n${rule.severity} ${rule.name} (${violations.length}): ${rule.comment ?? ""}`);
  for (const violation of violations) console.log(`  ${describe(violation)}`);
}
const counts = `${summary.totalCruised} modules, ${summary.totalDependenciesCruised} dependencies`;
if (summary.violations.length === 0) console.log(`no violations of the dependency rules (${counts})`);
else console.log(`\n${summary.violations.length} violations of the dependency rules of .dependency-cruiser.cjs (${summary.error} errors; ${counts})`);
process.exitCode = summary.error > 0 ? 1 : 0;

/**
 * Runs the official MCP conformance suite (`conformance server`) against one URL and reads its
 * per-scenario results (`<output>/server-<scenario>-<timestamp>/checks.json`).
 */
import { readdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { run } from "../../examples/lib.js";

export type CheckStatus = "SUCCESS" | "FAILURE" | "WARNING" | "SKIPPED" | "INFO";

export interface CheckResult {
  id: string;
  name?: string;
  description?: string;
  status: CheckStatus;
  errorMessage?: string;
  details?: unknown;
}

export interface ScenarioResult {
  scenario: string;
  checks: CheckResult[];
  /** Why there are no checks: the scenario crashed the suite or did not run at all. */
  error?: string;
}

export interface SuiteCommand {
  /** Node >= 22. */
  node: string;
  /** The suite's CLI (dist/index.js of @modelcontextprotocol/conformance). */
  cli: string;
}

export interface SuiteRunOptions {
  url: string;
  outputDir: string;
  /** Run only these scenarios (one suite invocation each); by default `--suite all`. */
  scenarios?: string[];
  /** Per-scenario timeout of the suite, in ms. */
  scenarioTimeoutMs: number;
  /** Run at this protocol revision (the suite's --spec-version) instead of each scenario's own. */
  specVersion?: string;
}

const RESULT_DIR = /^server-(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$/;

/** The server scenarios the suite knows (at `specVersion`, if given), in its order. */
export async function listScenarios(command: SuiteCommand, specVersion?: string): Promise<string[]> {
  const filter = specVersion ? ["--spec-version", specVersion] : [];
  const listed = await run("conformance list", command.node, [command.cli, "list", "--server", ...filter], 60_000);
  const names = [...listed.stdout.matchAll(/^\s+- (\S+)/gm)].map((match) => match[1]!);
  if (names.length === 0) throw new Error(`conformance list printed no scenarios:\n${listed.stdout}${listed.stderr}`);
  return names;
}

/** Runs the suite against `url`; every scenario asked for gets a result, crashed or not. */
export async function runSuite(command: SuiteCommand, options: SuiteRunOptions, expected: string[]): Promise<Map<string, ScenarioResult>> {
  const selections = options.scenarios?.length ? options.scenarios.map((name) => ["--scenario", name]) : [["--suite", "all"]];
  let log = "";
  for (const selection of selections) {
    const version = options.specVersion ? ["--spec-version", options.specVersion] : [];
    const args = [command.cli, "server", "--url", options.url, ...selection, ...version, "-o", options.outputDir, "--timeout", String(options.scenarioTimeoutMs)];
    // The suite runs its scenarios one after another, each bounded by the per-scenario timeout.
    const outcome = await run("conformance server", command.node, args, expected.length * (options.scenarioTimeoutMs + 10_000));
    log += `$ conformance ${args.slice(1).join(" ")}\n${outcome.stdout}${outcome.stderr}\n`;
  }
  writeFileSync(join(options.outputDir, "suite.log"), log);
  const results = readResults(options.outputDir);
  for (const scenario of expected) {
    if (!results.has(scenario)) results.set(scenario, { scenario, checks: [], error: crashOf(log, scenario) ?? "the suite produced no result for this scenario" });
  }
  return results;
}

function readResults(outputDir: string): Map<string, ScenarioResult> {
  const results = new Map<string, ScenarioResult>();
  for (const entry of readdirSync(outputDir)) {
    const scenario = RESULT_DIR.exec(entry)?.[1];
    if (!scenario) continue;
    const file = join(outputDir, entry, "checks.json");
    if (existsSync(file)) results.set(scenario, { scenario, checks: JSON.parse(readFileSync(file, "utf8")) as CheckResult[] });
  }
  return results;
}

/** The suite's own message for a scenario that threw, from its console output. */
function crashOf(log: string, scenario: string): string | undefined {
  const line = log.split("\n").find((l) => l.startsWith(`Failed to run scenario ${scenario}:`));
  return line?.slice(`Failed to run scenario ${scenario}:`.length).trim() || undefined;
}

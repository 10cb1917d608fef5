/**
 * `npm run fuzz`: property-based fuzzing (fast-check) of envelope parsing and of the JSON-RPC paths of
 * running processes: HTTP bodies, stdio lines and bus messages. See bench/fuzz/run.ts for what is
 * checked. Prints the figures; exits non-zero on a crash, an unanswered or wrongly answered input, a
 * request left without an answer after 5 s, an unhandled rejection (or the like) on a process's
 * stderr, a drop counter that does not match, or a process that no longer answers a valid call.
 *
 * Usage: npm run fuzz -- [--inputs N] [--seed S] [--verbose]
 *   --inputs N   generated inputs in all, shared out over the targets (default 100000)
 *   --seed S     fast-check seed; a run is reproducible from it (default: random, printed)
 *   --verbose    echo the processes' stderr
 */
import { parseArgs } from "node:util";
import { formatReport } from "./fuzz/report.js";
import { isClean, runFuzz } from "./fuzz/run.js";

function parseOptions(): { inputs: number; seed: number; verbose: boolean } {
  const { values } = parseArgs({
    options: { inputs: { type: "string" }, seed: { type: "string" }, verbose: { type: "boolean" }, help: { type: "boolean", short: "h" } },
    strict: true,
  });
  if (values.help) {
    process.stdout.write("Usage: npm run fuzz -- [--inputs N] [--seed S] [--verbose]\n");
    process.exit(0);
  }
  const inputs = Number(values.inputs ?? 100_000);
  if (!Number.isInteger(inputs) || inputs < 4) throw new Error(`--inputs needs an integer of at least 4, got ${values.inputs}`);
  const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
  if (!Number.isInteger(seed)) throw new Error(`--seed needs an integer, got ${values.seed}`);
  return { inputs, seed, verbose: values.verbose ?? false };
}

async function main(): Promise<number> {
  const options = parseOptions();
  const report = await runFuzz({ ...options, log: (line) => process.stderr.write(`fuzz: ${line}\n`) });
  process.stdout.write(`${formatReport(report)}\n`);
  const clean = isClean(report);
  process.stdout.write(clean ? "fuzz: clean\n" : "fuzz: FAILED (see above)\n");
  return clean ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`fuzz: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(2);
  },
);

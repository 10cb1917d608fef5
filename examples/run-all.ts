/**
 * Runs every compiled example (dist/examples/*.js) one after another, each as its own process with a
 * deadline, prints PASS or FAIL for each and a final "N passed, M failed" line, and exits non-zero if
 * any failed. `npm run examples` builds and runs this.
 */
import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const TIMEOUT_MS = 90_000; // each example gives up on its own after 55 s; this is the backstop
const here = dirname(fileURLToPath(import.meta.url));
const skip = new Set([basename(fileURLToPath(import.meta.url)), "lib.js"]);
const examples = readdirSync(here)
  .filter((file) => file.endsWith(".js") && !skip.has(file))
  .sort();

if (examples.length === 0) {
  process.stderr.write(`no examples found in ${here}; run npm run build first\n`);
  process.exit(1);
}

let current: ReturnType<typeof spawn> | undefined;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    current?.kill("SIGTERM"); // the example cleans up its own children
    process.stdout.write(`\ninterrupted by ${signal}\n`);
    process.exitCode = 130;
  });
}

let passed = 0;
let failed = 0;
for (const file of examples) {
  if (process.exitCode === 130) break;
  const name = file.replace(/\.js$/, "");
  process.stdout.write(`\n=== ${name}\n`);
  const started = Date.now();
  const outcome = await runOne(join(here, file));
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (outcome === "passed") passed++;
  else failed++;
  process.stdout.write(`${outcome === "passed" ? "PASS" : "FAIL"} ${name} (${seconds} s${outcome === "passed" ? "" : `, ${outcome}`})\n`);
}

process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
if (failed > 0 && process.exitCode === undefined) process.exitCode = 1;

/** Runs one example with its output shown; resolves "passed" or the reason it failed. */
function runOne(path: string): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path], { stdio: ["ignore", "inherit", "inherit"] });
    current = child;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGTERM");
      setTimeout(() => child.kill("SIGKILL"), 15_000).unref();
    }, TIMEOUT_MS);
    child.once("error", (err) => {
      clearTimeout(timer);
      resolve(`could not start: ${err.message}`);
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      current = undefined;
      if (timedOut) resolve(`timed out after ${TIMEOUT_MS / 1000} s`);
      else if (code === 0) resolve("passed");
      else resolve(signal ? `killed by ${signal}` : `exit code ${code}`);
    });
  });
}

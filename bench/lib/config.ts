/** The bench's environment knobs and the paths of the built files it starts. */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** A failure of the bench itself (a process that does not start, a call that fails): exit code 1. */
export class BenchError extends Error {
  override name = "BenchError";
}

/** A number from the environment, `fallback` when unset; a clear error when it is not one. */
export function envNumber(name: string, fallback: number, { integer = true, min = 1 } = {}): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
    throw new BenchError(`${name} must be ${integer ? "an integer" : "a number"} ≥ ${min}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/** A comma-separated list from the environment, `fallback` when unset; each item must be one of `allowed`. */
export function envList<T extends string>(name: string, fallback: readonly T[], allowed: readonly T[]): T[] {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === "") return [...fallback];
  const items = raw
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean);
  for (const item of items) {
    if (!(allowed as readonly string[]).includes(item)) throw new BenchError(`${name}: unknown "${item}" (one of ${allowed.join(", ")})`);
  }
  return items as T[];
}

/** A list of positive integers from the environment, e.g. BENCH_SCALE_REPLICAS=1,2,4,8. */
export function envIntegers(name: string, fallback: readonly number[]): number[] {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === "") return [...fallback];
  const values = raw.split(",").map((item) => Number(item.trim()));
  if (values.some((v) => !Number.isInteger(v) || v < 1)) throw new BenchError(`${name} must be positive integers separated by commas, got ${JSON.stringify(raw)}`);
  return values;
}

export const envFlag = (name: string): boolean => process.env[name] === "1";

/** dist/ — this file runs as dist/bench/lib/config.js. */
export const DIST = fileURLToPath(new URL("../..", import.meta.url));
/** The test fixtures the bench uses as upstreams (built with the project). */
export const RAW_SERVER_JS = resolve(DIST, "test/support/fixtures/raw-server.js");
export const CONFORMANCE_SERVER_JS = resolve(DIST, "test/support/fixtures/conformance-server.js");
export const DMCP_JS = resolve(DIST, "src/cli/main.js");
export const TUNNEL_IN_JS = resolve(DIST, "bench/tunnel/tunnel-in.js");
export const TUNNEL_OUT_JS = resolve(DIST, "bench/tunnel/tunnel-out.js");
export const SERIAL_SLEEP_SERVER_JS = resolve(DIST, "bench/upstreams/serial-sleep-server.js");

export function requireBuilt(...files: string[]): void {
  for (const file of files) {
    if (!existsSync(file)) throw new BenchError(`${file} is missing: run \`npm run build\` first`);
  }
}

const require = createRequire(import.meta.url);

/** The file a package's `bin` entry names (the peers are devDependencies, started with this Node). */
export function packageBin(pkg: string, bin: string): { path: string; version: string } {
  let manifestPath: string;
  try {
    manifestPath = require.resolve(`${pkg}/package.json`);
  } catch {
    throw new BenchError(`${pkg} is not installed: run \`npm ci\` (it is a devDependency)`);
  }
  const manifest = require(manifestPath) as { version: string; bin?: string | Record<string, string> };
  const relative = typeof manifest.bin === "string" ? manifest.bin : manifest.bin?.[bin];
  if (relative === undefined) throw new BenchError(`${pkg} has no bin "${bin}"`);
  return { path: resolve(manifestPath, "..", relative), version: manifest.version };
}

/** `dist/src/cli/main.js` of the BENCH_BASELINE build, given its checkout or its dist/. */
export function baselineDmcpJs(dir: string): string {
  for (const candidate of [resolve(dir, "dist/src/cli/main.js"), resolve(dir, "src/cli/main.js")]) {
    if (existsSync(candidate)) return candidate;
  }
  throw new BenchError(`BENCH_BASELINE=${dir}: no dist/src/cli/main.js there (build that checkout first)`);
}

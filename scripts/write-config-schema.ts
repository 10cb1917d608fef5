/**
 * Writes the JSON Schemas of the `dmcp up` config file (`schemas/config.schema.json`, referenced by the
 * sample `dmcp.config.json` through its `$schema` key) and of a `--policy` file (`schemas/policy.schema.json`)
 * so that editors can complete and check them.
 * Run: `node dist/scripts/write-config-schema.js [outDir]` (part of `npm run schemas`).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { toPublishedSchema } from "../src/protocol/json-schema.js";
import { PolicySchema } from "../src/gateway/access/policy.js";
import { ConfigSchema } from "../src/cli/config.js";

export const CONFIG_SCHEMA_FILE = "config.schema.json";
export const POLICY_SCHEMA_FILE = "policy.schema.json";

/** The config file's JSON Schema, as the file is written (input side: keys with defaults are optional). */
export function configJsonSchema(): Record<string, unknown> {
  return toPublishedSchema(CONFIG_SCHEMA_FILE, ConfigSchema);
}

export function policyJsonSchema(): Record<string, unknown> {
  return toPublishedSchema(POLICY_SCHEMA_FILE, PolicySchema);
}

export function writeConfigSchema(outDir: string): string[] {
  mkdirSync(outDir, { recursive: true });
  const written: string[] = [];
  for (const [file, schema] of [
    [CONFIG_SCHEMA_FILE, configJsonSchema()],
    [POLICY_SCHEMA_FILE, policyJsonSchema()],
  ] as const) {
    const path = join(outDir, file);
    writeFileSync(path, `${JSON.stringify(schema, null, 2)}\n`);
    written.push(path);
  }
  return written;
}

// Runs only when executed as a script, never on import.
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const path of writeConfigSchema(process.argv[2] ?? "schemas")) process.stderr.write(`wrote ${path}\n`);
}

/**
 * Writes the JSON Schema of the `dmcp up` config file (`schemas/config.schema.json`, referenced by the
 * sample `dmcp.config.json` through its `$schema` key) so that editors can complete and check it.
 * Run: `node dist/src/cli/write-config-schema.js [outDir]` (part of `npm run schemas`).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { toPublishedSchema } from "../protocol/json-schema.js";
import { ConfigSchema } from "./config.js";

export const CONFIG_SCHEMA_FILE = "config.schema.json";

/** The config file's JSON Schema, as the file is written (input side: keys with defaults are optional). */
export function configJsonSchema(): Record<string, unknown> {
  return toPublishedSchema(CONFIG_SCHEMA_FILE, ConfigSchema);
}

export function writeConfigSchema(outDir: string): string {
  mkdirSync(outDir, { recursive: true });
  const path = join(outDir, CONFIG_SCHEMA_FILE);
  writeFileSync(path, `${JSON.stringify(configJsonSchema(), null, 2)}\n`);
  return path;
}

// Runs only when executed as a script, never on import.
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const path = writeConfigSchema(process.argv[2] ?? "schemas");
  process.stderr.write(`wrote ${path}\n`);
}

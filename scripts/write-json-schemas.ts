/** Writes the JSON Schemas of the envelope and each message type into a folder (`npm run schemas`). */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { jsonSchemas } from "../src/protocol/json-schema.js";

const outDir = process.argv[2] ?? "schemas";
mkdirSync(outDir, { recursive: true });
for (const [file, schema] of Object.entries(jsonSchemas())) {
  writeFileSync(join(outDir, file), `${JSON.stringify(schema, null, 2)}\n`);
}
process.stderr.write(`wrote ${Object.keys(jsonSchemas()).length} schemas to ${outDir}\n`);

/**
 * The browser tests: headless Chromium (Debian's, /usr/bin/chromium, driven by playwright-core) against
 * a real gateway. Run apart from the main suite, which excludes this folder:
 *   sh scripts/ensure-chromium.sh && npm run build && vitest run --config test/browser/vitest.config.ts
 */
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    root: fileURLToPath(new URL("../..", import.meta.url)),
    include: ["test/browser/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: "forks",
    // One browser at a time is plenty on a two-core machine.
    fileParallelism: false,
  },
});

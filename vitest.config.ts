import { configDefaults, defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Browser tests need Chromium and run on their own: vitest run --config test/browser/vitest.config.ts
    exclude: [...configDefaults.exclude, "test/browser/**"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Each test file starts its own nats-server on a random port, so files can run in parallel.
    fileParallelism: true,
  },
});

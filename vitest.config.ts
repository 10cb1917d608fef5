import { configDefaults, defineConfig } from "vitest/config";

/** The suites that take minutes: `npm run test:long` (vitest.long.config.ts) runs them, `npm test` does not. */
export const LONG_TESTS = "test/**/*.long.test.ts";

/** What `npm test` and `npm run test:long` share. */
export const shared = {
  testTimeout: 60_000,
  hookTimeout: 60_000,
  pool: "forks",
  // Each test file starts its own nats-server on a random port, so files can run in parallel. They mostly
  // wait on child processes and sockets: on two cores, 4 forks finish sooner than vitest's default of one
  // fork fewer than the cores (a single fork, one file at a time).
  fileParallelism: true,
  maxWorkers: 4,
} as const;

/**
 * `npm test`: every suite under test/ (unit, integration, contract, e2e) but the long ones and the
 * browser test (test/browser, `npm run test:browser`, which needs Chromium).
 */
export default defineConfig({
  test: {
    ...shared,
    include: ["test/**/*.test.ts"],
    exclude: [...configDefaults.exclude, "test/browser/**", LONG_TESTS],
  },
});

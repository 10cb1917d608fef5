import { defineConfig } from "vitest/config";
import { LONG_TESTS, shared } from "./vitest.config.js";

/**
 * `npm run test:long`: the suites that take a minute or more (`*.long.test.ts`: the 3,000-input fuzz run,
 * durable calls under faults, npm pack and a global install of the tarball, the heaviest end-to-end suites).
 * CI runs it after `npm test`.
 */
export default defineConfig({
  test: {
    ...shared,
    include: [LONG_TESTS],
    testTimeout: 600_000,
    hookTimeout: 600_000,
  },
});

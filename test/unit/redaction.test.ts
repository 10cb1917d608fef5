/** Credentials stay out of logs and of what an executor tells the bus about its upstream. */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { httpConnector } from "../../adapters/outbound/index.js";
import { REPO_ROOT } from "../support/processes.js";

describe("credentials", () => {
  it("are redacted from log lines, wherever the object carries them", () => {
    const script = `
      import { createLogger } from "${REPO_ROOT}dist/src/util/logger.js";
      const log = createLogger({ name: "t" });
      log.info({ headers: { authorization: "Bearer SECRET-1" }, token: "SECRET-2", upstream: { password: "SECRET-3" } }, "hello");
      log.flush();`;
    const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
    expect(run.status).toBe(0);
    expect(run.stderr).toContain('"msg":"hello"');
    expect(run.stderr).toContain("[redacted]");
    expect(run.stderr).not.toMatch(/SECRET-\d/);
  });

  it("are left out of a remote upstream's description (logs, announcements, $SRV metadata)", () => {
    const connector = httpConnector({ url: "https://user:pass@tools.example.com/mcp?token=abc123", headers: { Authorization: "Bearer xyz" } });
    expect(connector.description).toBe("http: https://tools.example.com/mcp");
  });
});

/**
 * The environment a wrapped stdio server gets, with real processes: `dmcp wrap` and `dmcp up` start
 * it with their own environment (as if it were run by hand), plus `--env` or the config's `env`. The
 * wrapped command is a shell that writes its environment to a file and then becomes the fixture.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually, FIXTURE_BIN, runDmcp, type Child } from "../support/processes.js";

/** The fixture behind a shell that first writes its environment to $ENV_DUMP. */
const REPORTING_SERVER = ["/bin/sh", "-c", 'env > "$ENV_DUMP"; exec "$@"', "sh", process.execPath, FIXTURE_BIN, "--stdio", "--name", "envcheck"];
/** In the environment of the dmcp process only. */
const PARENT_ENV = { DMCP_TEST_FROM_PARENT: "parent", DMCP_TEST_REPLACED: "parent" };

const dir = mkdtempSync(join(tmpdir(), "dmcp-env-test-"));
const children: Child[] = [];

afterAll(async () => {
  await Promise.all(children.map((child) => child.stop()));
  rmSync(dir, { recursive: true, force: true });
});

/** The environment the wrapped server reported, once it did. */
async function reported(file: string): Promise<Record<string, string>> {
  return eventually(() => {
    if (!existsSync(file)) return undefined;
    const lines = readFileSync(file, "utf8")
      .split("\n")
      .filter((line) => line.includes("="));
    const env: Record<string, string> = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]));
    // Complete once it has what the wrapper always adds (several children may write it).
    return env.DMCP_TEST_ADDED !== undefined && env.PATH !== undefined ? env : undefined;
  }, 20_000);
}

function expectInheritedPlusOwn(env: Record<string, string>, own: string): void {
  expect(env.DMCP_TEST_FROM_PARENT).toBe("parent");
  expect(env.DMCP_TEST_REPLACED).toBe(own);
  expect(env.DMCP_TEST_ADDED).toBe(own);
  expect(env.PATH).toBe(process.env.PATH);
}

describe("the wrapped server's environment", () => {
  let nats: EmbeddedNats;

  beforeAll(async () => {
    nats = await startTestNats();
  });

  afterAll(async () => {
    await nats?.stop();
  });

  it("dmcp wrap: its own environment, plus --env", async () => {
    const dump = join(dir, "wrap.env");
    const flags = ["--env", `ENV_DUMP=${dump}`, "--env", "DMCP_TEST_REPLACED=flag", "--env", "DMCP_TEST_ADDED=flag"];
    const wrap = runDmcp(["wrap", "--name", "envcheck", "--nats", nats.url, ...flags, "--", ...REPORTING_SERVER], { env: PARENT_ENV });
    children.push(wrap);
    await wrap.waitFor(/executor serving/);
    expectInheritedPlusOwn(await reported(dump), "flag");
  });

  it("dmcp up: its own environment, plus the config's env", async () => {
    const dump = join(dir, "up.env");
    const config = join(dir, "dmcp.config.json");
    const [command, ...args] = REPORTING_SERVER;
    const env = { ENV_DUMP: dump, DMCP_TEST_REPLACED: "config", DMCP_TEST_ADDED: "config" };
    writeFileSync(config, JSON.stringify({ servers: { envcheck: { command, args, env } } }));
    const up = runDmcp(["up", "--config", config, "--http", "0", "--data-dir", join(dir, "nats")], { env: PARENT_ENV });
    children.push(up);
    await up.waitFor(/^dmcp up: MCP at /);
    expectInheritedPlusOwn(await reported(dump), "config");
  });
});

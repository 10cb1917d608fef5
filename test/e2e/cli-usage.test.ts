/**
 * What a new user tries with the `dmcp` command, as README.md, docs/cli.md and each `--help` promise:
 * wrong values give a usage error (exit 2) that names the flag or the environment variable before
 * anything starts, a port that is taken is named with the option that picks another, and the start
 * line and logs of `dmcp up` say what is true; a stdio server that ends at start is told with its exit
 * code and the last line it wrote on stderr.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { runDmcp, runDmcpToEnd, type Child } from "../support/processes.js";

function dmcp(args: string[], env: Record<string, string> = {}) {
  return runDmcpToEnd(args, { env, timeoutMs: 20_000 });
}

const root = mkdtempSync(join(tmpdir(), "dmcp-cli-usage-"));
let made = 0;
/** A new empty folder under this file's temporary folder. */
function tempDir(): string {
  made += 1;
  const dir = join(root, String(made));
  mkdirSync(dir);
  return dir;
}
function tempConfig(config: unknown): string {
  const path = join(tempDir(), "dmcp.config.json");
  writeFileSync(path, JSON.stringify(config));
  return path;
}

afterAll(() => rmSync(root, { recursive: true, force: true }));

// With --stdio and stdin closed, a dmcp up that should have refused its flags stops at once instead of running on.
const emptyConfig = tempConfig({ servers: {} });

describe("usage errors name what is wrong and exit 2", () => {
  it.each([
    ["dmcp help with an unknown command", ["help", "frobnicate"], {}, /^dmcp help: unknown command "frobnicate"/m],
    ["dmcp status --wait that is no number", ["status", "--wait", "soon"], {}, /^dmcp status: --wait needs a whole number >= 0, got "soon"$/m],
    ["a $DMCP_LOG_LEVEL that is no level", ["status"], { DMCP_LOG_LEVEL: "loud" }, /^dmcp status: \$DMCP_LOG_LEVEL must be one of .*, got "loud"$/m],
    ["--result-ttl 0", ["gateway", "--http", "0", "--result-ttl", "0"], {}, /^dmcp gateway: --result-ttl needs a duration .*\(1ms or more\), got "0"$/m],
    ["--context-max-age 0s", ["gateway", "--http", "0", "--context-max-age", "0s"], {}, /^dmcp gateway: --context-max-age needs a duration/m],
    ["--ack-wait 0", ["wrap", "--name", "x", "--ack-wait", "0", "--", "true"], {}, /^dmcp wrap: --ack-wait needs a duration/m],
    ["--auth-tokens naming no file", ["gateway", "--http", "0", "--auth-tokens", "/nonexistent/tokens"], {}, /^dmcp gateway: --auth-tokens: ENOENT/m],
    ["--jwt-jwks that is no URL", ["gateway", "--http", "0", "--jwt-jwks", "jwks.json"], {}, /^dmcp gateway: --jwt-jwks needs the URL of a JWKS, got "jwks.json"$/m],
    [
      "dmcp up --no-http with --http",
      ["up", "--config", emptyConfig, "--no-http", "--http", "0", "--stdio", "--data-dir", join(root, "no-store")],
      {},
      /^dmcp up: --no-http does not go with --http or --host$/m,
    ],
    [
      "HTTP options without --http",
      ["gateway", "--stdio", "--host", "0.0.0.0", "--rate-limit", "5/s"],
      {},
      /^dmcp gateway: --host, --rate-limit apply to the HTTP gateway: add --http PORT$/m,
    ],
    ["--identity without --stdio", ["gateway", "--http", "0", "--identity", "bob"], {}, /^dmcp gateway: --identity names the stdio client: it applies with --stdio$/m],
    [
      "a rate limit whose burst of 0 would refuse every request",
      ["gateway", "--http", "0", "--rate-limit", "5/s,burst=0"],
      {},
      /^dmcp gateway: --rate-limit: a rate limit reads N\/s or N\/s,burst=M, got "5\/s,burst=0"$/m,
    ],
  ])("%s", async (_, args, env, message) => {
    const { code, stdout, stderr } = await dmcp(args, env);
    expect(stderr).toMatch(message);
    expect(code).toBe(2);
    expect(stdout).toBe("");
  });

  it("--jwt-public-key of a file that holds no PEM public key", async () => {
    const file = join(tempDir(), "key.txt");
    writeFileSync(file, "not a key\n");
    const { code, stderr } = await dmcp(["gateway", "--http", "0", "--jwt-public-key", file]);
    expect(stderr).toContain(`dmcp gateway: --jwt-public-key: ${file} holds no PEM public key (-----BEGIN PUBLIC KEY-----)`);
    expect(code).toBe(2);
  });

  it("dmcp up --http that is no port fails before it starts a nats-server or takes a store", async () => {
    const dataDir = join(tempDir(), "store");
    const { code, stderr } = await dmcp(["up", "--config", tempConfig({ servers: {} }), "--data-dir", dataDir, "--http", "web"]);
    expect(stderr).toMatch(/^dmcp up: --http needs a port number \(0-65535\), got "web"$/m);
    expect(code).toBe(2);
    expect(existsSync(dataDir)).toBe(false);
  });

  it("a config's service name that breaks the rule says the rule", async () => {
    const { code, stderr } = await dmcp(["up", "--config", tempConfig({ servers: { "my.files": { command: "true" } } })]);
    expect(stderr).toMatch(/servers\.my\.files: invalid name: service names use 1-128 characters from A-Z a-z 0-9 _ -$/m);
    expect(code).toBe(1);
  });
});

describe("failures to start, on a live bus", () => {
  let nats: EmbeddedNats;
  let taken: Server;
  let port: number;

  beforeAll(async () => {
    nats = await startTestNats();
    taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    port = (taken.address() as { port: number }).port;
  });

  afterAll(async () => {
    await new Promise((resolve) => taken?.close(resolve));
    await nats?.stop();
  });

  it.each([
    ["--http", ["--http", "PORT"]],
    ["--metrics-port", ["--stdio", "--metrics-port", "PORT"]],
  ])("dmcp gateway %s names the address and the option that picks another, and exits 1", async (flag, args) => {
    const { code, stderr } = await dmcp(["gateway", "--nats", nats.url, ...args.map((arg) => (arg === "PORT" ? String(port) : arg))]);
    expect(stderr).toContain(`dmcp gateway: cannot listen on 127.0.0.1:${port}: the port is in use; pick another with ${flag} PORT (0: any free port)`);
    expect(code).toBe(1);
  });

  it("a stdio server that ends before it answers initialize fails dmcp wrap with its exit code and last stderr line", async () => {
    const script = 'console.error("starting up"); console.error("missing --counts FILE"); process.exit(3)';
    const { code, stderr } = await dmcp(["wrap", "--name", "early", "--nats", nats.url, "--log-level", "warn", "--", process.execPath, "-e", script]);
    expect(stderr).toContain('went away before answering initialize (exit code 3; its stderr ended with a line starting "missing --counts FILE")');
    expect(code).toBe(1);
  });
});

describe("dmcp up without HTTP and without --stdio", () => {
  let up: Child;
  let dataDir: string;

  beforeAll(async () => {
    dataDir = tempDir();
    up = runDmcp(["up", "--config", tempConfig({ servers: {} }), "--no-http", "--data-dir", dataDir]);
    await up.waitFor(/^dmcp up: /, 30_000);
  });

  afterAll(async () => {
    await up?.stop();
  });

  it("says that it serves MCP nowhere, instead of on stdio", () => {
    const line = up.stderr.find((l) => l.startsWith("dmcp up: "));
    expect(line).toMatch(/^dmcp up: MCP not served here \(no --stdio, and --no-http or gateway\.http false\); NATS at nats:\/\/127\.0\.0\.1:\d+; services: none$/);
  });

  it("a command that finds its bus logs its own pid as pid, and the dmcp up's as upPid", async () => {
    const status = runDmcp(["status", "--data-dir", dataDir, "--wait", "0", "--log-level", "info"], { env: { DMCP_NATS_URL: "" } });
    expect(await status.exited).toBe(0);
    const line = status.stderr.find((l) => l.includes("using the bus of the dmcp up running on this machine"));
    expect(line).toBeDefined();
    const record = JSON.parse(line!) as { pid: number; upPid: number };
    expect(record.pid).toBe(status.process.pid);
    expect(record.upPid).toBe(up.process.pid);
  });
});

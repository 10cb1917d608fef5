/**
 * How `dmcp wrap` and `dmcp up` start and stop, as real processes in a process group of their own (as a
 * shell runs a command): an upstream that never starts fails the command at once with one readable
 * line (no retry loop, no JSON or stack), unless --wait-for-upstream; Ctrl-C (SIGINT to the whole
 * group, so the wrapped servers and the embedded nats-server get it at the same moment) and SIGTERM
 * stop everything without restarts, failed announcements or stack traces, and leave no process.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually, FIXTURE_BIN, freePort, isAlive, runDmcp, type Child } from "../support/processes.js";

/** Log lines that an expected stop or a failed start must not print (besides the one error line). */
const NOISE = /restart|announcement failed|went away|"stack"|^\s+at |"level":(50|60)/;
const noise = (child: Child) => child.stderr.filter((line) => !line.startsWith("dmcp ") && NOISE.test(line));

const fixture = (name: string) => [process.execPath, FIXTURE_BIN, "--stdio", "--name", name];

/** Resolves once nothing is left in the process group `child` leads. */
async function groupGone(child: Child): Promise<void> {
  await eventually(() => !isAlive(-child.process.pid!), 5000, 50);
}

let nats: EmbeddedNats;
let dir: string;

beforeAll(async () => {
  nats = await startTestNats();
  dir = mkdtempSync(join(tmpdir(), "dmcp-start-stop-"));
});

afterAll(async () => {
  await nats?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("an upstream that never starts", () => {
  it("dmcp wrap with a command that does not exist: exit 1 and one line naming the command and ENOENT", async () => {
    const wrap = runDmcp(["wrap", "--name", "nocommand", "--nats", nats.url, "--", "/no/such/mcp-server", "--flag"], { detached: true });
    expect(await wrap.exited).toBe(1);
    const errors = wrap.stderr.filter((line) => !line.startsWith("{"));
    expect(errors).toEqual(["dmcp wrap: could not start the upstream MCP server (stdio: /no/such/mcp-server --flag): spawn /no/such/mcp-server ENOENT"]);
    expect(noise(wrap)).toEqual([]);
    await groupGone(wrap);
  });

  it("dmcp wrap --url that nobody listens on: exit 1 and one line naming the URL and ECONNREFUSED", async () => {
    const url = `http://127.0.0.1:${await freePort()}/mcp`;
    const wrap = runDmcp(["wrap", "--name", "nobody", "--nats", nats.url, "--url", url], { detached: true });
    expect(await wrap.exited).toBe(1);
    const errors = wrap.stderr.filter((line) => !line.startsWith("{"));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(
      new RegExp(`^dmcp wrap: could not start the upstream MCP server \\(http: ${url.replace(/\./g, "\\.")}\\): .*connect ECONNREFUSED 127\\.0\\.0\\.1:\\d+$`),
    );
    expect(noise(wrap)).toEqual([]);
  });

  it("dmcp wrap --url with a host that does not resolve: names ENOTFOUND", async () => {
    const wrap = runDmcp(["wrap", "--name", "nohost", "--nats", nats.url, "--url", "http://no-such-host.invalid/mcp"], { detached: true });
    expect(await wrap.exited).toBe(1);
    expect(wrap.stderr.filter((line) => !line.startsWith("{"))).toEqual([
      expect.stringMatching(/^dmcp wrap: could not start the upstream MCP server \(http: http:\/\/no-such-host\.invalid\/mcp\): .*ENOTFOUND no-such-host\.invalid$/),
    ]);
  });

  it("dmcp wrap --wait-for-upstream keeps trying instead, and serves as degraded", async () => {
    const wrap = runDmcp(["wrap", "--name", "patient", "--nats", nats.url, "--wait-for-upstream", "--", "/no/such/mcp-server"], { detached: true });
    try {
      await wrap.waitFor(/"status":"degraded".*executor serving/);
      // A retry of the server itself (its stateless lane retries too).
      await eventually(() => wrap.stderr.filter((line) => line.includes("could not start the upstream MCP server") && !line.includes('"lane"')).length >= 2, 10_000);
      expect(wrap.process.exitCode).toBeNull();
    } finally {
      wrap.kill("SIGTERM");
      expect(await wrap.exited).toBe(0);
    }
  });

  it("dmcp up with a configured command that does not exist: exit 1, one line naming the server, and nothing left running", async () => {
    const config = join(dir, "broken.json");
    writeFileSync(
      config,
      JSON.stringify({
        gateway: { http: false },
        servers: { good: { command: fixture("good")[0], args: fixture("good").slice(1) }, broken: { command: "/no/such/mcp-server", replicas: 2 } },
      }),
    );
    const up = runDmcp(["up", "--config", config, "--data-dir", join(dir, "nats-broken")], { detached: true });
    expect(await up.exited).toBe(1);
    expect(up.stderr.filter((line) => !line.startsWith("{"))).toEqual([
      "dmcp up: servers.broken: could not start the upstream MCP server (stdio: /no/such/mcp-server): spawn /no/such/mcp-server ENOENT",
    ]);
    expect(noise(up)).toEqual([]);
    // The server that did start, and the embedded nats-server, were stopped.
    await groupGone(up);
  });
});

describe("Ctrl-C and SIGTERM", () => {
  /** Signals the whole process group, as a terminal does; resolves with the exit code and how long it took. */
  async function stopGroup(child: Child, signal: NodeJS.Signals): Promise<{ code: number | null; ms: number }> {
    const sent = Date.now();
    process.kill(-child.process.pid!, signal);
    const code = await child.exited;
    return { code, ms: Date.now() - sent };
  }

  function expectQuietStop(child: Child, signal: NodeJS.Signals): void {
    expect(child.stderr.some((line) => line.includes(`"reason":"${signal}"`) && line.includes("shutting down"))).toBe(true);
    expect(noise(child)).toEqual([]);
  }

  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    it(`dmcp wrap: ${signal} to its process group stops it without restarting the server`, async () => {
      const wrap = runDmcp(["wrap", "--name", `wrapped_${signal}`, "--nats", nats.url, "--", ...fixture("wrapped")], { detached: true });
      await wrap.waitFor(/executor serving/);
      const { code, ms } = await stopGroup(wrap, signal);
      expect(code).toBe(0);
      expectQuietStop(wrap, signal);
      await groupGone(wrap);
      // A generous guard only (the machine is shared): it took 5-6 s when it waited for restarts.
      expect(ms).toBeLessThan(4000);
    });

    it(`dmcp up: ${signal} to its process group (servers and nats-server included) stops it at once and quietly`, async () => {
      const config = join(dir, `up-${signal}.json`);
      writeFileSync(
        config,
        JSON.stringify({
          gateway: { http: { port: 0, host: "127.0.0.1" } },
          servers: { one: { command: fixture("one")[0], args: fixture("one").slice(1) }, two: { command: fixture("two")[0], args: fixture("two").slice(1), replicas: 2 } },
        }),
      );
      const up = runDmcp(["up", "--config", config, "--data-dir", join(dir, `nats-${signal}`)], { detached: true });
      await up.waitFor(/dmcp up: MCP at/, 30_000);
      const { code, ms } = await stopGroup(up, signal);
      expect(code).toBe(0);
      expectQuietStop(up, signal);
      await groupGone(up);
      expect(ms).toBeLessThan(4000);
    });
  }

  /** `dmcp wrap` around the fixture behind a shell that says "starting" on stderr, then takes `seconds` to start it. */
  const slowStart = (service: string, seconds: number) =>
    runDmcp(["wrap", "--name", service, "--nats", nats.url, "--", "sh", "-c", `echo starting >&2; sleep ${seconds}; exec "$0" "$@"`, ...fixture(service)], { detached: true });

  it("dmcp wrap: a SIGTERM that comes while it starts stops it once started, in order", async () => {
    const wrap = slowStart("slow", 1);
    await wrap.waitFor(/"upstream_stderr":"starting"/);
    wrap.kill("SIGTERM");
    await wrap.waitFor(/stopping once started/);
    expect(await wrap.exited).toBe(0);
    const order = ["stopping once started", "executor serving", "shutting down"].map((msg) => wrap.stderr.findIndex((line) => line.includes(`"msg":"${msg}"`)));
    expect(order.every((at, i) => at >= 0 && (i === 0 || at > order[i - 1]!))).toBe(true);
    expect(noise(wrap)).toEqual([]);
  });

  it("dmcp wrap: a second signal ends it at once", async () => {
    const wrap = slowStart("impatient", 30);
    await wrap.waitFor(/"upstream_stderr":"starting"/);
    wrap.kill("SIGINT");
    await wrap.waitFor(/stopping once started/);
    wrap.kill("SIGINT");
    expect(await wrap.exited).toBe(130);
    expect(wrap.stderr).toContain("dmcp: SIGINT again: exiting at once");
    // Its shell still sleeps in the group: not this test's business.
    process.kill(-wrap.process.pid!, "SIGKILL");
  });

  it("dmcp up: SIGHUP (its terminal closed) stops it, its servers and its nats-server in order", async () => {
    const config = join(dir, "up-hangup.json");
    writeFileSync(config, JSON.stringify({ gateway: { http: false }, servers: { hangup: { command: fixture("hangup")[0], args: fixture("hangup").slice(1) } } }));
    const up = runDmcp(["up", "--config", config, "--data-dir", join(dir, "nats-hangup")], { detached: true });
    await up.waitFor(/^dmcp up: /, 30_000);
    up.kill("SIGHUP");
    expect(await up.exited).toBe(0);
    expectQuietStop(up, "SIGHUP");
    await groupGone(up);
  });

  it("dmcp up: SIGINT to dmcp up alone still stops its servers and nats-server in order", async () => {
    const config = join(dir, "up-alone.json");
    writeFileSync(config, JSON.stringify({ gateway: { http: false }, servers: { alone: { command: fixture("alone")[0], args: fixture("alone").slice(1) } } }));
    const up = runDmcp(["up", "--config", config, "--data-dir", join(dir, "nats-alone")], { detached: true });
    await up.waitFor(/^dmcp up: /, 30_000);
    up.kill("SIGINT");
    expect(await up.exited).toBe(0);
    expectQuietStop(up, "SIGINT");
    await groupGone(up);
  });
});

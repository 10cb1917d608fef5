/**
 * One store, one `dmcp up`: a second `dmcp up` on the same store is refused with a message naming the
 * store and --data-dir, a crashed one (SIGKILL) neither blocks the next start nor leaves its nats-server
 * on the store, and the other commands find the bus of the `dmcp up` running on this machine through the
 * runtime file in its store (which is gone once it stops).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { eventually, FIXTURE_BIN, isAlive, runDmcp, spawnNode, type Child } from "../support/processes.js";
import { natsTarget } from "../../src/cli/args.js";
import { parseConfig, withDataDir } from "../../src/cli/config.js";
import { UP_FILE } from "../../src/cli/up-store.js";

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "dmcp-store-test-"));
  tempDirs.push(dir);
  return dir;
}

const config = (() => {
  const path = join(tempDir(), "dmcp.config.json");
  writeFileSync(path, JSON.stringify({ servers: { fixture: { command: process.execPath, args: [FIXTURE_BIN, "--stdio", "--name", "fixture"] } } }));
  return path;
})();

/** No $DMCP_NATS_URL (the helpers set one so that a forgotten --nats fails), and the state home given. */
function findingEnv(stateHome: string): Record<string, string> {
  return { DMCP_NATS_URL: "", XDG_STATE_HOME: stateHome };
}

async function startUp(args: string[], env: Record<string, string>): Promise<{ up: Child; mcpUrl: string; natsUrl: string }> {
  const up = runDmcp(["up", "--config", config, "--http", "0", ...args], { env });
  const [, mcpUrl, natsUrl] = await up.waitFor(/^dmcp up: MCP at (\S+); NATS at (\S+);/);
  return { up, mcpUrl: mcpUrl!, natsUrl: natsUrl! };
}

/** Runs a dmcp command to its end (killing it after 20 s); resolves with its exit code, stdout and stderr. */
async function run(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = runDmcp(args, { env });
  let stdout = "";
  child.process.stdout!.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  const timer = setTimeout(() => void child.stop(), 20_000);
  const code = await child.exited;
  clearTimeout(timer);
  await new Promise((resolve) => setImmediate(resolve));
  return { code, stdout, stderr: child.stderr.join("\n") };
}

/** Alive and not a zombie (an orphan's reaper may take its time). */
function running(pid: number): boolean {
  if (!isAlive(pid)) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/** The pid of the nats-server running with this store (from /proc). */
function natsServerOf(store: string): number {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const args = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
      if (args[0]!.endsWith("nats-server") && args.includes(store)) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`no nats-server with the store ${store}`);
}

afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

describe("the default store belongs to one dmcp up", () => {
  const stateHome = tempDir();
  const store = join(stateHome, "dmcp", "nats");
  const env = findingEnv(stateHome);
  let first: { up: Child; mcpUrl: string; natsUrl: string };

  beforeAll(async () => {
    first = await startUp([], env);
  });

  afterAll(async () => {
    await first?.up.stop();
  });

  it("writes the runtime file with its pid and bus in the store", () => {
    const record = JSON.parse(readFileSync(join(store, UP_FILE), "utf8")) as { pid: number; url: string; serverPid: number };
    expect(record).toMatchObject({ pid: first.up.process.pid, url: first.natsUrl });
    expect(running(record.serverPid)).toBe(true);
  });

  it("refuses a second dmcp up on the same store, naming the store and --data-dir, and the first keeps serving", async () => {
    const second = await run(["up", "--config", config, "--http", "0", "--log-level", "silent"], env);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`dmcp up: the store ${store} is in use by another dmcp up (pid ${first.up.process.pid}, NATS at ${first.natsUrl})`);
    expect(second.stderr).toContain("--data-dir");

    const client = new Client({ name: "store-test", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(first.mcpUrl)));
    try {
      expect((await client.callTool({ name: "add", arguments: { a: 1, b: 2 } })).structuredContent).toEqual({ sum: 3 });
    } finally {
      await client.close();
    }
  });

  it("starts a second dmcp up with a store of its own", async () => {
    const other = await startUp(["--data-dir", tempDir()], env);
    try {
      expect(other.natsUrl).not.toBe(first.natsUrl);
    } finally {
      expect(await other.up.stop()).toBe(0);
    }
  });

  it("dmcp status without --nats finds the bus of the running dmcp up", async () => {
    const { code, stdout } = await run(["status", "--json", "--wait", "1500"], env);
    expect(code).toBe(0);
    const status = JSON.parse(stdout) as { services: Record<string, { replicas: unknown[] }> };
    expect(Object.keys(status.services)).toEqual(["fixture"]);
  });

  it("dmcp tail without --nats finds it too", async () => {
    const tail = runDmcp(["tail"], { env });
    try {
      await tail.waitFor(/^dmcp tail: watching/);
      tail.kill("SIGINT");
      expect(await tail.exited).toBe(0);
    } finally {
      await tail.stop();
    }
  });

  it("dmcp gateway without --nats serves the services of the running dmcp up", async () => {
    const gateway = runDmcp(["gateway", "--http", "0"], { env });
    try {
      const [, url] = await gateway.waitFor(/serving MCP at (\S+)/);
      const client = new Client({ name: "store-test", version: "1.0.0" });
      await client.connect(new StreamableHTTPClientTransport(new URL(url!)));
      try {
        await eventually(async () => (await client.listTools()).tools.some((tool) => tool.name === "add"));
      } finally {
        await client.close();
      }
    } finally {
      await gateway.stop();
    }
  });

  it("dmcp status --data-dir DIR finds the dmcp up of that store", async () => {
    const { code, stdout } = await run(["status", "--json", "--wait", "1500", "--data-dir", store], { DMCP_NATS_URL: "", XDG_STATE_HOME: tempDir() });
    expect(code).toBe(0);
    expect(Object.keys((JSON.parse(stdout) as { services: object }).services)).toEqual(["fixture"]);
  });

  it("removes the runtime file when it stops", async () => {
    expect(await first.up.stop()).toBe(0);
    expect(existsSync(join(store, UP_FILE))).toBe(false);
  });
});

describe("after a crash", () => {
  it("a dmcp up killed with SIGKILL blocks neither the next start nor leaves its nats-server on the store", async () => {
    const stateHome = tempDir();
    const env = findingEnv(stateHome);
    const lockFile = join(stateHome, "dmcp", "nats", UP_FILE);
    const crashed = await startUp([], env);
    // Its nats-server, found by its store, so that it is cleaned up whatever happens.
    const serverPid = natsServerOf(join(stateHome, "dmcp", "nats"));
    let next: Awaited<ReturnType<typeof startUp>> | undefined;
    try {
      expect(JSON.parse(readFileSync(lockFile, "utf8"))).toMatchObject({ serverPid });
      crashed.up.kill("SIGKILL");
      await crashed.up.exited;
      // The lock and the crashed one's nats-server are still there.
      expect(existsSync(lockFile)).toBe(true);
      expect(running(serverPid)).toBe(true);

      next = await startUp([], env);
      expect(running(serverPid)).toBe(false);
      expect(JSON.parse(readFileSync(lockFile, "utf8"))).toMatchObject({ pid: next.up.process.pid, url: next.natsUrl });
      const { code, stdout } = await run(["status", "--json", "--wait", "1500"], env);
      expect(code).toBe(0);
      expect(Object.keys((JSON.parse(stdout) as { services: object }).services)).toEqual(["fixture"]);
    } finally {
      await next?.up.stop();
      if (running(serverPid)) process.kill(serverPid, "SIGKILL");
    }
  });

  it("a runtime file whose pid is gone leads nobody to its bus", async () => {
    const dataDir = tempDir();
    const gone = spawnNode(["-e", ""]);
    await gone.exited;
    writeFileSync(join(dataDir, UP_FILE), JSON.stringify({ pid: gone.process.pid, url: "nats://127.0.0.1:9", startedAt: new Date().toISOString() }));
    const saved = process.env.DMCP_NATS_URL;
    delete process.env.DMCP_NATS_URL;
    try {
      expect(natsTarget({ "data-dir": dataDir })).toEqual({ url: "nats://127.0.0.1:4222", from: "default", dataDir });
      // The same file with a live pid (this one) is followed.
      writeFileSync(join(dataDir, UP_FILE), JSON.stringify({ pid: process.pid, url: "nats://127.0.0.1:9", startedAt: new Date().toISOString() }));
      expect(natsTarget({ "data-dir": dataDir })).toMatchObject({ url: "nats://127.0.0.1:9", from: "dmcp up" });
      // An explicit URL wins.
      expect(natsTarget({ "data-dir": dataDir, nats: "nats://elsewhere:4222" })).toMatchObject({ url: "nats://elsewhere:4222", from: "--nats" });
    } finally {
      if (saved !== undefined) process.env.DMCP_NATS_URL = saved;
    }
  });

  it("a stale lock whose pid is gone does not block a start", async () => {
    const dataDir = tempDir();
    const gone = spawnNode(["-e", ""]);
    await gone.exited;
    writeFileSync(join(dataDir, UP_FILE), JSON.stringify({ pid: gone.process.pid, url: "nats://127.0.0.1:9", startedAt: new Date().toISOString() }));
    const next = await startUp(["--data-dir", dataDir], { DMCP_NATS_URL: "" });
    try {
      expect(JSON.parse(readFileSync(join(dataDir, UP_FILE), "utf8"))).toMatchObject({ pid: next.up.process.pid, url: next.natsUrl });
    } finally {
      await next.up.stop();
    }
  });
});

describe("${DMCP_DATA_DIR} in the config", () => {
  it("stands for the data directory in a stdio server's args and env values, which is created", () => {
    const dataDir = join(tempDir(), "store");
    const { servers } = parseConfig({
      servers: {
        memory: { command: "npx", args: ["-y", "x", "--dir=${DMCP_DATA_DIR}/files"], env: { MEMORY_FILE_PATH: "${DMCP_DATA_DIR}/memory.jsonl", KEEP: "as is" } },
        remote: { url: "https://example.com/${DMCP_DATA_DIR}" },
      },
    });
    const replaced = withDataDir(servers, dataDir);
    expect(replaced.memory).toMatchObject({ args: ["-y", "x", `--dir=${dataDir}/files`], env: { MEMORY_FILE_PATH: `${dataDir}/memory.jsonl`, KEEP: "as is" } });
    expect(replaced.remote).toEqual(servers.remote);
    expect(existsSync(dataDir)).toBe(true);
  });
});

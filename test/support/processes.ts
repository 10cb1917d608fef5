/** Test helpers: the real `dmcp` CLI and the fixture server as child processes (built into dist/). */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { terminate } from "../../src/util/terminate.js";

const SUPPORT_ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** The repository root, from test/support (vitest) or from dist/test/support (`npm run chaos`). */
export const REPO_ROOT = SUPPORT_ROOT.endsWith("/dist/") ? SUPPORT_ROOT.slice(0, -"dist/".length) : SUPPORT_ROOT;
export const DMCP_BIN = `${REPO_ROOT}dist/src/cli/main.js`;
export const FIXTURE_BIN = `${REPO_ROOT}dist/test/support/fixtures/raw-server.js`;
/** The fixture that counts the requests it gets (the cache's tests). */
export const COUNTING_FIXTURE_BIN = `${REPO_ROOT}dist/test/support/fixtures/counting-server.js`;

if (!existsSync(DMCP_BIN) || !existsSync(FIXTURE_BIN)) {
  throw new Error("dist/ is missing: run `npm run build` (npm test does it) before the tests");
}

/**
 * The nats-server binaries version-dependent tests run on: the system's, and a current one (2.11+,
 * from `scripts/fetch-current-nats-server.sh` or $NATS_SERVER_CURRENT_BIN) when it is there.
 */
export function natsServersToCompare(what: string): { label: string; binary: string | undefined }[] {
  const current = process.env.NATS_SERVER_CURRENT_BIN ?? `${REPO_ROOT}.cache/nats-server-current/root/usr/sbin/nats-server`;
  const servers = [{ label: "the system's nats-server", binary: undefined as string | undefined }];
  if (existsSync(current)) servers.push({ label: "a current nats-server", binary: current });
  else console.warn(`no current nats-server at ${current}: run scripts/fetch-current-nats-server.sh to test ${what} on it too`);
  return servers;
}

export interface Child {
  process: ChildProcess;
  /** Every stderr line so far (pino JSON lines and plain text). */
  stderr: string[];
  /**
   * Resolves with the first stderr line matching (from line `since` on, to wait for a new one), or
   * rejects after the timeout or on exit.
   */
  waitFor(pattern: RegExp, timeoutMs?: number, since?: number): Promise<RegExpMatchArray>;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after 5 s; resolves with the exit code. */
  stop(): Promise<number | null>;
}

const running = new Set<ChildProcess>();
const killRunning = () => {
  for (const child of running) child.kill("SIGKILL");
};
process.once("exit", killRunning);
// vitest ends a test file's worker with SIGTERM, which skips "exit" handlers: a child a test left
// running (a gateway retrying its dead nats-server forever) would outlive the run.
process.once("SIGTERM", () => {
  killRunning();
  process.exit(143);
});

export interface SpawnOptions {
  env?: Record<string, string>;
  stdin?: "pipe" | "ignore";
  /** A process group of its own (pid = group id), as a shell gives a command: `process.kill(-pid, sig)` is Ctrl-C. */
  detached?: boolean;
  cwd?: string;
}

export function spawnNode(args: string[], options: SpawnOptions = {}): Child {
  return spawnProgram(process.execPath, args, options);
}

/** Any program (nats-server, haproxy) as a child the test tracks like a Node one. */
export function spawnProgram(program: string, args: string[], options: SpawnOptions = {}): Child {
  const child = spawn(program, args, {
    stdio: [options.stdin ?? "ignore", "pipe", "pipe"],
    detached: options.detached ?? false,
    ...(options.cwd ? { cwd: options.cwd } : {}),
    // A command that forgets --nats must fail, not reach the machine's own server on 4222.
    env: { ...process.env, DMCP_NATS_URL: "nats://127.0.0.1:9", ...options.env },
  });
  running.add(child);
  const stderr: string[] = [];
  const waiters = new Set<{ pattern: RegExp; resolve: (m: RegExpMatchArray) => void }>();
  createInterface({ input: child.stderr! }).on("line", (line) => {
    stderr.push(line);
    for (const waiter of waiters) {
      const match = line.match(waiter.pattern);
      if (match) {
        waiters.delete(waiter);
        waiter.resolve(match);
      }
    }
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code, signal) => {
      running.delete(child);
      resolve(code ?? (signal ? null : code));
    }),
  );
  return {
    process: child,
    stderr,
    exited,
    // A deadline, not a timing assert: a loaded machine starts processes slowly.
    waitFor(pattern, timeoutMs = 60_000, since = 0) {
      const seen = stderr
        .slice(since)
        .map((line) => line.match(pattern))
        .find(Boolean);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const waiter = { pattern, resolve };
        waiters.add(waiter);
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`timed out waiting for ${pattern} in stderr:\n${stderr.slice(-20).join("\n")}`));
        }, timeoutMs);
        void exited.then((code) => {
          if (!waiters.has(waiter)) return;
          waiters.delete(waiter);
          clearTimeout(timer);
          reject(new Error(`process exited (${code}) before ${pattern}:\n${stderr.slice(-20).join("\n")}`));
        });
        waiter.resolve = (match) => {
          clearTimeout(timer);
          resolve(match);
        };
      });
    },
    kill(signal = "SIGKILL") {
      child.kill(signal);
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      await terminate(child, exited);
      return exited;
    },
  };
}

export function runDmcp(args: string[], options: SpawnOptions = {}): Child {
  return spawnNode([DMCP_BIN, ...args], options);
}

/** What `dmcp ARGS` printed and its exit code, once it has ended. */
export interface FinishedRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `dmcp ARGS` to its end (killing it after the timeout) and collects both streams. */
export async function runDmcpToEnd(args: string[], options: SpawnOptions & { timeoutMs?: number } = {}): Promise<FinishedRun> {
  const child = runDmcp(args, options);
  let stdout = "";
  child.process.stdout!.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 15_000);
  const code = await child.exited;
  clearTimeout(timer);
  // Let the readline interface deliver the last stderr lines.
  await new Promise((resolve) => setImmediate(resolve));
  return { code, stdout, stderr: child.stderr.join("\n") };
}

/**
 * Waits for the line that says a child started; when it does not come, the child is killed, so that a
 * failed start does not leave a process running after its test file (it would outlive the nats-server).
 */
async function startedOrKilled(child: Child, started: RegExp): Promise<RegExpMatchArray> {
  try {
    return await child.waitFor(started);
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  }
}

/** `dmcp wrap` around the fixture over stdio; resolves once the executor serves. */
export async function wrapFixtureStdio(natsUrl: string, service: string, extra: string[] = []): Promise<Child> {
  const child = runDmcp(["wrap", "--name", service, "--nats", natsUrl, "--heartbeat", "500", ...extra, "--", process.execPath, FIXTURE_BIN, "--stdio", "--name", service]);
  await startedOrKilled(child, /executor serving/);
  return child;
}

/** The fixture as an HTTP server in its own process. */
export async function startFixtureHttp(name: string): Promise<Child & { url: string }> {
  const child = spawnNode([FIXTURE_BIN, "--http", "0", "--name", name]);
  const [, port] = await startedOrKilled(child, /LISTENING (\d+)/);
  return Object.assign(child, { url: `http://127.0.0.1:${port}/mcp` });
}

/** `dmcp wrap --url` around an HTTP MCP server; resolves once the executor serves. */
export async function wrapUrl(natsUrl: string, service: string, url: string, extra: string[] = []): Promise<Child> {
  const child = runDmcp(["wrap", "--name", service, "--nats", natsUrl, "--heartbeat", "500", "--url", url, ...extra]);
  await startedOrKilled(child, /executor serving/);
  return child;
}

/** `dmcp gateway --http 0`; resolves with its MCP URL. */
export async function startGatewayHttp(natsUrl: string, extra: string[] = []): Promise<Child & { url: string }> {
  const child = runDmcp(["gateway", "--nats", natsUrl, "--http", "0", ...extra]);
  const [, url] = await startedOrKilled(child, /serving MCP at (\S+)/);
  return Object.assign(child, { url: url! });
}

/** A free loopback port (free now: the server that probed it is closed again). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Whether a process with this pid is still running. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Polls `check` until it returns a truthy value or the timeout passes: for a state that no event
 * announces (a list, a metric, a file), never for a fixed pause.
 */
export async function eventually<T>(check: () => Promise<T> | T, timeoutMs = 30_000, everyMs = 100): Promise<NonNullable<T>> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${String(last)}` : ""}`);
    await sleep(everyMs);
  }
}

/**
 * How many times the fixture's `tool` (`crash` or `sleep`) ran for each call, by correlation id, across
 * these `dmcp wrap` processes (from stderr line `since` of each): the fixture says so on its stderr,
 * which the executor logs as `upstream_stderr`.
 */
export function upstreamRuns(executors: Child[], tool: "crash" | "sleep", since: number[] = []): Map<string, number> {
  const marker = new RegExp(`^${tool}: running (?:\\d+ )?(\\{.*\\})$`);
  const runs = new Map<string, number>();
  for (const [index, executor] of executors.entries()) {
    for (const line of executor.stderr.slice(since[index] ?? 0)) {
      let logged: unknown;
      try {
        logged = (JSON.parse(line) as { upstream_stderr?: unknown }).upstream_stderr;
      } catch {
        continue;
      }
      const run = typeof logged === "string" ? logged.match(marker) : null;
      const correlationId = run ? (JSON.parse(run[1]!) as { correlation_id?: unknown }).correlation_id : undefined;
      if (typeof correlationId === "string") runs.set(correlationId, (runs.get(correlationId) ?? 0) + 1);
    }
  }
  return runs;
}

/** How many times the fixture's `crash` tool ran for one durable call, across these `dmcp wrap` processes. */
export function crashRuns(executors: Child[], correlationId: string): number {
  return upstreamRuns(executors, "crash").get(correlationId) ?? 0;
}

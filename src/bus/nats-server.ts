/**
 * A private `nats-server` child process: the embedded bus for `dmcp up` without `--nats`, and the
 * real broker every test runs against.
 *
 * Nothing happens at import time. `startNatsServer()` spawns the binary on a loopback port (random by
 * default, learned from `--ports_file_dir`), waits until it accepts TCP connections, and returns a
 * handle with explicit `stop()`; `kill()` and `restart()` exist for fault-injection tests.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants as fsConstants, rmSync, statSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import type { Logger } from "pino";
import { sleep, terminate } from "../util/index.js";

const WELL_KNOWN_PATHS = ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"];
const STDERR_RING_LINES = 50;
const STDERR_TAIL_IN_ERRORS = 20;
const STOP_GRACE_MS = 5_000;
const POLL_INTERVAL_MS = 25;
const PROBE_TIMEOUT_MS = 1_000;

// ---------------------------------------------------------------------------------------------------
// Errors

export class NatsServerNotFoundError extends Error {
  readonly code = "NATS_SERVER_NOT_FOUND";
  /** The explicit path (option or NATS_SERVER_BIN) that was rejected, if any. */
  readonly tried: string | undefined;

  constructor(tried?: string) {
    const what = tried
      ? `nats-server binary not found or not executable: ${tried}.`
      : "nats-server binary not found (looked at NATS_SERVER_BIN, PATH, /usr/sbin, /usr/bin, /usr/local/bin).";
    super(
      `${what} Install it with \`apt-get install -y nats-server\`, ` +
        "or download a release from https://github.com/nats-io/nats-server/releases, " +
        "or set NATS_SERVER_BIN to the path of the binary.",
    );
    this.name = "NatsServerNotFoundError";
    this.tried = tried;
  }
}

export class NatsServerStartError extends Error {
  readonly code = "NATS_SERVER_START_FAILED";
  /** The last lines nats-server wrote to stderr before the failure. */
  readonly stderrTail: readonly string[];

  constructor(reason: string, stderrTail: readonly string[], options?: { cause?: unknown }) {
    const tail = stderrTail.length > 0 ? `\n--- nats-server stderr (last lines) ---\n${stderrTail.join("\n")}` : "";
    super(`nats-server failed to start: ${reason}${tail}`, options);
    this.name = "NatsServerStartError";
    this.stderrTail = stderrTail;
  }
}

// ---------------------------------------------------------------------------------------------------
// Binary lookup

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function searchPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, name);
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

/** Resolves a user-given binary: a path is taken as is, a bare name is looked up on PATH. */
function resolveGiven(given: string): string | undefined {
  if (given.includes("/")) return isExecutableFile(given) ? given : undefined;
  return searchPath(given);
}

/**
 * Finds an executable `nats-server`. An explicit path, or else `NATS_SERVER_BIN`, is authoritative:
 * when given but unusable the result is `undefined` (no silent fallback to another binary).
 * Otherwise: every directory on PATH, then the usual install locations.
 */
export function findNatsServerBinary(explicit?: string): string | undefined {
  if (explicit !== undefined && explicit !== "") return resolveGiven(explicit);
  const fromEnv = process.env.NATS_SERVER_BIN;
  if (fromEnv !== undefined && fromEnv !== "") return resolveGiven(fromEnv);
  return searchPath("nats-server") ?? WELL_KNOWN_PATHS.find(isExecutableFile);
}

// ---------------------------------------------------------------------------------------------------
// Child-process registry: children must not outlive this process.

interface Owned {
  /** The current child (replaced by restart()). */
  child: ChildProcess | undefined;
  /** Temp dirs to remove on process exit (best effort). */
  tempDirs: string[];
}

const live = new Set<Owned>();
let exitHandlerInstalled = false;

function onProcessExit(): void {
  exitHandlerInstalled = false;
  for (const owned of live) {
    try {
      owned.child?.kill("SIGKILL");
    } catch {
      // already gone
    }
    for (const dir of owned.tempDirs) {
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // best effort at exit
      }
    }
  }
  live.clear();
}

/** One shared `process.once("exit")` handler for all children (no MaxListeners warnings). */
function track(owned: Owned): void {
  live.add(owned);
  if (!exitHandlerInstalled) {
    process.once("exit", onProcessExit);
    exitHandlerInstalled = true;
  }
}

function untrack(owned: Owned): void {
  live.delete(owned);
  if (live.size === 0 && exitHandlerInstalled) {
    process.removeListener("exit", onProcessExit);
    exitHandlerInstalled = false;
  }
}

// ---------------------------------------------------------------------------------------------------
// Public API

export interface EmbeddedNatsOptions {
  /** Path (or bare name on PATH) of the nats-server binary; default: see findNatsServerBinary(). */
  binary?: string;
  /** Listen address; default 127.0.0.1. */
  host?: string;
  /** Listen port; default -1 = random. */
  port?: number;
  /** Enable JetStream; default true. */
  jetstream?: boolean;
  /** JetStream store dir; default a fresh temp dir that is removed on stop. */
  dataDir?: string;
  /** How long to wait for the server to accept connections; default 10000. */
  startTimeoutMs?: number;
  /** Appended to the command line. */
  extraArgs?: string[];
  /** Receives start/stop events and the server's stderr at debug level. */
  logger?: Logger;
}

export interface EmbeddedNats {
  /** Client URL, e.g. nats://127.0.0.1:41234 (stable across restart()). */
  readonly url: string;
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  /** Pid of the current child (changes on restart(); the last one is kept after stop()). */
  readonly pid: number;
  /** Graceful stop (SIGTERM, SIGKILL after 5 s); removes temp dirs this module created. Idempotent. */
  stop(): Promise<void>;
  /** Abrupt signal to the child (default SIGKILL), for fault tests. Does not clean up: call stop(). */
  kill(signal?: NodeJS.Signals): void;
  /** Stops the child (if running) and starts it again on the same port and store dir. */
  restart(): Promise<void>;
}

interface Running {
  child: ChildProcess;
  exited: Promise<void>;
  stderr: string[];
}

interface LaunchSpec {
  binary: string;
  host: string;
  port: number;
  jetstream: boolean;
  dataDir: string;
  portsDir: string;
  startTimeoutMs: number;
  extraArgs: string[];
  logger: Logger | undefined;
}

export async function startNatsServer(options: EmbeddedNatsOptions = {}): Promise<EmbeddedNats> {
  const binary = findNatsServerBinary(options.binary);
  if (binary === undefined) {
    throw new NatsServerNotFoundError(options.binary || process.env.NATS_SERVER_BIN || undefined);
  }

  const host = options.host ?? "127.0.0.1";
  const jetstream = options.jetstream ?? true;
  const base = await mkdtemp(join(tmpdir(), "dmcp-nats-"));
  const portsDir = join(base, "ports");
  const dataDir = options.dataDir ?? join(base, "store");
  try {
    await mkdir(portsDir);
    await mkdir(dataDir, { recursive: true });
  } catch (err) {
    await rm(base, { recursive: true, force: true });
    throw new NatsServerStartError(`cannot create ${portsDir} or ${dataDir}`, [], { cause: err });
  }

  const spec: LaunchSpec = {
    binary,
    host,
    port: options.port ?? -1,
    jetstream,
    dataDir,
    portsDir,
    startTimeoutMs: options.startTimeoutMs ?? 10_000,
    extraArgs: options.extraArgs ?? [],
    logger: options.logger?.child({ component: "nats-server" }),
  };
  // `base` holds the ports dir and, unless the user gave one, the store: always ours to remove.
  const owned: Owned = { child: undefined, tempDirs: [base] };

  let running: Running;
  let port: number;
  try {
    ({ running, port } = await launch(spec, owned));
  } catch (err) {
    await rm(base, { recursive: true, force: true });
    throw err;
  }
  spec.port = port; // restart() reuses it

  const url = `nats://${urlHost(connectHost(host))}:${port}`;
  let current: Running | undefined = running;
  let stopping: Promise<void> | undefined;
  // The pid of the latest child; kept after it exits (never -1, which process.kill() would broadcast).
  let lastPid = running.child.pid ?? 0;

  const handle: EmbeddedNats = {
    url,
    port,
    host,
    dataDir,
    get pid(): number {
      return lastPid;
    },
    kill(signal: NodeJS.Signals = "SIGKILL"): void {
      if (current && current.child.exitCode === null && current.child.signalCode === null) {
        current.child.kill(signal);
      }
    },
    async restart(): Promise<void> {
      if (stopping) throw new NatsServerStartError("restart() after stop()", []);
      if (current) await terminate(current.child, current.exited, STOP_GRACE_MS);
      current = undefined;
      const next = await launch(spec, owned);
      current = next.running;
      lastPid = current.child.pid ?? lastPid;
    },
    stop(): Promise<void> {
      stopping ??= (async () => {
        if (current) await terminate(current.child, current.exited, STOP_GRACE_MS);
        current = undefined;
        untrack(owned);
        await rm(base, { recursive: true, force: true });
        spec.logger?.debug({ url }, "nats-server stopped");
      })();
      return stopping;
    },
  };
  return handle;
}

// ---------------------------------------------------------------------------------------------------
// Internals

function connectHost(host: string): string {
  if (host === "0.0.0.0" || host === "") return "127.0.0.1";
  if (host === "::" || host === "[::]") return "::1";
  return host;
}

function urlHost(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

function buildArgs(spec: LaunchSpec): string[] {
  const args = ["-a", spec.host, "-p", String(spec.port), "--ports_file_dir", spec.portsDir];
  if (spec.jetstream) args.push("-js", "-sd", spec.dataDir);
  args.push(...spec.extraArgs);
  return args;
}

/** Spawns the child and waits until it is ready; on failure the child is killed before rejecting. */
async function launch(spec: LaunchSpec, owned: Owned): Promise<{ running: Running; port: number }> {
  const args = buildArgs(spec);
  const child = spawn(spec.binary, args, { stdio: ["ignore", "ignore", "pipe"] });
  const stderr: string[] = [];
  let partial = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      stderr.push(line);
      if (stderr.length > STDERR_RING_LINES) stderr.shift();
      spec.logger?.debug({ pid: child.pid }, line);
    }
  });
  const tail = (): string[] => {
    const all = partial === "" ? stderr : [...stderr, partial];
    return all.slice(-STDERR_TAIL_IN_ERRORS);
  };

  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let spawnError: Error | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once("exit", (code, signal) => {
      exitInfo = { code, signal };
      resolve();
    });
    child.on("error", (err) => {
      spawnError = err;
      // A failed spawn emits "error" and no "exit".
      if (child.pid === undefined) resolve();
    });
  });
  const running: Running = { child, exited, stderr };
  owned.child = child;
  track(owned);

  const deadline = Date.now() + spec.startTimeoutMs;
  try {
    for (;;) {
      if (spawnError) throw new NatsServerStartError(`spawn ${spec.binary} failed`, tail(), { cause: spawnError });
      if (exitInfo) {
        const how = exitInfo.signal ? `signal ${exitInfo.signal}` : `code ${exitInfo.code}`;
        throw new NatsServerStartError(`process exited early with ${how}`, tail());
      }
      if (Date.now() > deadline) {
        throw new NatsServerStartError(`not ready within ${spec.startTimeoutMs} ms`, tail());
      }
      const port = child.pid === undefined ? undefined : await readPort(spec.portsDir, child.pid);
      if (port !== undefined && (await canConnect(connectHost(spec.host), port))) {
        spec.logger?.debug({ pid: child.pid, port, args }, "nats-server ready");
        return { running, port };
      }
      await sleep(POLL_INTERVAL_MS);
    }
  } catch (err) {
    if (child.pid !== undefined && exitInfo === undefined) child.kill("SIGKILL");
    await exited;
    untrack(owned);
    throw err;
  }
}

/** Reads `<exe>_<pid>.ports` (written by --ports_file_dir); undefined until present and complete. */
async function readPort(portsDir: string, pid: number): Promise<number | undefined> {
  let names: string[];
  try {
    names = await readdir(portsDir);
  } catch {
    return undefined;
  }
  const name = names.find((n) => n.endsWith(`_${pid}.ports`));
  if (name === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(await readFile(join(portsDir, name), "utf8"));
    const urls = (parsed as { nats?: unknown }).nats;
    if (!Array.isArray(urls)) return undefined;
    for (const u of urls) {
      if (typeof u !== "string") continue;
      const port = Number(new URL(u).port);
      if (Number.isInteger(port) && port > 0) return port;
    }
  } catch {
    // partially written; retry on the next poll
  }
  return undefined;
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    const done = (ok: boolean): void => {
      socket.removeAllListeners();
      socket.on("error", () => {});
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(PROBE_TIMEOUT_MS, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

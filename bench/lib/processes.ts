/**
 * The bench's child processes: started with this Node, watched (any exit while the bench needs them
 * fails the run with the tail of their stderr) and stopped at the end, nats-servers included.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer, createConnection } from "node:net";
import { startNatsServer, type EmbeddedNats } from "../../src/bus/nats-server.js";
import { terminate } from "../../src/util/terminate.js";
import { BenchError } from "./config.js";
import { processTree } from "./proc.js";

const START_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;

export interface Child {
  name: string;
  proc: ChildProcess;
  exited: Promise<void>;
  stderrTail: () => string;
}

const children: Child[] = [];
const natsServers: EmbeddedNats[] = [];
const cleanupHooks: Array<() => void> = [];
let verbose = false;
let shuttingDown = false;

export function setVerbose(on: boolean): void {
  verbose = on;
}

/** Rejects as soon as any child exits while the bench still needs it; raced against the run. */
let reportDeath: (err: BenchError) => void = () => undefined;
export const childDied = new Promise<never>((_, reject) => (reportDeath = reject));
childDied.catch(() => undefined);

export interface SpawnOptions {
  /** Resolve at the first stderr line matching this (else once spawned). */
  ready?: RegExp;
  /** Node flags before the script, e.g. --cpu-prof. */
  nodeFlags?: string[];
  env?: NodeJS.ProcessEnv;
}

/**
 * Spawns `node args...` and resolves with the first match of `ready` on its stderr (or once spawned
 * when there is none). Rejects, with the tail of its stderr, if it exits first or is not ready in time.
 */
export function spawnNode(name: string, args: string[], options: SpawnOptions = {}): Promise<{ child: Child; match: RegExpMatchArray | undefined }> {
  const { ready, nodeFlags = [], env } = options;
  const proc = spawn(process.execPath, [...nodeFlags, ...args], { stdio: ["ignore", "ignore", "pipe"], env: env ?? process.env });
  const lines: string[] = [];
  let partial = "";
  let exitInfo: string | undefined;
  const exited = new Promise<void>((resolveExit) => {
    proc.once("exit", (code, signal) => {
      exitInfo = signal ? `signal ${signal}` : `code ${code}`;
      resolveExit();
    });
    proc.once("error", (err) => {
      exitInfo = `spawn error: ${err.message}`;
      if (proc.pid === undefined) resolveExit();
    });
  });
  const stderrTail = () =>
    [...lines, partial]
      .filter((l) => l !== "")
      .slice(-20)
      .join("\n");
  const child: Child = { name, proc, exited, stderrTail };
  children.push(child);
  const withTail = (message: string) => {
    const tail = stderrTail();
    return new BenchError(`${message}${tail ? `\n--- ${name} stderr ---\n${tail}` : ""}`);
  };

  return new Promise((resolveReady, rejectReady) => {
    let settled = false;
    const settle = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      outcome();
    };
    const timer = setTimeout(() => settle(() => rejectReady(withTail(`${name} did not get ready within ${START_TIMEOUT_MS} ms`))), START_TIMEOUT_MS);
    proc.stderr!.setEncoding("utf8");
    proc.stderr!.on("data", (chunk: string) => {
      const split = (partial + chunk).split("\n");
      partial = split.pop() ?? "";
      for (const line of split) {
        lines.push(line);
        if (lines.length > 50) lines.shift();
        if (verbose) process.stderr.write(`[${name}] ${line}\n`);
        const match = ready && !settled ? line.match(ready) : null;
        if (match) settle(() => resolveReady({ child, match }));
      }
    });
    if (ready === undefined) proc.once("spawn", () => settle(() => resolveReady({ child, match: undefined })));
    void exited.then(() => {
      settle(() => rejectReady(withTail(`${name} exited before it was ready (${exitInfo})`)));
      // A child stopped on purpose (stopChild) is no longer listed.
      if (!shuttingDown && children.includes(child)) reportDeath(withTail(`${name} exited unexpectedly (${exitInfo})`));
    });
  });
}

/** A private nats-server (random port), stopped by cleanup(). */
export async function startNats(extraArgs: string[] = []): Promise<EmbeddedNats> {
  const nats = await startNatsServer({ host: "127.0.0.1", port: -1, jetstream: true, extraArgs });
  natsServers.push(nats);
  return nats;
}

/** Stops one child (SIGTERM, SIGKILL after the grace period) and forgets it: the scale bench removes replicas. */
export async function stopChild(child: Child): Promise<void> {
  const index = children.indexOf(child);
  if (index >= 0) children.splice(index, 1);
  await terminate(child.proc, child.exited, STOP_GRACE_MS);
}

/** Runs at cleanup, after the children are gone (e.g. removing a temporary directory). */
export function onCleanup(hook: () => void): void {
  cleanupHooks.push(hook);
}

/**
 * SIGTERM to every child, SIGKILL after the grace period, and SIGKILL to whatever they had spawned
 * and left behind (supergateway's stdio children run in process groups of their own); then stops
 * the nats-servers and runs the hooks. Idempotent.
 */
export async function cleanup(): Promise<void> {
  shuttingDown = true;
  const descendants = children.flatMap((child) => processTree(child.proc.pid).slice(1));
  // All children at once; they stay listed until gone so that the exit handler can still SIGKILL them.
  await Promise.all(children.map((child) => terminate(child.proc, child.exited, STOP_GRACE_MS)));
  children.length = 0;
  for (const pid of descendants) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  await Promise.all(natsServers.splice(0).map((server) => server.stop()));
  for (const hook of cleanupHooks.splice(0)) hook();
}

/** Last resort when this process dies without running cleanup(): no orphans. */
process.once("exit", () => {
  for (const child of children) {
    try {
      child.proc.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
});

/** The children started so far, for the CPU profile listing. */
export const startedChildren = (): readonly Child[] => children;

/** A loopback TCP port free right now (for programs that need one on their command line). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolvePort, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolvePort());
  });
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolveClose) => server.close(() => resolveClose()));
  return port;
}

/** Resolves once 127.0.0.1:`port` accepts connections (for programs that do not say when they listen). */
export async function waitForPort(name: string, port: number, child: Child): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.proc.exitCode !== null || child.proc.signalCode !== null) throw new BenchError(`${name} exited before it listened on ${port}\n${child.stderrTail()}`);
    const open = await new Promise<boolean>((resolveProbe) => {
      const socket = createConnection({ host: "127.0.0.1", port });
      socket.once("connect", () => {
        socket.destroy();
        resolveProbe(true);
      });
      socket.once("error", () => resolveProbe(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new BenchError(`${name} did not listen on ${port} within ${START_TIMEOUT_MS} ms\n${child.stderrTail()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

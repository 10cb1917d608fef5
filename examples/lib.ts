/**
 * The small shared bits of the examples: start `dmcp` commands as child processes, wait for a line
 * on their stderr, check results, and make sure every child process (and every nats-server) is gone
 * when an example ends, whether it passed, failed, timed out or was interrupted.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Readable } from "node:stream";
import { Client, StreamableHTTPClientTransport, type Tool } from "@modelcontextprotocol/client";
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio";
import type { Agent } from "../src/agent/index.js";
import { connectBus, type Bus } from "../src/bus/connection.js";
import { startNatsServer, type EmbeddedNats } from "../src/bus/nats-server.js";
import { createLogger, type Logger } from "../src/util/logger.js";

/** The repository root (the compiled examples live in dist/examples/). */
export const ROOT = findRoot(dirname(fileURLToPath(import.meta.url)));
/** The compiled CLI: `node DMCP up ...` is what `dmcp up ...` runs. */
export const DMCP = join(ROOT, "dist", "src", "cli", "main.js");
/** The node binary running this example, so children use the same one. */
export const NODE = process.execPath;

/** The entry point of an MCP server package from node_modules, run with `node <path>`. */
export function mcpServerBin(pkg: "server-everything" | "server-memory"): string {
  const path = join(ROOT, "node_modules", "@modelcontextprotocol", pkg, "dist", "index.js");
  if (!existsSync(path)) throw new Error(`${path} is missing: run npm install`);
  return path;
}

/** Prints one step of the example's story. */
export function step(message: string): void {
  process.stdout.write(`  - ${message}\n`);
}

export function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`check failed: ${message}`);
}

/** Polls `probe` until it returns something other than undefined. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError ? ` (last error: ${lastError instanceof Error ? lastError.message : String(lastError)})` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await sleep(200);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------------------------------------------
// Cleanup: everything an example starts registers here and is stopped, newest first, at the end.

const cleanups: { what: string; run: () => Promise<unknown> | unknown }[] = [];

export function onCleanup(what: string, run: () => Promise<unknown> | unknown): void {
  cleanups.push({ what, run });
}

async function cleanUp(): Promise<void> {
  while (cleanups.length > 0) {
    const { what, run } = cleanups.pop()!;
    try {
      // A cleanup step that hangs must not keep the others from running.
      await Promise.race([run(), sleep(10_000).then(() => Promise.reject(new Error("took over 10 s")))]);
    } catch (err) {
      process.stderr.write(`  (cleanup of ${what} failed: ${err instanceof Error ? err.message : String(err)})\n`);
    }
  }
}

/** A private nats-server on a random loopback port (never 4222), stopped at the end. */
export async function startNats(): Promise<EmbeddedNats> {
  const nats = await startNatsServer();
  onCleanup("nats-server", () => nats.stop());
  step(`started a private nats-server at ${nats.url}`);
  return nats;
}

/** `dmcp gateway --nats <url> --http 0` as a child process; resolves with its MCP URL. */
export async function startGateway(natsUrl: string, extraArgs: string[] = []): Promise<{ child: Child; url: string }> {
  const child = new Child("dmcp gateway", NODE, [DMCP, "gateway", "--nats", natsUrl, "--http", "0", ...extraArgs]);
  const [, url] = await child.waitForLine(/dmcp gateway: serving MCP at (\S+)/);
  step(`dmcp gateway serving MCP at ${url}`);
  return { child, url: url! };
}

// ---------------------------------------------------------------------------------------------------
// Native agents in this process

/** The agents' logger: warnings and errors on stderr (DMCP_LOG_LEVEL=info shows more). */
export function agentLogger(name: string): Logger {
  return createLogger({ name, level: process.env.DMCP_LOG_LEVEL ?? "warn" });
}

/** A NATS connection of its own for one participant (as if it ran on another machine); drained at the end. */
export async function connectParticipant(natsUrl: string, name: string): Promise<Bus> {
  const bus = await connectBus({ servers: natsUrl, name, logger: agentLogger(name) });
  onCleanup(`bus of ${name}`, () => bus.drain());
  return bus;
}

/** Starts an agent and stops it at the end (stopping twice is harmless). */
export async function startAgent<A extends Agent>(agent: A): Promise<A> {
  onCleanup(`agent ${agent.name}`, () => agent.stop());
  await agent.start();
  return agent;
}

// ---------------------------------------------------------------------------------------------------
// MCP clients

/** Connects an SDK client to an MCP server over Streamable HTTP; it is closed at the end. */
export async function connectHttpClient(url: string): Promise<Client> {
  const client = new Client({ name: "dmcp-example", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  onCleanup("MCP client", () => client.close());
  return client;
}

/**
 * Starts `command` as an MCP server on stdio and connects an SDK client to it, the way Claude Desktop
 * runs the servers in its config. Its stderr is kept for the failure report; it is closed at the end.
 */
export async function connectStdioClient(name: string, command: string, args: string[]): Promise<{ client: Client; transport: StdioClientTransport }> {
  const transport = new StdioClientTransport({ command, args, stderr: "pipe" });
  keepLines(name, transport.stderr as Readable | null);
  const client = new Client({ name: "dmcp-example", version: "1.0.0" });
  onCleanup(name, () => client.close());
  await client.connect(transport);
  // Last resort if the example dies without closing it (the pid is null once closed).
  process.once("exit", () => transport.pid !== null && killQuietly(transport.pid, "SIGKILL"));
  return { client, transport };
}

/** Lists tools (bypassing the client's cache) until all `names` are there; services announce asynchronously. */
export async function waitForTools(client: Client, names: string[], timeoutMs = 20_000): Promise<Map<string, Tool>> {
  return waitFor(
    `tools ${names.join(", ")}`,
    async () => {
      const { tools } = await client.listTools(undefined, { cacheMode: "bypass" });
      const byName = new Map(tools.map((tool) => [tool.name, tool]));
      return names.every((name) => byName.has(name)) ? byName : undefined;
    },
    timeoutMs,
  );
}

/** A tool result's structuredContent, checked to be there. */
export function structuredOf<T>(result: { structuredContent?: unknown; isError?: unknown; content?: unknown }, what: string): T {
  check(result.isError !== true, `${what} returned an error: ${textOf(result)}`);
  check(result.structuredContent !== undefined && result.structuredContent !== null, `${what} returned no structuredContent: ${textOf(result)}`);
  return result.structuredContent as T;
}

/** The text of a tool result's text blocks, joined. */
export function textOf(result: { content?: unknown }): string {
  const blocks = Array.isArray(result.content) ? (result.content as { type?: string; text?: string }[]) : [];
  return blocks
    .filter((block) => block.type === "text")
    .map((block) => block.text)
    .join("\n");
}

// ---------------------------------------------------------------------------------------------------
// Child processes

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The stderr lines of everything started, by name, for the failure report. */
const logs = new Map<string, string[]>();

/** Splits a stream into lines, keeps them under `name`, and calls `onLine` after each chunk. */
function keepLines(name: string, stream: Readable | null, onLine?: () => void): string[] {
  const lines: string[] = [];
  logs.set(logs.has(name) ? `${name} (${logs.size})` : name, lines);
  let partial = "";
  stream?.setEncoding("utf8").on("data", (chunk: string) => {
    const parts = (partial + chunk).split("\n");
    partial = parts.pop()!;
    lines.push(...parts);
    onLine?.();
  });
  return lines;
}

export class Child {
  readonly process: ChildProcess;
  readonly stderrLines: string[];
  stdout = "";
  readonly exited: Promise<Exit>;
  exit: Exit | undefined;
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly name: string,
    command: string,
    args: string[],
  ) {
    // Its own process group, so stop() also reaches whatever it started (an MCP server, a nats-server).
    this.process = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
    this.process.stdout!.setEncoding("utf8").on("data", (chunk: string) => (this.stdout += chunk));
    this.stderrLines = keepLines(name, this.process.stderr, () => {
      for (const listener of this.listeners) listener();
    });
    this.exited = new Promise((resolve) => {
      this.process.once("error", (err) => {
        this.stderrLines.push(`spawn failed: ${err.message}`);
        this.exit = { code: null, signal: null };
        resolve(this.exit);
      });
      this.process.once("close", (code, signal) => {
        this.exit ??= { code, signal };
        resolve(this.exit);
        for (const listener of this.listeners) listener();
      });
    });
    live.add(this);
    onCleanup(name, () => this.stop());
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** Resolves with the match once a stderr line matches; rejects if the child exits first. */
  waitForLine(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      let seen = 0;
      const done = (err: Error | undefined, match?: RegExpMatchArray) => {
        clearTimeout(timer);
        this.listeners.delete(look);
        if (err) reject(err);
        else resolve(match!);
      };
      const look = () => {
        for (; seen < this.stderrLines.length; seen++) {
          const match = this.stderrLines[seen]!.match(pattern);
          if (match) return done(undefined, match);
        }
        if (!this.running) done(new Error(`${this.name} exited (${describeExit(this.exit!)}) before printing ${pattern}`));
      };
      const timer = setTimeout(() => done(new Error(`${this.name} did not print ${pattern} within ${timeoutMs} ms`)), timeoutMs);
      this.listeners.add(look);
      look();
    });
  }

  /** Sends a signal to this process only (not its group), e.g. to test its own shutdown. */
  signal(signal: NodeJS.Signals): void {
    if (this.running) this.process.kill(signal);
  }

  /** SIGTERM to the whole process group, SIGKILL after 5 s; resolves when it has exited. */
  async stop(): Promise<void> {
    if (this.running) {
      killGroup(this, "SIGTERM");
      const timer = setTimeout(() => killGroup(this, "SIGKILL"), 5_000);
      await this.exited;
      clearTimeout(timer);
    }
    killGroup(this, "SIGKILL"); // leftovers in the group, if any
    live.delete(this);
  }
}

/** Runs a command to completion and returns its exit and output. */
export async function run(name: string, command: string, args: string[], timeoutMs = 20_000): Promise<Exit & { stdout: string; stderr: string }> {
  const child = new Child(name, command, args);
  const timer = setTimeout(() => void child.stop(), timeoutMs);
  const exit = await child.exited;
  clearTimeout(timer);
  return { ...exit, stdout: child.stdout, stderr: child.stderrLines.join("\n") };
}

export function describeExit(exit: Exit): string {
  return exit.signal ? `signal ${exit.signal}` : `exit code ${exit.code}`;
}

const live = new Set<Child>();

function killGroup(child: Child, signal: NodeJS.Signals): void {
  if (child.process.pid !== undefined) killQuietly(-child.process.pid, signal);
}

/** Signals a pid (or, if negative, a process group) that may already be gone. */
export function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

// Last resort if the example dies without running its cleanup: no child outlives it.
process.once("exit", () => {
  for (const child of live) killGroup(child, "SIGKILL");
});

// ---------------------------------------------------------------------------------------------------
// The example runner

/**
 * Runs an example: prints its title and summary, runs `body` under a deadline, and on failure prints
 * the error and the last stderr lines of each child. Always cleans up, then exits 0 (passed) or 1.
 */
export function example(title: string, summary: string, body: () => Promise<void>, timeoutMs = 55_000): void {
  process.stdout.write(`${title}: ${summary}\n`);
  let finished = false;
  const finish = async (err?: unknown) => {
    if (finished) return;
    finished = true;
    clearTimeout(deadline);
    if (err !== undefined) {
      process.stderr.write(`\n${title}: FAILED: ${err instanceof Error ? err.message : String(err)}\n`);
      for (const [name, lines] of logs) {
        const tail = lines.slice(-15);
        if (tail.length > 0) process.stderr.write(`--- last stderr lines of ${name} ---\n${tail.join("\n")}\n`);
      }
    }
    await cleanUp();
    if (err === undefined) process.stdout.write(`${title}: ok\n`);
    process.exit(err === undefined ? 0 : 1);
  };
  const deadline = setTimeout(() => void finish(new Error(`timed out after ${timeoutMs / 1000} s`)), timeoutMs);
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => void finish(new Error(`interrupted by ${signal}`)));
  body().then(() => finish(), finish);
}

function findRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "node_modules"))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

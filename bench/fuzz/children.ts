/**
 * The processes under fuzz: spawned from dist/, watched for exits and for what a healthy process never
 * prints (unhandled rejections, uncaught exceptions, stack overflows, Node warnings), their resident
 * memory sampled while the run goes on.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { terminate } from "../../src/util/terminate.js";

/** The repository root: the nearest folder above this module with the package's package.json (from bench/ and dist/bench/ alike). */
function findRepoRoot(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, "utf8")) as { name?: string }).name === "dmcp-gateway") return dir;
  }
  throw new Error("fuzz: cannot find the dmcp-gateway repository above this module");
}

export const REPO_ROOT = findRepoRoot();
export const DMCP_JS = join(REPO_ROOT, "dist/src/cli/main.js");
export const RAW_SERVER_JS = join(REPO_ROOT, "dist/test/support/fixtures/raw-server.js");
export const SDK_AGENT_JS = join(REPO_ROOT, "dist/test/support/fixtures/sdk-agent.js");

/** Lines a healthy process never writes to stderr. */
const TROUBLE = /unhandled rejection|uncaught|Maximum call stack|heap out of memory|FATAL ERROR|\(node:\d+\) \[?\w*Warning/i;
const MAX_KEPT = 5;

export class ChildProc {
  readonly proc: ChildProcess;
  readonly exited: Promise<void>;
  /** What ended it, once it has ended. */
  exitInfo: string | undefined;
  /** Stderr lines matching {@link TROUBLE}. */
  readonly trouble: string[] = [];
  /** Log lines at error level or above (pino level ≥ 50): not crashes, but worth a look. */
  errorsLogged = 0;
  readonly loggedErrors: string[] = [];
  private readonly tail: string[] = [];
  private readonly waiters = new Set<{ pattern: RegExp; resolve: (m: RegExpMatchArray) => void }>();
  private stopping = false;

  constructor(
    readonly name: string,
    args: string[],
    options: { stdin?: "pipe" | "ignore"; verbose?: boolean; nodeFlags?: string[]; cwd?: string } = {},
  ) {
    this.proc = spawn(process.execPath, [...(options.nodeFlags ?? []), ...args], {
      stdio: [options.stdin ?? "ignore", options.stdin === "pipe" ? "pipe" : "ignore", "pipe"],
      ...(options.cwd ? { cwd: options.cwd } : {}),
    });
    this.exited = new Promise((resolve) => {
      this.proc.once("exit", (code, signal) => {
        this.exitInfo = signal ? `signal ${signal}` : `code ${code}`;
        resolve();
      });
      this.proc.once("error", (err) => {
        this.exitInfo = `spawn error: ${err.message}`;
        if (this.proc.pid === undefined) resolve();
      });
    });
    createInterface({ input: this.proc.stderr! }).on("line", (line) => {
      if (options.verbose) process.stderr.write(`[${name}] ${line}\n`);
      this.tail.push(line);
      if (this.tail.length > 40) this.tail.shift();
      if (TROUBLE.test(line) && this.trouble.length < 50) this.trouble.push(line.slice(0, 2000));
      const level = /^\{"level":(\d+)/.exec(line);
      if (level && Number(level[1]) >= 50) {
        this.errorsLogged++;
        if (this.loggedErrors.length < MAX_KEPT) this.loggedErrors.push(line.slice(0, 600));
      }
      for (const waiter of this.waiters) {
        const match = line.match(waiter.pattern);
        if (match) {
          this.waiters.delete(waiter);
          waiter.resolve(match);
        }
      }
    });
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Died on its own (not stopped by the harness). */
  get crashed(): boolean {
    return !this.stopping && !this.alive;
  }

  /** The first stderr line matching `pattern` from now on. */
  waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const waiter = {
        pattern,
        resolve: (m: RegExpMatchArray) => {
          clearTimeout(timer);
          resolve(m);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`${this.name}: no ${pattern} on stderr within ${timeoutMs} ms\n${this.stderrTail()}`));
      }, timeoutMs);
      this.waiters.add(waiter);
      void this.exited.then(() => {
        if (!this.waiters.delete(waiter)) return;
        clearTimeout(timer);
        reject(new Error(`${this.name} exited (${this.exitInfo}) before ${pattern}\n${this.stderrTail()}`));
      });
    });
  }

  stderrTail(): string {
    return this.tail.slice(-20).join("\n");
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await terminate(this.proc, this.exited);
  }
}

/** Resident set size of a process, from /proc (Linux); undefined elsewhere or once it has exited. */
export function rssBytes(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

export interface MemoryFigures {
  name: string;
  startBytes: number;
  peakBytes: number;
  endBytes: number;
}

/** Samples the RSS of named processes every `everyMs` until stopped: start, peak and last value of each. */
export class MemorySampler {
  private readonly figures = new Map<string, MemoryFigures>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pids: () => { name: string; pid: number | undefined }[],
    everyMs = 250,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
    this.timer.unref();
  }

  sample(): void {
    for (const { name, pid } of this.pids()) {
      const rss = rssBytes(pid);
      if (rss === undefined) continue;
      const seen = this.figures.get(name);
      if (!seen) this.figures.set(name, { name, startBytes: rss, peakBytes: rss, endBytes: rss });
      else {
        seen.peakBytes = Math.max(seen.peakBytes, rss);
        seen.endBytes = rss;
      }
    }
  }

  /** Restarts the figures from now (after start-up, so that start means "ready, before the fuzz"). */
  reset(): void {
    this.figures.clear();
    this.sample();
  }

  stop(): MemoryFigures[] {
    clearInterval(this.timer);
    this.sample();
    return [...this.figures.values()];
  }
}

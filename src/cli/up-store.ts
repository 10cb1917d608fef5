/**
 * The store of `dmcp up`'s private nats-server belongs to one `dmcp up` at a time. Its lock,
 * `dmcp-up.json` in the store, names the holder's pid and, once the server runs, the bus URL, so that
 * the other commands on this machine can find that bus. The holder removes it on exit; a lock whose pid
 * is gone (a `dmcp up` that crashed) is stale: it neither blocks a start nor leads anyone to a dead bus.
 */
import { execFileSync } from "node:child_process";
import { existsSync, linkSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export const UP_FILE = "dmcp-up.json";

export interface UpRecord {
  pid: number;
  /** The bus URL and the private nats-server's pid, once that server accepts connections. */
  url?: string;
  serverPid?: number;
  startedAt: string;
}

/** A running `dmcp up`, as found through its store. */
export interface RunningUp extends UpRecord {
  url: string;
  dataDir: string;
}

/** `$XDG_STATE_HOME/dmcp/nats`, else `~/.local/state/dmcp/nats`. */
export function defaultDataDir(): string {
  const stateHome = process.env.XDG_STATE_HOME || join(homedir(), ".local", "state");
  return join(stateHome, "dmcp", "nats");
}

export class StoreInUseError extends Error {
  readonly code = "STORE_IN_USE";
  constructor(
    readonly dataDir: string,
    readonly holder: UpRecord,
  ) {
    const bus = holder.url ? `, NATS at ${holder.url}` : "";
    super(
      `the store ${dataDir} is in use by another dmcp up (pid ${holder.pid}${bus}); a store belongs to one dmcp up at a time. ` +
        `Stop that one, or give this one a store of its own with --data-dir DIR (or nats.dataDir in the config)` +
        `${holder.url ? `, or join its bus with dmcp gateway or dmcp wrap (they find it by themselves)` : ""}. ` +
        `If pid ${holder.pid} is not a dmcp up, remove ${join(dataDir, UP_FILE)}.`,
    );
    this.name = "StoreInUseError";
  }
}

export interface StoreLock {
  readonly dataDir: string;
  /** Records the bus URL for the other commands to find, and the server's pid for a start after a crash. */
  publish(url: string, serverPid: number): void;
  /** Removes the lock (if it is still this process's). Idempotent. */
  release(): void;
}

/**
 * Takes the store for this process, or throws StoreInUseError naming the live holder. The nats-server
 * of a `dmcp up` that crashed may outlive it, still writing to the store: it is stopped first.
 */
export async function lockStore(dataDir: string): Promise<StoreLock> {
  const dir = resolve(dataDir);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, UP_FILE);
  const mine: UpRecord = { pid: process.pid, startedAt: new Date().toISOString() };
  // A few rounds: each one either takes the lock, finds a live holder, or clears a stale lock.
  for (let round = 0; round < 5; round++) {
    if (createExclusive(file, mine)) return holdLock(dir, file, mine);
    const holder = readRecord(file);
    if (holder && holder.pid !== process.pid && isAlive(holder.pid)) throw new StoreInUseError(dir, holder);
    if (holder?.serverPid) await stopOrphanedServer(dir, file, holder.serverPid);
    removeStale(dir, file, holder);
  }
  throw new Error(`could not lock the store ${dir}: ${file} keeps changing`);
}

/** The `dmcp up` running with this store, if its lock names a live pid and a bus URL. */
export function findRunningUp(dataDir: string): RunningUp | undefined {
  const dir = resolve(dataDir);
  const record = readRecord(join(dir, UP_FILE));
  if (!record?.url || !isAlive(record.pid)) return undefined;
  return { ...record, url: record.url, dataDir: dir };
}

function holdLock(dataDir: string, file: string, mine: UpRecord): StoreLock {
  let held = true;
  const release = () => {
    if (!held) return;
    held = false;
    process.removeListener("exit", release);
    if (readRecord(file)?.pid === mine.pid) rmSync(file, { force: true });
  };
  // Also on an exit that skips the orderly stop (an uncaught error); only SIGKILL leaves a stale lock.
  process.once("exit", release);
  return {
    dataDir,
    publish(url, serverPid) {
      if (!held) return;
      const temp = `${file}.${process.pid}.tmp`;
      writeFileSync(temp, `${JSON.stringify({ ...mine, url, serverPid })}\n`);
      renameSync(temp, file);
    },
    release,
  };
}

/** Creates the lock file with its whole content at once (a hard link fails if the name exists). */
function createExclusive(file: string, record: UpRecord): boolean {
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify(record)}\n`);
  try {
    linkSync(temp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  } finally {
    rmSync(temp, { force: true });
  }
}

/**
 * Moves a stale lock aside: a rename succeeds for one starter only, so two starters cannot both clear
 * it and both take the store. A starter that moved a fresh lock taken meanwhile puts it back.
 */
function removeStale(dataDir: string, file: string, stale: UpRecord | undefined): void {
  const aside = `${file}.stale.${process.pid}`;
  try {
    renameSync(file, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  const moved = readRecord(aside);
  try {
    if (moved && moved.pid !== stale?.pid && moved.pid !== process.pid && isAlive(moved.pid)) {
      try {
        linkSync(aside, file);
      } catch {
        // another starter holds the store now; it is in use either way
      }
      throw new StoreInUseError(dataDir, moved);
    }
  } finally {
    rmSync(aside, { force: true });
  }
}

function readRecord(file: string): UpRecord | undefined {
  try {
    const record = JSON.parse(readFileSync(file, "utf8")) as Partial<UpRecord>;
    if (!Number.isInteger(record.pid) || (record.pid as number) <= 0) return undefined;
    return {
      pid: record.pid!,
      startedAt: String(record.startedAt ?? ""),
      ...(typeof record.url === "string" ? { url: record.url } : {}),
      ...(Number.isInteger(record.serverPid) && (record.serverPid as number) > 0 ? { serverPid: record.serverPid! } : {}),
    };
  } catch {
    return undefined;
  }
}

const ORPHAN_STOP_GRACE_MS = 5_000;
const ORPHAN_POLL_MS = 50;

/** Stops the nats-server a crashed `dmcp up` left on the store (SIGTERM, then SIGKILL); no other process. */
async function stopOrphanedServer(dataDir: string, file: string, pid: number): Promise<void> {
  const running = () => isStoreServer(pid, dataDir);
  const state = running();
  if (state === false) return;
  if (state === undefined) {
    throw new Error(
      `the dmcp up that held the store ${dataDir} is gone, but its nats-server (pid ${pid}) may still run on it, and this system ` +
        `does not show its command line: stop that nats-server, or if pid ${pid} is none, remove ${file}; then start again.`,
    );
  }
  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    signalProcess(pid, signal);
    if (await stopsWithin(running, ORPHAN_STOP_GRACE_MS)) return;
  }
  throw new Error(`the nats-server (pid ${pid}) that a crashed dmcp up left on the store ${dataDir} does not stop`);
}

/** Not our child, so there is no exit event to wait on: its end is polled for. */
async function stopsWithin(running: () => boolean | undefined, ms: number): Promise<boolean> {
  for (const until = Date.now() + ms; Date.now() < until; await sleep(ORPHAN_POLL_MS)) if (!running()) return true;
  return false;
}

function signalProcess(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}

/** Whether pid is a nats-server with this store; undefined when its command line cannot be read. */
function isStoreServer(pid: number, dataDir: string): boolean | undefined {
  if (!isAlive(pid)) return false;
  const command = commandLine(pid);
  if (command === undefined) return undefined;
  return /^\S*nats-server\S*\s/.test(command) && command.includes(dataDir);
}

/** A process's command line from /proc (Linux), else from ps; "" for no such process, undefined when neither is there. */
function commandLine(pid: number): string | undefined {
  if (existsSync("/proc/self/cmdline")) {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
    } catch {
      return "";
    }
  }
  try {
    return execFileSync("ps", ["-p", String(pid), "-o", "args="], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ENOENT" ? undefined : "";
  }
}

/** Whether a process with this pid exists (EPERM: it does, under another user). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

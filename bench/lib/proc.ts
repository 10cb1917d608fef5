/**
 * What Linux's /proc says about a process: CPU time (utime + stime of /proc/<pid>/stat), resident
 * memory (VmRSS of /proc/<pid>/status) and its descendants (by parent pid). Elsewhere: nothing
 * (undefined), and the bench prints "n/a".
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

export const clockTicks = (() => {
  if (process.platform !== "linux") return undefined;
  try {
    const ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    return Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
})();

/** The fields of /proc/<pid>/stat after the command name (field 3 of stat(5) is index 0). */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** utime + stime of a process in ms; undefined where unavailable (gone, or not Linux). */
export function cpuMs(pid: number | undefined): number | undefined {
  if (clockTicks === undefined || pid === undefined || pid <= 0) return undefined;
  const fields = statFields(pid);
  return fields === undefined ? undefined : ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks; // fields 14 and 15 of stat(5)
}

/** Resident set size in bytes (VmRSS); undefined where unavailable. */
export function rssBytes(pid: number | undefined): number | undefined {
  if (process.platform !== "linux" || pid === undefined || pid <= 0) return undefined;
  try {
    const match = readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+) kB$/m);
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** `pid` and every process below it (children of children...), from the parent pids in /proc. */
export function processTree(pid: number | undefined): number[] {
  if (pid === undefined || pid <= 0) return [];
  if (process.platform !== "linux") return [pid];
  const childrenOf = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const parent = Number(statFields(Number(entry))?.[1]); // field 4 of stat(5): ppid
    if (!Number.isInteger(parent)) continue;
    const list = childrenOf.get(parent) ?? [];
    list.push(Number(entry));
    childrenOf.set(parent, list);
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) tree.push(...(childrenOf.get(tree[i]!) ?? []));
  return tree;
}

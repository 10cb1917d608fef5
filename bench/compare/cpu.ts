/** CPU time of a chain's processes over one measured round, read from /proc before and after it. */
import type { Chain } from "../chains/index.js";
import { cpuMs, processTree } from "../lib/proc.js";

/** CPU ms by pid, for each named process. */
type Snapshot = Map<string, Map<number, number>>;

export const CLIENT = "client";
export const UPSTREAM = "upstream";

function read(pids: number[]): Map<number, number> {
  const byPid = new Map<number, number>();
  for (const pid of pids) {
    const ms = cpuMs(pid);
    if (ms !== undefined) byPid.set(pid, ms);
  }
  return byPid;
}

/** The chain's processes, and the client (this process) and the upstream, which no chain total counts. */
export function snapshot(chain: Chain, upstreamPid: number | undefined): Snapshot {
  const snap: Snapshot = new Map();
  for (const proc of chain.processes) snap.set(proc.name, read(proc.pids()));
  snap.set(UPSTREAM, read(processTree(upstreamPid)));
  const self = process.cpuUsage();
  snap.set(CLIENT, new Map([[process.pid, (self.user + self.system) / 1000]]));
  return snap;
}

/**
 * CPU ms each named process spent between the two snapshots. A pid seen only after counts from zero
 * (it started during the round); one gone by then is left out (its time went to its parent's children).
 */
export function cpuSpent(before: Snapshot, after: Snapshot): Record<string, number | undefined> {
  const spent: Record<string, number | undefined> = {};
  for (const [name, now] of after) {
    const then = before.get(name) ?? new Map<number, number>();
    spent[name] = now.size === 0 ? undefined : [...now].reduce((sum, [pid, ms]) => sum + ms - (then.get(pid) ?? 0), 0);
  }
  return spent;
}

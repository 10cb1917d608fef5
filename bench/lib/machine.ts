/** The machine a run measured: printed first, since the figures mean little without it. */
import { execFileSync } from "node:child_process";
import { cpus, loadavg, totalmem } from "node:os";
import { findNatsServerBinary } from "../../src/bus/nats-server.js";

function natsServerVersion(): string {
  const binary = findNatsServerBinary();
  if (binary === undefined) return "not found";
  try {
    return execFileSync(binary, ["--version"], { encoding: "utf8" }).trim();
  } catch {
    return "unknown version";
  }
}

export function describeMachine(): string {
  const list = cpus();
  return [
    `machine: ${list[0]?.model.trim() ?? "unknown CPU"}, ${list.length} core(s), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, ${process.platform}/${process.arch}`,
    `load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")} (1, 5, 15 min) at the start; node ${process.version}; ${natsServerVersion()}`,
  ].join("\n");
}

export const cores = (): number => cpus().length;

/** Stopping a child process in order: SIGTERM, then SIGKILL if it has not exited after a grace period. */
import type { ChildProcess } from "node:child_process";

export const DEFAULT_STOP_GRACE_MS = 5_000;

/** Resolves once the child has exited (`exited` resolves on its exit event). */
export async function terminate(child: ChildProcess, exited: Promise<unknown>, graceMs = DEFAULT_STOP_GRACE_MS): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) {
    await exited;
    return;
  }
  child.kill("SIGTERM");
  const timer = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }, graceMs);
  try {
    await exited;
  } finally {
    clearTimeout(timer);
  }
}

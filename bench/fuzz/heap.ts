/**
 * The live heap of the processes under fuzz. They run with --heapsnapshot-signal: a heap snapshot
 * begins with a full garbage collection, so the heap in use right after one is written is what is
 * live, not garbage the collector has not got round to. Their old space is capped too, so a heap that
 * kept growing would end the process (and the run would report it) instead of eating the machine.
 */
import { readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import type { ChildProc } from "./children.js";
import { metricSum, scrape } from "./metrics.js";

export const HEAP_FLAGS = ["--heapsnapshot-signal=SIGUSR2", "--max-old-space-size=256"];

/** Collects garbage in `child` (by having it write a heap snapshot into `dir`, deleted afterwards) and reads its heap in use. */
export async function liveHeapBytes(child: ChildProc, dir: string, metricsUrl: string, timeoutMs = 60_000): Promise<number> {
  const pid = child.proc.pid;
  const mine = () => readdirSync(dir).filter((name) => name.endsWith(".heapsnapshot") && name.includes(`.${pid}.`));
  const before = new Set(mine());
  child.proc.kill("SIGUSR2");
  const until = Date.now() + timeoutMs;
  let lastSize = -1;
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 300));
    const file = mine().find((name) => !before.has(name));
    const size = file ? statSync(join(dir, file)).size : -1;
    // Written out once its size stops changing.
    if (file && size > 0 && size === lastSize) {
      const bytes = metricSum(await scrape(metricsUrl), "nodejs_heap_size_used_bytes");
      rmSync(join(dir, file), { force: true });
      return bytes;
    }
    lastSize = size;
    if (Date.now() > until) throw new Error(`${child.name} wrote no heap snapshot within ${timeoutMs} ms`);
  }
}

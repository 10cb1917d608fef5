/**
 * Preloaded into the memory bench's gateway (`node --expose-gc --import <this>`), never part of dmcp:
 * on SIGUSR2 it prints one line to stderr, `MEMORY-PROBE <json>`, with process.memoryUsage() (and V8's
 * heap spaces) as they are, and again after full garbage collections. What stays after them is what
 * the gateway still holds; RSS above that is memory V8 or malloc keeps without using it. With
 * BENCH_MEMORY_SNAPSHOTS set to a directory, a heap snapshot is written there too, after the GCs
 * (`gateway-<n>.heapsnapshot`; writing one grows RSS by far more than the heap: RSS figures after it
 * mean nothing).
 */
import { join } from "node:path";
import { getHeapSpaceStatistics, getHeapStatistics, writeHeapSnapshot } from "node:v8";

const collect = (globalThis as { gc?: (options?: unknown) => void }).gc;
const snapshots = process.env.BENCH_MEMORY_SNAPSHOTS;
/** At most this many full GCs, each followed by a pause; fewer once one frees less than STABLE_BYTES. */
const MAX_COLLECTIONS = 5;
const STABLE_BYTES = 256 * 1024;
const PAUSE_MS = 500;
let probes = 0;

export interface ProbedUsage {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  /** V8's own malloc'ed memory. */
  malloced: number;
  /** Size and use of each V8 heap space that has any, by name (new_space, old_space...). */
  spaces: Record<string, { size: number; used: number }>;
}

function usage(): ProbedUsage {
  const { rss, heapTotal, heapUsed, external, arrayBuffers } = process.memoryUsage();
  const spaces: ProbedUsage["spaces"] = {};
  for (const space of getHeapSpaceStatistics()) if (space.space_size > 0) spaces[space.space_name] = { size: space.space_size, used: space.space_used_size };
  return { rss, heapTotal, heapUsed, external, arrayBuffers, malloced: getHeapStatistics().malloced_memory, spaces };
}

async function probe(): Promise<void> {
  const before = usage();
  // Each GC is followed by a pause: until V8's concurrent sweepers have swept a page, the heap counts
  // its dead objects as used (megabytes on a loaded machine), and Node frees weakly held handles later.
  let after = before;
  for (let i = 0; collect && i < MAX_COLLECTIONS; i++) {
    collect({ type: "major", execution: "sync" });
    await new Promise((resolve) => setTimeout(resolve, PAUSE_MS));
    const previous = after;
    after = usage();
    if (previous.heapUsed - after.heapUsed < STABLE_BYTES) break;
  }
  probes += 1;
  const snapshot = snapshots ? writeHeapSnapshot(join(snapshots, `gateway-${probes}.heapsnapshot`)) : undefined;
  process.stderr.write(`MEMORY-PROBE ${JSON.stringify({ before, after, collected: collect !== undefined, snapshot })}\n`);
}

process.on("SIGUSR2", () => void probe());

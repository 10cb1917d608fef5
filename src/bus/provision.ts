/**
 * The streams and buckets of dMCP, created (unless they exist) and checked as a gateway does at start:
 * `dmcp up` runs it before starting its own executors, which wait for the streams otherwise.
 */
import type { Bus } from "./connection.js";
import { ContextStreams, type ContextRetention } from "./context-streams.js";
import { DEFAULT_RESULT_TTL_MS, ResultStore } from "./durable/result-store.js";
import { provisionWorkStreams } from "./durable/work-queue.js";
import { createRegistryBucket } from "./registry.js";
import { ensureTasksBucket } from "./tasks-bucket.js";
import { ensureCacheBucket } from "./cache-bucket.js";

export async function provisionStreams(
  bus: Bus,
  options: { contextRetention?: ContextRetention | undefined; resultTtlMs?: number | undefined; cacheMaxBytes?: number | undefined } = {},
): Promise<void> {
  await createRegistryBucket(bus);
  await new ContextStreams(bus, "provision").ensureStream(options.contextRetention);
  await ensureTasksBucket(bus);
  await ensureCacheBucket(bus, { maxBytes: options.cacheMaxBytes });
  await ResultStore.create(bus, options.resultTtlMs ?? DEFAULT_RESULT_TTL_MS);
  await provisionWorkStreams(bus);
}

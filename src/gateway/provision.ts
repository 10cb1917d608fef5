/**
 * The streams and buckets of dMCP, created (unless they exist) and checked as a gateway does at start:
 * `dmcp up` runs it before starting its own executors, which wait for the streams otherwise.
 */
import { ContextStreams, createRegistryBucket, DEFAULT_RESULT_TTL_MS, provisionWorkStreams, ResultStore, type Bus, type ContextRetention } from "../bus/index.js";
import { TaskStore } from "./tasks/task-store.js";

export async function provisionStreams(bus: Bus, options: { contextRetention?: ContextRetention | undefined; resultTtlMs?: number | undefined } = {}): Promise<void> {
  await createRegistryBucket(bus);
  await new ContextStreams(bus, "provision").ensureStream(options.contextRetention);
  await TaskStore.open(bus);
  await ResultStore.create(bus, options.resultTtlMs ?? DEFAULT_RESULT_TTL_MS);
  await provisionWorkStreams(bus);
}

/**
 * The streams and buckets of dMCP, created (unless they exist) and checked as a gateway does at start:
 * `dmcp up` runs it before starting its own executors, which wait for the streams otherwise.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import type { Bus } from "../bus/connection.js";
import { ContextStreams, type ContextRetention } from "../bus/context-streams.js";
import { createRegistryBucket } from "../bus/registry.js";
import { DEFAULT_RESULT_TTL_MS, ResultStore } from "../bus/durable/result-store.js";
import { ensureWorkStreams, serverFeatures } from "../bus/durable/work-queue.js";
import { TaskStore } from "./tasks/task-store.js";

export async function provisionStreams(bus: Bus, options: { contextRetention?: ContextRetention | undefined; resultTtlMs?: number | undefined } = {}): Promise<void> {
  await createRegistryBucket(bus);
  await new ContextStreams(bus, "provision").ensureStream(options.contextRetention);
  await TaskStore.open(bus);
  await ResultStore.create(bus, options.resultTtlMs ?? DEFAULT_RESULT_TTL_MS);
  await ensureWorkStreams(await jetstreamManager(bus.nc), serverFeatures(bus.nc));
}

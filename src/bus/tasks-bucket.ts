/**
 * The bucket of MCP task records (PROTOCOL.md §17.1): the gateway keeps its records there (the
 * gateway's TaskStore), and `dmcp up` creates it with the other streams before anything runs.
 */
import type { Bus } from "./connection.js";
import { ensureKvBucket, type KvBucket } from "./kv-bucket.js";

export const TASKS_BUCKET = "dmcp_tasks";
/** Records older than this are gone whatever their own TTL says (the bucket's max age). */
export const MAX_TASK_TTL_MS = 24 * 60 * 60_000;
const TASKS_BUCKET_TIMEOUT_MS = 5_000;

/** Creates the bucket unless it exists, and checks it. */
export function ensureTasksBucket(bus: Bus): Promise<KvBucket> {
  return ensureKvBucket(bus, TASKS_BUCKET, { ttlMs: MAX_TASK_TTL_MS, maxValueSize: bus.maxPayload, timeoutMs: TASKS_BUCKET_TIMEOUT_MS });
}

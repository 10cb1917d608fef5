/**
 * The bucket of 2025-11-25 HTTP client sessions (PROTOCOL.md §19): what any gateway needs to serve a
 * session another gateway initialized. One value per session id; the bucket's max age is the
 * sessions' idle timeout (gateways write a used session again before it runs out), and a delete (the
 * client's DELETE) reaches every gateway through the watch, which resumes when it ends (kv-watch.ts).
 */
import { KvWatchInclude, type KV } from "@nats-io/kv";
import type { Bus } from "./connection.js";
import { ensureKv } from "./kv-bucket.js";
import { keepWatching } from "./kv-watch.js";

export const SESSIONS_BUCKET = "dmcp_sessions";
const SESSIONS_BUCKET_TIMEOUT_MS = 5_000;

/** A change another process made: a session written (its value) or deleted (undefined). */
export type SessionChange = { key: string; value: Uint8Array | undefined };

export interface SessionsBucket {
  get(key: string): Promise<Uint8Array | undefined>;
  put(key: string, value: Uint8Array): Promise<void>;
  delete(key: string): Promise<void>;
  /** Calls `onChange` for each write and delete from now on; the returned function stops the watch. */
  watch(onChange: (change: SessionChange) => void): Promise<() => void>;
}

/** Opens the bucket, made with the sessions' idle timeout as its max age unless it exists. */
export async function ensureSessionsBucket(bus: Bus, idleMs: number): Promise<SessionsBucket> {
  const kv: KV = await ensureKv(bus, SESSIONS_BUCKET, { ttlMs: idleMs, maxValueSize: bus.maxPayload, timeoutMs: SESSIONS_BUCKET_TIMEOUT_MS });
  return {
    async get(key) {
      const entry = await kv.get(key);
      return entry && entry.operation === "PUT" ? entry.value : undefined;
    },
    put: async (key, value) => void (await kv.put(key, value)),
    delete: async (key) => void (await kv.delete(key)),
    async watch(onChange) {
      const watch = await keepWatching(kv, (entry) => onChange({ key: entry.key, value: entry.operation === "PUT" ? entry.value : undefined }), {
        include: KvWatchInclude.UpdatesOnly,
        what: "sessions",
        logger: bus.logger,
      });
      return () => watch.stop();
    },
  };
}

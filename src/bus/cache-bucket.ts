/**
 * The shared tier of the gateway cache (PROTOCOL.md §18): cached answers in a JetStream KV bucket
 * every gateway reads and writes, each kept no longer than its TTL (the server drops it then where it
 * has per-message TTL, 2.11+; elsewhere the bucket's max age bounds it and readers check the expiry
 * stored with it), and the purge notices every gateway listens to so that a purge empties local
 * caches too. Keys are `<service>.<target>.<entry>`: a purge by service or target is a stream purge
 * by subject.
 */
import { Kvm, type KV } from "@nats-io/kv";
import { CACHE_BUCKET, CachePurgeNotice, MAX_CACHE_TTL_MS, subjects } from "../protocol/index.js";
import { natsConnectionOf, type Bus, type BusSubscription } from "./connection.js";
import { jetStreamManagerOf, jetStreamOf, streamPlacementOf } from "./jetstream.js";
import { ensureStream, kvStream } from "./streams.js";
import { serverFeatures } from "./durable/work-queue.js";

const CACHE_STREAM = kvStream(CACHE_BUCKET, { allowDirect: true });
/** A cache read that takes longer than this is a miss: the upstream answers instead. */
const CACHE_TIMEOUT_MS = 2_000;
const KEY = /^[A-Za-z0-9_-]{1,128}(\.[A-Za-z0-9_-]{1,128}){0,2}$/;

export interface SharedCache {
  /** The server drops each entry at its own TTL (per-message TTL); false: only the bucket's max age does. */
  readonly messageTtl: boolean;
  /** The value under `key`, or undefined (none, expired, or the read failed). */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Stores `value` under `key` for `ttlMs` (the server's per-message TTL where it has one). */
  put(key: string, value: Uint8Array, ttlMs: number): Promise<void>;
  /** Removes every entry, those of one service, or those of one target of a service (`<service>.<target>`). */
  purge(prefix?: string): Promise<void>;
  /** Tells every gateway to drop what `notice` names from its local cache. */
  announcePurge(notice: CachePurgeNotice): void;
  /** Calls `handler` with each well-formed purge notice on the bus. */
  onPurgeNotice(handler: (notice: CachePurgeNotice) => void): BusSubscription;
}

/** Opens the cache bucket, made unless it exists (max age: the longest TTL a cache entry can have), and checked. */
export async function ensureCacheBucket(bus: Bus): Promise<SharedCache> {
  const js = jetStreamOf(bus, { timeout: CACHE_TIMEOUT_MS });
  const kvm = new Kvm(js);
  const jsm = await jetStreamManagerOf(bus, { timeout: CACHE_TIMEOUT_MS });
  const create = (replicas: number) => kvm.create(CACHE_BUCKET, { history: 1, ttl: MAX_CACHE_TTL_MS, maxValueSize: bus.maxPayload, replicas });
  let { config } = await ensureStream(jsm, CACHE_STREAM, create, streamPlacementOf(bus));
  if (serverFeatures(natsConnectionOf(bus)).messageTtl && config.allow_msg_ttl !== true) {
    // Made by an older server, or by nats.js without a marker TTL: per-message TTL can be allowed later.
    config = await jsm.streams.update(CACHE_STREAM.name, { ...config, allow_msg_ttl: true }).then(
      (info) => info.config,
      () => config,
    );
  }
  const kv: KV = await kvm.open(CACHE_BUCKET, { allow_direct: config.allow_direct === true });
  const messageTtl = config.allow_msg_ttl === true;
  const subjectOf = (key: string) => `$KV.${CACHE_BUCKET}.${key}`;
  return {
    messageTtl,
    async get(key) {
      const entry = await kv.get(checkKey(key)).catch(() => null);
      return entry?.operation === "PUT" ? entry.value : undefined;
    },
    async put(key, value, ttlMs) {
      checkKey(key);
      // Whole seconds, at least one: the server's TTL resolution; readers check the exact expiry.
      if (messageTtl) await js.publish(subjectOf(key), value, { ttl: `${Math.max(1, Math.ceil(ttlMs / 1000))}s` });
      else await kv.put(key, value);
    },
    async purge(prefix) {
      await jsm.streams.purge(CACHE_STREAM.name, prefix === undefined ? undefined : { filter: `${subjectOf(checkKey(prefix))}.>` });
    },
    announcePurge(notice) {
      bus.publish(subjects.cachePurge(), new TextEncoder().encode(JSON.stringify(notice)));
    },
    onPurgeNotice(handler) {
      return bus.subscribe(subjects.cachePurge(), (message) => {
        let parsed: ReturnType<typeof CachePurgeNotice.safeParse>;
        try {
          parsed = CachePurgeNotice.safeParse(JSON.parse(new TextDecoder().decode(message.data)));
        } catch {
          return bus.dropped("cache-purge", "invalid_json");
        }
        if (parsed.success) handler(parsed.data);
        else bus.dropped("cache-purge", "invalid_notice");
      });
    },
  };
}

function checkKey(key: string): string {
  if (!KEY.test(key)) throw new Error(`invalid cache key ${JSON.stringify(key)}`);
  return key;
}

/**
 * The shared tier of the gateway cache (PROTOCOL.md §18): cached answers in a JetStream KV bucket
 * every gateway reads and writes, each kept no longer than its TTL (the server drops it then where it
 * has per-message TTL, 2.11+; elsewhere the bucket's max age bounds it and readers check the expiry
 * stored with it), and the purge notices every gateway listens to so that a purge empties local
 * caches too. Keys are `<service>.<target>.<entry>`: a purge by service or target is a stream purge
 * by subject. The bucket is bounded in bytes, its oldest entries going first when it is full; the
 * same keys serve the claims of concurrent misses (compare-and-set writes, ../gateway/cache/claims.ts).
 */
import { JetStreamApiCodes, JetStreamApiError, DiscardPolicy } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { CACHE_BUCKET, CachePurgeNotice, MAX_CACHE_TTL_MS, subjects } from "../protocol/index.js";
import { natsConnectionOf, type Bus, type BusSubscription } from "./connection.js";
import { jetStreamManagerOf, jetStreamOf, streamPlacementOf } from "./jetstream.js";
import { ensureStream, kvStream } from "./streams.js";
import { readBusJson } from "./bus-json.js";
import { serverFeatures } from "./durable/work-queue.js";

const CACHE_STREAM = kvStream(CACHE_BUCKET, { allowDirect: true });
/** A cache read that takes longer than this is a miss: the upstream answers instead. */
const CACHE_TIMEOUT_MS = 2_000;
const KEY = /^[A-Za-z0-9_-]{1,128}(\.[A-Za-z0-9_-]{1,128}){0,2}$/;
/** The bucket's bound in bytes where nobody sets one (a bucket made before it had none). */
export const DEFAULT_CACHE_BUCKET_MAX_BYTES = 256 * 1024 * 1024;

export interface SharedCache {
  /** The server drops each entry at its own TTL (per-message TTL); false: only the bucket's max age does. */
  readonly messageTtl: boolean;
  /** The value under `key`, or undefined (none, expired, or the read failed). */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Stores `value` under `key` for `ttlMs` (the server's per-message TTL where it has one). */
  put(key: string, value: Uint8Array, ttlMs: number): Promise<void>;
  /** The revision (stream sequence) of the value under `key` and when it was written, or undefined when there is none. */
  revisionOf(key: string): Promise<{ revision: number; writtenAt: number } | undefined>;
  /**
   * Writes `value` under `key` only if `revision` is still its last write (0: there is none); resolves
   * the new revision, or undefined when another write came first. `ttlMs` where the server has per-message TTL.
   */
  putIfRevision(key: string, value: Uint8Array, revision: number, ttlMs: number): Promise<number | undefined>;
  /** Removes `key`'s writes up to `revision`, and none made after it. */
  removeUpTo(key: string, revision: number): Promise<void>;
  /** Removes every entry, those of one service, or those of one target of a service (`<service>.<target>`). */
  purge(prefix?: string): Promise<void>;
  /** Tells every gateway to drop what `notice` names from its local cache. */
  announcePurge(notice: CachePurgeNotice): void;
  /** Calls `handler` with each well-formed purge notice on the bus. */
  onPurgeNotice(handler: (notice: CachePurgeNotice) => void): BusSubscription;
}

/**
 * Opens the cache bucket, made unless it exists (max age: the longest TTL a cache entry can have), and
 * checked. `maxBytes`: its bound, set on the bucket when it differs; without it a bucket without any
 * bound gets the default one, and a bounded one keeps its own.
 */
export async function ensureCacheBucket(bus: Bus, options: { maxBytes?: number | undefined } = {}): Promise<SharedCache> {
  const js = jetStreamOf(bus, { timeout: CACHE_TIMEOUT_MS });
  const kvm = new Kvm(js);
  const jsm = await jetStreamManagerOf(bus, { timeout: CACHE_TIMEOUT_MS });
  const maxBytes = options.maxBytes ?? DEFAULT_CACHE_BUCKET_MAX_BYTES;
  const maxValueSize = Math.min(bus.maxPayload, maxBytes);
  const create = (replicas: number) => kvm.create(CACHE_BUCKET, { history: 1, ttl: MAX_CACHE_TTL_MS, maxValueSize, max_bytes: maxBytes, replicas });
  let { config } = await ensureStream(jsm, CACHE_STREAM, create, streamPlacementOf(bus));
  const wanted = {
    // Made by an older server, or by nats.js without a marker TTL: per-message TTL can be allowed later.
    ...(serverFeatures(natsConnectionOf(bus)).messageTtl && config.allow_msg_ttl !== true ? { allow_msg_ttl: true } : {}),
    // A cache: when full, the oldest answers go (KV's default refuses new ones).
    ...(config.discard !== DiscardPolicy.Old ? { discard: DiscardPolicy.Old } : {}),
    ...((options.maxBytes !== undefined || !(config.max_bytes > 0)) && config.max_bytes !== maxBytes ? { max_bytes: maxBytes, max_msg_size: maxValueSize } : {}),
  };
  if (Object.keys(wanted).length > 0) {
    config = await jsm.streams.update(CACHE_STREAM.name, { ...config, ...wanted }).then(
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
    async revisionOf(key) {
      const entry = await kv.get(checkKey(key));
      return entry?.operation === "PUT" ? { revision: entry.revision, writtenAt: entry.created.getTime() } : undefined;
    },
    async putIfRevision(key, value, revision, ttlMs) {
      checkKey(key);
      const ttl = messageTtl ? { ttl: `${Math.max(1, Math.ceil(ttlMs / 1000))}s` } : {};
      try {
        return (await js.publish(subjectOf(key), value, { expect: { lastSubjectSequence: revision }, ...ttl })).seq;
      } catch (err) {
        if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence) return undefined;
        throw err;
      }
    },
    async removeUpTo(key, revision) {
      await jsm.streams.purge(CACHE_STREAM.name, { filter: subjectOf(checkKey(key)), seq: revision + 1 });
    },
    async purge(prefix) {
      await jsm.streams.purge(CACHE_STREAM.name, prefix === undefined ? undefined : { filter: `${subjectOf(checkKey(prefix))}.>` });
    },
    announcePurge(notice) {
      bus.publish(subjects.cachePurge(), new TextEncoder().encode(JSON.stringify(notice)));
    },
    onPurgeNotice(handler) {
      return bus.subscribe(subjects.cachePurge(), (message) => {
        const notice = readBusJson(bus, "cache-purge", message.data, (json) => CachePurgeNotice.safeParse(json).data, "invalid_notice");
        if (notice) handler(notice);
      });
    },
  };
}

function checkKey(key: string): string {
  if (!KEY.test(key)) throw new Error(`invalid cache key ${JSON.stringify(key)}`);
  return key;
}

/**
 * A JetStream KV bucket as a store of dMCP uses it (e.g. the gateway's task store): values by key,
 * written with compare-and-set. A gateway makes the bucket unless it exists, and checks what it finds
 * (streams.ts).
 */
import { Kvm, type KV } from "@nats-io/kv";
import type { Bus } from "./connection.js";
import { jetStreamManagerOf, jetStreamOf, streamPlacementOf } from "./jetstream.js";
import { ensureStream, kvStream } from "./streams.js";

/** A value as stored, with its revision (what compare-and-set compares). */
export interface KvValue {
  value: Uint8Array;
  revision: number;
}

export interface KvBucket {
  /** The value under `key`, or undefined when it has none (never written, deleted, or expired). */
  get(key: string): Promise<KvValue | undefined>;
  /** Stores `value` under a key that has none; rejects when it has one. */
  create(key: string, value: Uint8Array): Promise<void>;
  /** Stores `value` if the key's revision is still `revision`; rejects when another write came first. */
  update(key: string, value: Uint8Array, revision: number): Promise<void>;
  /** The keys that have values. */
  keys(): Promise<AsyncIterable<string>>;
}

export interface KvBucketOptions {
  /** Values older than this are gone (the bucket's max age). */
  ttlMs: number;
  /** The largest value the bucket takes. */
  maxValueSize?: number | undefined;
  /** How long one operation may take before it fails (JetStream's default otherwise). */
  timeoutMs?: number | undefined;
}

/** Opens the bucket, made with one value per key and these limits unless it exists, and checked. */
export async function ensureKvBucket(bus: Bus, bucket: string, options: KvBucketOptions): Promise<KvBucket> {
  const kv = await ensureKv(bus, bucket, options);
  return {
    async get(key) {
      const entry = await kv.get(key);
      return entry && entry.operation === "PUT" ? { value: entry.value, revision: entry.revision } : undefined;
    },
    create: async (key, value) => void (await kv.create(key, value)),
    update: async (key, value, revision) => void (await kv.update(key, value, revision)),
    keys: () => kv.keys(),
  };
}

/** The bucket as nats.js has it, for the modules of src/bus (the registry watches and deletes). */
export async function ensureKv(bus: Bus, bucket: string, options: KvBucketOptions): Promise<KV> {
  const kvm = new Kvm(jetStreamOf(bus, { timeout: options.timeoutMs }));
  const limits = { history: 1, ttl: options.ttlMs, ...(options.maxValueSize === undefined ? {} : { maxValueSize: options.maxValueSize }) };
  const info = await ensureStream(await jetStreamManagerOf(bus), kvStream(bucket), (replicas) => kvm.create(bucket, { ...limits, replicas }), streamPlacementOf(bus));
  return kvm.open(bucket, { allow_direct: info.config.allow_direct === true });
}

/**
 * The gateway cache's shared tier (src/bus/cache-bucket.ts) on the Debian nats-server (2.9) and on a
 * current one: entries with a per-message TTL where the server has it (it drops them by itself),
 * purges by service and in all, purge notices (a malformed one is dropped, not passed on), the
 * compare-and-set writes that claims of concurrent misses are made of, and the bucket's byte bound.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectBus, type Bus } from "../../src/bus/connection.js";
import { ensureCacheBucket, type SharedCache } from "../../src/bus/index.js";
import { DEFAULT_CACHE_BUCKET_MAX_BYTES } from "../../src/bus/cache-bucket.js";
import { jetStreamManagerOf } from "../../src/bus/jetstream.js";
import { CACHE_BUCKET } from "../../src/protocol/index.js";
import { serverFeatures } from "../../src/bus/durable/work-queue.js";
import { natsConnectionOf } from "../../src/bus/connection.js";
import { subjects, type CachePurgeNotice } from "../../src/protocol/index.js";
import { silentLogger } from "../../src/util/logger.js";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually, natsServersToCompare } from "../support/processes.js";

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array | undefined) => (value ? new TextDecoder().decode(value) : undefined);

describe.each(natsServersToCompare("the shared cache"))("the shared cache bucket on $label", ({ binary }) => {
  let nats: EmbeddedNats;
  let bus: Bus;
  let cache: SharedCache;

  beforeAll(async () => {
    nats = await startTestNats(binary ? { binary } : {});
    bus = await connectBus({ servers: nats.url, name: "cache-bucket-test", logger: silentLogger() });
    cache = await ensureCacheBucket(bus);
  }, 60_000);

  afterAll(async () => {
    await bus?.drain();
    await nats?.stop();
  });

  it("uses per-message TTL exactly where the server has it; there an entry leaves the bucket at its TTL", async () => {
    const messageTtl = serverFeatures(natsConnectionOf(bus)).messageTtl;
    expect(cache.messageTtl).toBe(messageTtl);
    // Opening it again (another gateway) finds it as made.
    expect((await ensureCacheBucket(bus)).messageTtl).toBe(messageTtl);
    await cache.put("svc.t1.e1", bytes("one"), 1_000);
    expect(text(await cache.get("svc.t1.e1"))).toBe("one");
    if (messageTtl) await eventually(async () => (await cache.get("svc.t1.e1")) === undefined, 15_000, 200);
    else expect(text(await cache.get("svc.t1.e1"))).toBe("one");
  });

  it("purges one target, one service, or everything", async () => {
    await cache.put("svc.t2.a", bytes("a"), 60_000);
    await cache.put("svc.t3.b", bytes("b"), 60_000);
    await cache.put("other.t2.c", bytes("c"), 60_000);
    await cache.purge("svc.t2");
    expect(await cache.get("svc.t2.a")).toBeUndefined();
    expect(text(await cache.get("svc.t3.b"))).toBe("b");
    await cache.purge("svc");
    expect(await cache.get("svc.t3.b")).toBeUndefined();
    expect(text(await cache.get("other.t2.c"))).toBe("c");
    await cache.purge();
    expect(await cache.get("other.t2.c")).toBeUndefined();
  });

  it("refuses a key that is not one (dots inside a part, wildcards)", async () => {
    await expect(cache.put("svc.>", bytes("x"), 1_000)).rejects.toThrow(/invalid cache key/);
    await expect(cache.purge("svc.*")).rejects.toThrow(/invalid cache key/);
  });

  it("passes purge notices on to every listener, and drops malformed ones", async () => {
    const seen: CachePurgeNotice[] = [];
    const subscription = cache.onPurgeNotice((notice) => seen.push(notice));
    await bus.flush();
    bus.publish(subjects.cachePurge(), bytes("not json"));
    bus.publish(subjects.cachePurge(), bytes(JSON.stringify({ service: 7 })));
    cache.announcePurge({ service: "svc", sender: "test" });
    await eventually(() => seen.length > 0);
    subscription.unsubscribe();
    expect(seen).toEqual([{ service: "svc", sender: "test" }]);
  });

  it("writes a key only over the revision given (0: none yet), and removes writes up to one revision but not later ones", async () => {
    const first = await cache.putIfRevision("svc.t4.claim", bytes("one"), 0, 10_000);
    expect(first).toBeGreaterThan(0);
    // Another writer that also saw no claim comes second.
    expect(await cache.putIfRevision("svc.t4.claim", bytes("two"), 0, 10_000)).toBeUndefined();
    expect(await cache.revisionOf("svc.t4.claim")).toMatchObject({ revision: first });
    const second = await cache.putIfRevision("svc.t4.claim", bytes("two"), first!, 10_000);
    expect(second).toBeGreaterThan(first!);
    expect(await cache.putIfRevision("svc.t4.claim", bytes("stale"), first!, 10_000)).toBeUndefined();
    // Removing up to the first write leaves the second.
    await cache.removeUpTo("svc.t4.claim", first!);
    expect(text(await cache.get("svc.t4.claim"))).toBe("two");
    await cache.removeUpTo("svc.t4.claim", second!);
    expect(await cache.revisionOf("svc.t4.claim")).toBeUndefined();
    // Gone without a trace: a new claim is a first write again.
    expect(await cache.putIfRevision("svc.t4.claim", bytes("three"), 0, 10_000)).toBeGreaterThan(0);
  });

  it("is bounded in bytes; when full the oldest entries go and writes still succeed", async () => {
    const jsm = await jetStreamManagerOf(bus);
    const stream = `KV_${CACHE_BUCKET}`;
    expect((await jsm.streams.info(stream)).config).toMatchObject({ max_bytes: DEFAULT_CACHE_BUCKET_MAX_BYTES, discard: "old" });
    const small = await ensureCacheBucket(bus, { maxBytes: 64 * 1024 });
    expect((await jsm.streams.info(stream)).config.max_bytes).toBe(64 * 1024);
    // Opened without a bound of its own (dmcp cache purge, a gateway without the flag), a bounded bucket keeps its bound.
    await ensureCacheBucket(bus);
    expect((await jsm.streams.info(stream)).config.max_bytes).toBe(64 * 1024);
    const value = bytes("x".repeat(1024));
    for (let i = 0; i < 200; i++) await small.put(`full.t.e${i}`, value, 60_000);
    expect(await small.get("full.t.e0")).toBeUndefined();
    expect(text(await small.get("full.t.e199"))).toBe("x".repeat(1024));
    await ensureCacheBucket(bus, { maxBytes: DEFAULT_CACHE_BUCKET_MAX_BYTES });
    expect((await jsm.streams.info(stream)).config.max_bytes).toBe(DEFAULT_CACHE_BUCKET_MAX_BYTES);
  });
});

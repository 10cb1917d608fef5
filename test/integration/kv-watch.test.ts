/**
 * A kept KV watch (src/bus/kv-watch.ts) on a real nats-server: when the server loses the watch's
 * consumer (as a busy cluster can), nats.js's own watch goes silent for a minute or more; the kept
 * watch notices within two checks and resumes after the last revision it delivered, so no change is
 * missed and none is delivered twice.
 */
import { Kvm, KvWatchInclude, type KV } from "@nats-io/kv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectBus, type Bus } from "../../src/bus/connection.js";
import { jetStreamManagerOf, jetStreamOf } from "../../src/bus/jetstream.js";
import { keepWatching, type KeptWatch } from "../../src/bus/kv-watch.js";
import { silentLogger } from "../../src/util/logger.js";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually } from "../support/processes.js";

const bytes = (text: string) => new TextEncoder().encode(text);
const FAST = { pauseMs: 50, checkEveryMs: 200, logger: silentLogger(), what: "test" } as const;

describe("a kept KV watch", () => {
  let nats: EmbeddedNats;
  let bus: Bus;
  let bucket = 0;

  beforeAll(async () => {
    nats = await startTestNats();
    bus = await connectBus({ servers: nats.url, name: "kv-watch-test", logger: silentLogger() });
  }, 60_000);

  afterAll(async () => {
    await bus?.drain();
    await nats?.stop();
  });

  async function newBucket(): Promise<{ kv: KV; stream: string }> {
    const name = `watched_${++bucket}`;
    return { kv: await new Kvm(jetStreamOf(bus)).create(name, { history: 1 }), stream: `KV_${name}` };
  }

  /** Deletes every consumer of the bucket's stream on the server, as a lost node would. */
  async function loseConsumers(stream: string): Promise<number> {
    const jsm = await jetStreamManagerOf(bus);
    const consumers = await jsm.consumers.list(stream).next();
    for (const consumer of consumers) await jsm.consumers.delete(stream, consumer.name);
    return consumers.length;
  }

  function record(seen: string[]) {
    return (entry: { key: string; revision: number; operation: string }) => seen.push(`${entry.operation} ${entry.key}@${entry.revision}`);
  }

  it("delivers changes only, and every change made after its consumer was lost", async () => {
    const { kv, stream } = await newBucket();
    await kv.put("before", bytes("0"));
    const seen: string[] = [];
    const watch: KeptWatch = await keepWatching(kv, record(seen), { ...FAST, include: KvWatchInclude.UpdatesOnly });
    try {
      await kv.put("a", bytes("1"));
      await eventually(async () => seen.length === 1, 5_000);
      expect(await loseConsumers(stream)).toBe(1);
      await kv.put("b", bytes("2"));
      await kv.delete("a");
      await eventually(async () => seen.length === 3, 10_000);
      expect(seen).toEqual(["PUT a@2", "PUT b@3", "DEL a@4"]);
      expect(watch.restarts).toBeGreaterThanOrEqual(1);
    } finally {
      watch.stop();
    }
  }, 30_000);

  it("delivers the values held at its start, then the changes, across a lost consumer", async () => {
    const { kv, stream } = await newBucket();
    await kv.put("x", bytes("1"));
    await kv.put("y", bytes("2"));
    const seen: string[] = [];
    const watch = await keepWatching(kv, record(seen), { ...FAST, include: KvWatchInclude.LastValue });
    try {
      await eventually(async () => seen.length === 2, 5_000);
      await loseConsumers(stream);
      await kv.put("z", bytes("3"));
      await eventually(async () => seen.length === 3, 10_000);
      expect(seen).toEqual(["PUT x@1", "PUT y@2", "PUT z@3"]);
    } finally {
      watch.stop();
    }
  }, 30_000);

  it("does not start again while it is merely quiet, nor after it is stopped", async () => {
    const { kv, stream } = await newBucket();
    const seen: string[] = [];
    const watch = await keepWatching(kv, record(seen), { ...FAST, include: KvWatchInclude.UpdatesOnly });
    await kv.put("a", bytes("1"));
    await eventually(async () => seen.length === 1, 5_000);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(watch.restarts).toBe(0);
    watch.stop();
    await eventually(async () => (await loseConsumers(stream)) === 0, 5_000);
    await kv.put("b", bytes("2"));
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(seen).toEqual(["PUT a@1"]);
    expect(watch.restarts).toBe(0);
  }, 30_000);
});

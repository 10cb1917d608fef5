/** Context streams on a real JetStream: publish, latest, topics, replay from a sequence or a time, durable consumption. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ContextStreams, connectBus, durableName, type Bus, type BadContextMessage, type ContextEntry } from "../../src/bus/index.js";
import { CONTEXT_STREAM, ErrorCode, subjects } from "../../src/protocol/index.js";
import { silentLogger } from "../../src/util/logger.js";
import { createMetricsRegistry } from "../../src/metrics/index.js";
import { connectRawNats, startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually, sleep } from "../support/processes.js";
import { jetstreamManager } from "@nats-io/jetstream";

describe("ContextStreams", () => {
  let nats: EmbeddedNats;
  let bus: Bus;
  let streams: ContextStreams;

  beforeAll(async () => {
    nats = await startTestNats();
    bus = await connectBus({ servers: nats.url, name: "context-test", logger: silentLogger() });
    streams = new ContextStreams(bus, "context-test");
    await streams.ensureStream({ maxMessagesPerTopic: 50 });
  });

  afterAll(async () => {
    await bus?.drain();
    await nats?.stop();
  });

  it("keeps the limits it was given", async () => {
    const raw = await connectRawNats(nats.url);
    const info = await (await jetstreamManager(raw)).streams.info(CONTEXT_STREAM);
    await raw.drain();
    expect(info.config.max_msgs_per_subject).toBe(50);
    expect(info.config.subjects).toEqual([subjects.contextAll()]);
  });

  it("publishes, reads the latest value and lists topics", async () => {
    await streams.publish("plant.pressure", { bar: 1.0 });
    const second = await streams.publish("plant.pressure", { bar: 2.5 });
    await streams.publish("plant.temperature", { c: 20 });
    const latest = await streams.latest("plant.pressure");
    expect(latest?.seq).toBe(second.seq);
    expect(latest?.envelope.payload).toMatchObject({ topic: "plant.pressure", data: { bar: 2.5 } });
    expect(await streams.latest("plant.nothing")).toBeUndefined();
    const topics = await streams.topics();
    expect(topics.get("plant.pressure")).toBe(2);
    expect(topics.get("plant.temperature")).toBe(1);
  });

  it("replays a topic in order from a sequence or a time, up to a limit", async () => {
    const published = [];
    for (let i = 0; i < 10; i++) published.push(await streams.publish("replay.me", { i }));
    const all = await streams.history("replay.me");
    expect(all.map((e) => (e.envelope.payload.data as { i: number }).i)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const fromSeq = await streams.history("replay.me", { from: { seq: published[6]!.seq } });
    expect(fromSeq.map((e) => (e.envelope.payload.data as { i: number }).i)).toEqual([6, 7, 8, 9]);
    const limited = await streams.history("replay.me", { limit: 3 });
    expect(limited.map((e) => (e.envelope.payload.data as { i: number }).i)).toEqual([0, 1, 2]);
    // The clock moves past the last message's timestamp, so that the cut falls between it and the next.
    await sleep(20);
    const cut = new Date();
    await streams.publish("replay.me", { i: 10 });
    const sinceCut = await streams.history("replay.me", { from: { time: cut } });
    expect(sinceCut.map((e) => (e.envelope.payload.data as { i: number }).i)).toEqual([10]);
    expect(await streams.history("replay.empty")).toEqual([]);
  });

  it("skips and reports malformed updates instead of failing the replay", async () => {
    await streams.publish("mixed", { ok: 1 });
    bus.publish(subjects.context("mixed"), new TextEncoder().encode("not json"));
    await bus.flush();
    // The stream has stored the bad message once a replay reports it.
    await eventually(async () => {
      let bad = 0;
      await streams.history("mixed", { onBad: () => bad++ });
      return bad === 1;
    });
    await streams.publish("mixed", { ok: 2 });
    const bad: BadContextMessage[] = [];
    const entries = await streams.history("mixed", { onBad: (b) => bad.push(b) });
    expect(entries.map((e) => e.envelope.payload.data)).toEqual([{ ok: 1 }, { ok: 2 }]);
    expect(bad).toHaveLength(1);
    expect(bad[0]!.error.code).toBe(ErrorCode.InvalidEnvelope);
  });

  it("reads a topic's latest valid update when its newest message is malformed, and reports the bad one", async () => {
    await streams.publish("latest.bad", { v: 1 });
    await streams.publish("latest.other", { v: "elsewhere" });
    bus.publish(subjects.context("latest.bad"), new TextEncoder().encode("not json"));
    await bus.flush();
    const bad: BadContextMessage[] = [];
    await eventually(async () => {
      bad.length = 0;
      const latest = await streams.latest("latest.bad", (b) => bad.push(b));
      return bad.length === 1 ? latest : undefined;
    });
    expect((await streams.latest("latest.bad"))?.envelope.payload.data).toEqual({ v: 1 });
    expect(bad[0]!.error.code).toBe(ErrorCode.InvalidEnvelope);
    bus.publish(subjects.context("latest.only-bad"), new TextEncoder().encode("not json"));
    await bus.flush();
    await eventually(async () => (await streams.topics()).has("latest.only-bad"));
    await expect(streams.latest("latest.only-bad")).rejects.toMatchObject({ code: ErrorCode.InvalidEnvelope });
  });

  it("delivers what a durable consumer missed while it was away, in order", async () => {
    const seen: number[] = [];
    const first = await streams.consume("inventory", "orders", (entry: ContextEntry) => void seen.push((entry.envelope.payload.data as { n: number }).n));
    await streams.publish("orders", { n: 1 });
    await eventually(() => seen.length === 1);
    await first.stop();
    await streams.publish("orders", { n: 2 });
    await streams.publish("orders", { n: 3 });
    const again = await streams.consume("inventory", "orders", (entry: ContextEntry) => void seen.push((entry.envelope.payload.data as { n: number }).n));
    await eventually(() => seen.length === 3);
    expect(seen).toEqual([1, 2, 3]);
    await again.stop();
  });

  it("retries a failed update before any later one, so order holds, and counts the redelivery", async () => {
    const registry = createMetricsRegistry({ defaultMetrics: false });
    const counted = new ContextStreams(bus, "context-test", registry);
    const seen: number[] = [];
    let failed = false;
    const consumer = await counted.consume("strict", "steps", (entry: ContextEntry) => {
      const n = (entry.envelope.payload.data as { n: number }).n;
      if (n === 2 && !failed) {
        failed = true;
        throw new Error("transient");
      }
      seen.push(n);
    });
    for (const n of [1, 2, 3, 4]) await streams.publish("steps", { n });
    await eventually(() => seen.length === 4, 15_000);
    expect(seen).toEqual([1, 2, 3, 4]);
    expect((await registry.getSingleMetric("dmcp_context_redeliveries_total")!.get()).values).toEqual([
      expect.objectContaining({ labels: { consumer: durableName("strict", "steps") }, value: 1 }),
    ]);
    await consumer.stop();
  });

  it("gives up an update after its last attempt, counts it as a dead letter, and goes on", async () => {
    const registry = createMetricsRegistry({ defaultMetrics: false });
    const counted = new ContextStreams(bus, "context-test", registry);
    const seen: number[] = [];
    const consumer = await counted.consume(
      "stubborn",
      "poison",
      (entry: ContextEntry) => {
        const n = (entry.envelope.payload.data as { n: number }).n;
        if (n === 2) throw new Error("always fails");
        seen.push(n);
      },
      { maxDeliver: 2 },
    );
    for (const n of [1, 2, 3]) await streams.publish("poison", { n });
    await eventually(() => seen.length === 2, 15_000);
    expect(seen).toEqual([1, 3]);
    const dead = (await registry.getSingleMetric("dmcp_context_dead_letters_total")!.get()).values;
    expect(dead).toEqual([expect.objectContaining({ labels: { consumer: durableName("stubborn", "poison") }, value: 1 })]);
    await consumer.stop();
  });

  it("gives different topic patterns different durable consumers", async () => {
    expect(durableName("watcher", "plant.unit_1")).not.toBe(durableName("watcher", "plant.unit.1"));
    expect(durableName("watcher", "orders.*")).not.toBe(durableName("watcher", "orders.>"));
    expect(durableName("planner", "plant.*")).toBe("planner-plant_d_s");
    const underscore: unknown[] = [];
    const dotted: unknown[] = [];
    const a = await streams.consume("watcher", "plant.unit_1", (entry: ContextEntry) => void underscore.push(entry.envelope.payload.data));
    const b = await streams.consume("watcher", "plant.unit.1", (entry: ContextEntry) => void dotted.push(entry.envelope.payload.data));
    await streams.publish("plant.unit_1", { u: 1 });
    await streams.publish("plant.unit.1", { d: 1 });
    await eventually(() => underscore.length === 1 && dotted.length === 1);
    expect(underscore).toEqual([{ u: 1 }]);
    expect(dotted).toEqual([{ d: 1 }]);
    await a.stop();
    await b.stop();
  });
});

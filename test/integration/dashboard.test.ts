/**
 * The dashboard's monitor in-process, on a real nats-server: the envelope scanner, the bounded
 * buffers, and the promises it makes to the gateway (NO_RESPONDERS still works; nothing is read
 * while nobody watches; the gateway's forward is given back on stop).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectBus, Requester, type Bus } from "../../src/bus/index.js";
import { Gateway } from "../../src/gateway/index.js";
import { GatewayMonitor, Ring, scanEnvelope, type MonitorUpdate } from "../../adapters/inbound/dashboard/index.js";
import { createEnvelope, encodeEnvelope, ErrorCode, subjects } from "../../src/protocol/index.js";
import { silentLogger } from "../../src/util/logger.js";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually } from "../support/processes.js";

const bytes = (text: string) => new TextEncoder().encode(text);

describe("scanEnvelope", () => {
  it("reads type, sender and correlation id from the top level, wherever they are", () => {
    const envelope = createEnvelope("prompt_request", { service: "s", method: "tools/call", params: { name: "echo" } }, { sender: "gateway-1" });
    envelope.correlation_id = envelope.id;
    expect(scanEnvelope(encodeEnvelope(envelope))).toEqual({ type: "prompt_request", sender_id: "gateway-1", correlation_id: envelope.id });
  });

  it("skips payloads whose strings hold quotes, braces and look-alike keys", () => {
    const payload = { params: { text: 'a "quoted" {brace} [bracket] \\ "type":"fake"', nested: [[{ type: "inner" }], 1, true, null] } };
    const text = JSON.stringify({ dMCP_version: "0.1", payload, type: "prompt_response", sender_id: "ex\u00e9-1", correlation_id: "c-1", n: -1.5e3, ok: false });
    expect(scanEnvelope(bytes(text))).toEqual({ type: "prompt_response", sender_id: "ex\u00e9-1", correlation_id: "c-1" });
    expect(scanEnvelope(bytes(' { "type" : "x" , "sender_id":"\\u0041b" } '))).toEqual({ type: "x", sender_id: "Ab" });
  });

  it("reads a 1 MiB payload without decoding it", () => {
    const text = JSON.stringify({ type: "prompt_response", payload: { result: { content: [{ type: "text", text: "x".repeat(1024 * 1024) }] } }, correlation_id: "late" });
    expect(scanEnvelope(bytes(text))).toEqual({ type: "prompt_response", correlation_id: "late" });
  });

  it("returns undefined for what is not a JSON object, and never throws", () => {
    for (const bad of ["", "not json", "[1,2]", '"str"', '{"type":', '{"type":"x"', '{"a":1 "b":2}', '{"payload":{"open":[1,2}', "{'type':'x'}", '{"type":"unterminated}']) {
      expect(scanEnvelope(bytes(bad)), bad).toBeUndefined();
    }
    expect(scanEnvelope(new Uint8Array([0xff, 0x00, 0x7b]))).toBeUndefined();
    expect(scanEnvelope(bytes("{}"))).toEqual({});
    expect(scanEnvelope(bytes('{"type":5,"sender_id":null}'))).toEqual({});
  });

  it("cuts overlong values", () => {
    const meta = scanEnvelope(bytes(JSON.stringify({ type: "t", sender_id: "s".repeat(5000) })));
    expect(meta?.sender_id?.length).toBeLessThanOrEqual(256);
  });
});

describe("Ring", () => {
  it("keeps the newest items, oldest first", () => {
    const ring = new Ring<number>(3);
    expect(ring.toArray()).toEqual([]);
    for (let i = 1; i <= 5; i++) ring.push(i);
    expect(ring.toArray()).toEqual([3, 4, 5]);
  });
});

describe("GatewayMonitor", () => {
  let nats: EmbeddedNats;
  let bus: Bus;
  let monitor: GatewayMonitor;
  let gateway: Gateway;

  beforeAll(async () => {
    nats = await startTestNats();
    bus = await connectBus({ servers: nats.url, name: "monitor-test", logger: silentLogger() });
    monitor = new GatewayMonitor({ bus, logger: silentLogger(), trafficLimit: 50, errorLimit: 5, flushMs: 50 });
    gateway = new Gateway({ bus: monitor.bus, logger: silentLogger(), callTimeoutMs: 10_000 });
    await gateway.start();
    monitor.attach(gateway);
  });

  afterAll(async () => {
    monitor?.stop();
    await gateway?.stop(0);
    await bus?.drain();
    await nats?.stop();
  });

  it("leaves NO_RESPONDERS intact: it never listens on request subjects", async () => {
    const updates: MonitorUpdate[] = [];
    const unwatch = monitor.watch((update) => updates.push(update));
    try {
      const caller = new Requester(monitor.bus, "monitor-test");
      const started = Date.now();
      await expect(caller.call("nobody", "tools/call", { name: "x" }, { timeoutMs: 5000 })).rejects.toMatchObject({ code: ErrorCode.NoResponders });
      expect(Date.now() - started).toBeLessThan(2000);
      caller.close();
      const traffic = await eventually(() => {
        const seen = updates.flatMap((u) => u.traffic ?? []);
        return seen.some((t) => t.type === "no_responders") ? seen : undefined;
      });
      expect(traffic.find((t) => t.type === "prompt_request")).toMatchObject({ dir: "out", subject: subjects.request("nobody"), sender: "monitor-test" });
      expect(traffic.find((t) => t.type === "no_responders")).toMatchObject({ dir: "in", sender: "nats-server" });
    } finally {
      unwatch();
    }
  });

  it("counts but does not read traffic while nobody watches", async () => {
    expect(monitor.watching).toBe(false);
    const before = monitor.snapshot();
    bus.publish(subjects.heartbeat("svc", "svc-1"), bytes("{}"));
    const caller = new Requester(monitor.bus, "monitor-test");
    await expect(caller.call("nobody", "tools/call", {}, { timeoutMs: 5000 })).rejects.toMatchObject({ code: ErrorCode.NoResponders });
    caller.close();
    await eventually(() => monitor.snapshot().counters.busMessages >= before.counters.busMessages + 2);
    expect(monitor.snapshot().traffic).toEqual(before.traffic);
  });

  it("records the gateway's failed calls, bounded, and bus errors even while nobody watches", async () => {
    for (let i = 0; i < 7; i++) {
      await expect(gateway.core.dispatcher.dispatch(gateway.core.call({ method: "tools/call", params: { name: `missing_${i}` } }))).rejects.toMatchObject({
        code: ErrorCode.UnknownTarget,
      });
    }
    const report = createEnvelope("error_notification", { code: "INTERNAL", message: "boom" }, { sender: "other" });
    bus.publish(subjects.errors("other"), encodeEnvelope(report));
    const state = await eventually(() => {
      const snapshot = monitor.snapshot();
      return snapshot.errors.some((e) => e.source === "bus") ? snapshot : undefined;
    });
    expect(state.errors).toHaveLength(5);
    expect(state.errors.at(-1)).toMatchObject({ source: "bus", code: "INTERNAL", message: "boom", sender: "other", subject: subjects.errors("other") });
    expect(state.errors.at(-2)).toMatchObject({ source: "gateway", code: "UNKNOWN_TARGET", target: "missing_6", method: "tools/call" });
    expect(state.counters).toMatchObject({ calls: 7, failed: 7, inflight: 0 });
    expect(state.calls).toEqual([]);
  });

  it("stops following the gateway's calls when it stops", async () => {
    const other = new GatewayMonitor({ bus, logger: silentLogger() });
    other.attach(gateway);
    await expect(gateway.core.dispatcher.dispatch(gateway.core.call({ method: "tools/call", params: { name: "missing_a" } }))).rejects.toMatchObject({
      code: ErrorCode.UnknownTarget,
    });
    expect(other.snapshot().counters.calls).toBe(1);
    other.stop();
    await expect(gateway.core.dispatcher.dispatch(gateway.core.call({ method: "tools/call", params: { name: "missing_b" } }))).rejects.toMatchObject({
      code: ErrorCode.UnknownTarget,
    });
    expect(other.snapshot().counters.calls).toBe(1);
  });
});

/**
 * The bus as its users see it, against a real nats-server: the operations it offers in dMCP terms
 * (publish, subscribe, request, flush, error reports, KV buckets, a codec of their choice, a tap) and
 * no NATS connection of its own to reach for.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectBus, ensureKvBucket, JSON_CODEC, StreamConfigError, type Bus, type BusMessage, type EnvelopeCodec } from "../../src/bus/index.js";
import { BusError, CallError, createEnvelope, DmcpError, ErrorCode, subjects, type Envelope } from "../../src/protocol/index.js";
import { MessageSecurity, SigningKey, splitSignature } from "../../src/security/index.js";
import { silentLogger } from "../../src/util/logger.js";
import { connectRawNats, startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually } from "../support/processes.js";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

describe("the bus", () => {
  let nats: EmbeddedNats;
  let bus: Bus;
  let other: Bus;

  beforeAll(async () => {
    nats = await startTestNats();
    bus = await connectBus({ servers: nats.url, name: "bus-test", logger: silentLogger() });
    other = await connectBus({ servers: nats.url, name: "bus-test-other", logger: silentLogger() });
  });

  afterAll(async () => {
    await bus?.drain();
    await other?.drain();
    await nats?.stop();
  });

  /** Every value reachable as a property of the bus, its prototype's getters included. */
  function propertiesOf(target: object): unknown[] {
    const values: unknown[] = [];
    for (let proto: object | null = target; proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
      for (const key of Object.getOwnPropertyNames(proto)) values.push((target as Record<string, unknown>)[key]);
    }
    return values;
  }

  it("hands out no NATS connection: its users get its operations only", () => {
    expect("nc" in bus).toBe(false);
    // A NatsConnection has status() and info; none of the bus's properties is one.
    const connections = propertiesOf(bus).filter(
      (value) => typeof value === "object" && value !== null && typeof (value as { status?: unknown }).status === "function" && "info" in value,
    );
    expect(connections).toEqual([]);
  });

  it("publishes an envelope encoded by its codec, and hands subscribers the bytes with their subject", async () => {
    const received: BusMessage[] = [];
    const sub = other.subscribe(subjects.context("bus.test"), (message) => void received.push(message));
    await other.flush();
    const envelope = createEnvelope("context_update", { topic: "bus.test", data: { n: 1 } }, { sender: "bus-test" });
    bus.publish(subjects.context("bus.test"), envelope);
    bus.publish(subjects.context("bus.test"), new TextEncoder().encode("raw bytes"));
    await eventually(() => received.length === 2);
    sub.unsubscribe();
    expect(received[0]!.subject).toBe(subjects.context("bus.test"));
    expect(JSON.parse(text(received[0]!.data))).toEqual(envelope);
    expect(text(received[1]!.data)).toBe("raw bytes");
    expect(received[0]!.reply).toBeUndefined();
  });

  it("keeps a subscription going when its handler throws", async () => {
    const seen: string[] = [];
    const sub = other.subscribe("bus.throws", (message) => {
      seen.push(text(message.data));
      if (seen.length === 1) throw new Error("a bad handler");
    });
    await other.flush();
    bus.publish("bus.throws", new TextEncoder().encode("first"));
    bus.publish("bus.throws", new TextEncoder().encode("second"));
    await eventually(() => seen.length === 2);
    sub.unsubscribe();
    expect(seen).toEqual(["first", "second"]);
  });

  it("requests and resolves with the answer, which the responder gives as an envelope", async () => {
    const sub = other.subscribe("bus.echo", (message) => {
      const request = JSON.parse(text(message.data)) as Envelope;
      message.respond(createEnvelope("prompt_response", { result: { echoed: request.id } }, { sender: "echo", correlationId: request.id }));
    });
    await other.flush();
    const request = createEnvelope("prompt_request", { service: "echo", method: "ping" }, { sender: "bus-test" });
    const answer = await bus.request("bus.echo", request, { timeoutMs: 5000 });
    sub.unsubscribe();
    const decoded = bus.codec.decode(answer.data, { receiver: "bus-test" });
    expect(decoded.ok && decoded.envelope).toMatchObject({ type: "prompt_response", correlation_id: request.id, payload: { result: { echoed: request.id } } });
  });

  it("rejects a request nothing subscribes to with NO_RESPONDERS, and one nobody answers with DEADLINE_EXCEEDED", async () => {
    const request = createEnvelope("prompt_request", { service: "nobody", method: "ping" }, { sender: "bus-test" });
    const nobody = bus.request("bus.nobody", request, { timeoutMs: 5000 });
    await expect(nobody).rejects.toBeInstanceOf(BusError);
    await expect(nobody).rejects.toMatchObject({ code: ErrorCode.NoResponders });
    const silent = other.subscribe("bus.silent", () => undefined);
    await other.flush();
    const late = bus.request("bus.silent", request, { timeoutMs: 200 });
    await expect(late).rejects.toBeInstanceOf(CallError);
    await expect(late).rejects.toMatchObject({ code: ErrorCode.DeadlineExceeded });
    silent.unsubscribe();
  });

  it("reports an error on dmcp.v1.err.<reporter>, its data merged with the details", async () => {
    const reports: BusMessage[] = [];
    const sub = other.subscribe(subjects.errorsAll(), (message) => void reports.push(message));
    await other.flush();
    bus.reportError("bus-test", new DmcpError(ErrorCode.SignatureInvalid, "forged", { data: { signer: "U123" } }), { subject: "somewhere" });
    const report = await eventually(() => reports[0]);
    sub.unsubscribe();
    expect(report.subject).toBe(subjects.errors("bus-test"));
    expect(JSON.parse(text(report.data))).toMatchObject({
      type: "error_notification",
      sender_id: "bus-test",
      payload: { code: ErrorCode.SignatureInvalid, message: "forged", data: { signer: "U123", subject: "somewhere" } },
    });
  });

  it("takes message security as its codec, and gives a view of the same connection with another", async () => {
    const key = SigningKey.generate();
    const security: EnvelopeCodec = new MessageSecurity({ signingKey: key });
    expect(bus.codec).toBe(JSON_CODEC);
    const signed = bus.withCodec(security);
    expect(signed.codec).toBe(security);
    const received: Uint8Array[] = [];
    const sub = other.subscribe("bus.signed", (message) => void received.push(message.data));
    await other.flush();
    const envelope = createEnvelope("context_update", { topic: "t", data: 1 }, { sender: "bus-test" });
    signed.publish("bus.signed", envelope);
    bus.publish("bus.signed", envelope);
    await eventually(() => received.length === 2);
    sub.unsubscribe();
    expect(splitSignature(received[0]!)?.publicKey).toBe(key.publicKey);
    expect(splitSignature(received[1]!)).toBeUndefined();
    // A rejection is the codec's to tell from a malformed message.
    expect(security.isRejection(new DmcpError(ErrorCode.SignatureInvalid, "x"))).toBe(true);
    expect(security.isRejection(new DmcpError(ErrorCode.InvalidEnvelope, "x"))).toBe(false);
    expect(JSON_CODEC.isRejection(new DmcpError(ErrorCode.SignatureInvalid, "x"))).toBe(false);
  });

  it("shows a tapped view's traffic to its tap, and nothing else's", async () => {
    const sent: { subject: string; data: string; reply: string | undefined }[] = [];
    const received: string[] = [];
    const tapped = bus.tapped({
      sent: (subject, data, reply) => void sent.push({ subject, data: text(data), reply }),
      received: (message) => {
        received.push(`${message.subject} ${text(message.data)}`);
        throw new Error("a tap that fails breaks nothing");
      },
    });
    const handled: string[] = [];
    const sub = tapped.subscribe("bus.tapped.in", (message) => void handled.push(text(message.data)));
    await tapped.flush();
    tapped.publish("bus.tapped.out", new TextEncoder().encode("mine"));
    bus.publish("bus.tapped.out", new TextEncoder().encode("untapped"));
    other.publish("bus.tapped.in", new TextEncoder().encode("theirs"));
    other.publish("bus.tapped.in", new TextEncoder().encode("again"));
    await eventually(() => handled.length === 2 && received.length === 2);
    sub.unsubscribe();
    expect(sent).toEqual([{ subject: "bus.tapped.out", data: "mine", reply: undefined }]);
    expect(handled).toEqual(["theirs", "again"]);
    expect(received).toEqual(["bus.tapped.in theirs", "bus.tapped.in again"]);
  });

  it("opens a KV bucket for a store: compare-and-set writes, values by key, the bucket checked", async () => {
    const bucket = await ensureKvBucket(bus, "bus_test", { ttlMs: 60_000, maxValueSize: 1024, timeoutMs: 2000 });
    const value = (s: string) => new TextEncoder().encode(s);
    expect(await bucket.get("a")).toBeUndefined();
    await bucket.create("a", value("one"));
    await expect(bucket.create("a", value("again"))).rejects.toThrow();
    const first = await bucket.get("a");
    expect(text(first!.value)).toBe("one");
    await bucket.update("a", value("two"), first!.revision);
    await expect(bucket.update("a", value("stale"), first!.revision)).rejects.toThrow();
    expect(text((await bucket.get("a"))!.value)).toBe("two");
    await bucket.create("b", value("three"));
    const keys: string[] = [];
    for await (const key of await bucket.keys()) keys.push(key);
    expect(keys.sort()).toEqual(["a", "b"]);
    // Opened again (another gateway), it is the same bucket.
    expect(text((await (await ensureKvBucket(other, "bus_test", { ttlMs: 60_000 })).get("b"))!.value)).toBe("three");
  });

  it("refuses a bucket whose stream someone made with other subjects", async () => {
    const raw = await connectRawNats(nats.url);
    try {
      await (await jetstreamManager(raw)).streams.add({ name: "KV_bus_foreign", subjects: ["foreign.>"] });
    } finally {
      await raw.drain();
    }
    await expect(ensureKvBucket(bus, "bus_foreign", { ttlMs: 60_000 })).rejects.toBeInstanceOf(StreamConfigError);
  });
});

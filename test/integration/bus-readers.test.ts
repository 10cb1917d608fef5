/**
 * Every reader of JSON off the bus that nobody answers, on a real nats-server, fed what anyone
 * allowed to publish or write there may send: JSON that is not an object (`null`, an array, a
 * number, a string), text that is not JSON, objects of the wrong shape. Each drops and counts it
 * (dmcp_bus_messages_dropped_total, through the bus's onDropped) instead of throwing in its handler,
 * and the valid message after the junk still works: shared rate limits, purge notices, max-deliveries
 * advisories and the delivery records they read, task records, shared cache entries, recover lookups.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as z from "zod";
import { Agent } from "../../src/agent/index.js";
import {
  connectBus,
  DEAD_LETTER_HEADERS,
  DeadLetters,
  ensureCacheBucket,
  provisionStreams,
  recordDelivery,
  ResultStore,
  type Bus,
  type DroppedSubject,
} from "../../src/bus/index.js";
import { TASKS_BUCKET } from "../../src/bus/tasks-bucket.js";
import { ANONYMOUS } from "../../src/gateway/index.js";
import { RateSharing } from "../../src/gateway/access/rate-sharing.js";
import { GatewayCache } from "../../src/gateway/cache/index.js";
import { cacheKeysOf } from "../../src/gateway/cache/key.js";
import { TaskStore, type TaskRecord } from "../../src/gateway/tasks/task-store.js";
import {
  createEnvelope,
  DEAD_LETTER_STREAM,
  decodeEnvelope,
  encodeEnvelope,
  ErrorCode,
  RESULTS_BUCKET,
  subjects,
  WORK_STREAM,
  type CachePurgeNotice,
} from "../../src/protocol/index.js";
import { silentLogger } from "../../src/util/logger.js";
import { connectRawNats, startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually } from "../support/processes.js";

/** No JSON object at all: each is dropped as `invalid_json`. */
const NOT_OBJECTS = ["null", "[1,2]", "42", '"text"', "true", "not json", ""];
const bytes = (text: string) => new TextEncoder().encode(text);

let nats: EmbeddedNats;
let bus: Bus;
let raw: NatsConnection;
/** What the bus dropped, as `<subject>/<reason>`, in order. */
const dropped: string[] = [];
const droppedOn = (subject: DroppedSubject) => dropped.filter((entry) => entry.startsWith(`${subject}/`)).map((entry) => entry.slice(subject.length + 1));

beforeAll(async () => {
  nats = await startTestNats();
  bus = await connectBus({ servers: nats.url, name: "readers", logger: silentLogger() });
  bus.onDropped((subject, reason) => dropped.push(`${subject}/${reason}`));
  await provisionStreams(bus);
  raw = await connectRawNats(nats.url);
});

afterAll(async () => {
  await raw?.drain();
  await bus?.drain();
  await nats?.stop();
});

/** Publishes each of `junk` on `subject`, then `valid`, and waits until the server passed them all on. */
async function publishJunkThen(subject: string, junk: string[], valid?: string): Promise<void> {
  for (const text of junk) raw.publish(subject, bytes(text));
  if (valid !== undefined) raw.publish(subject, bytes(valid));
  await raw.flush();
}

describe("shared rate limits (dmcp.v1.rate.spent)", () => {
  it("drop and count what is not a share, and take the share after it", async () => {
    const sharing = new RateSharing({ bus, gatewayId: "gw-here", logger: silentLogger() });
    const taken: [string, number][] = [];
    sharing.onSpent((key, count) => taken.push([key, count]));
    await bus.flush();
    const wrongShapes = [
      '{"gateway":"gw-there"}',
      '{"gateway":"gw-there","spent":null}',
      '{"gateway":"gw-there","spent":[3]}',
      '{"gateway":7,"spent":{"ip:a":1}}',
      '{"spent":{"ip:a":1}}',
    ];
    await publishJunkThen(subjects.rateSpent, [...NOT_OBJECTS, ...wrongShapes], JSON.stringify({ gateway: "gw-there", spent: { "ip:a": 2, "ip:b": "x", "ip:c": -1 } }));
    try {
      await eventually(() => taken.length > 0, 10_000);
      expect(taken).toEqual([["ip:a", 2]]);
      expect(droppedOn("rate")).toEqual([...NOT_OBJECTS.map(() => "invalid_json"), ...wrongShapes.map(() => "invalid_message")]);
    } finally {
      sharing.stop();
    }
  });
});

describe("purge notices of the shared cache (dmcp.v1.cache.purge)", () => {
  it("drop and count what is not a notice, and pass on the notice after it", async () => {
    const cache = await ensureCacheBucket(bus);
    const seen: CachePurgeNotice[] = [];
    const subscription = cache.onPurgeNotice((notice) => seen.push(notice));
    await bus.flush();
    const wrongShapes = ['{"service":7}', '{"service":"svc","target":["t"]}'];
    await publishJunkThen(subjects.cachePurge(), [...NOT_OBJECTS, ...wrongShapes], JSON.stringify({ service: "svc", sender: "test" }));
    try {
      await eventually(() => seen.length > 0, 10_000);
      expect(seen).toEqual([{ service: "svc", sender: "test" }]);
      expect(droppedOn("cache-purge")).toEqual([...NOT_OBJECTS.map(() => "invalid_json"), ...wrongShapes.map(() => "invalid_notice")]);
    } finally {
      subscription.unsubscribe();
    }
  });
});

describe("max-deliveries advisories and the delivery records they read", () => {
  it("drop and count what is not an advisory of the work stream, skip delivery records that are not ones, and dead-letter the request the advisory after it names", async () => {
    const results = await ResultStore.bind(bus);
    const deadLetters = new DeadLetters(bus, "readers-test", results);
    deadLetters.watch();
    await bus.flush();
    const js = jetstream(raw);
    const jsm = await jetstreamManager(raw);
    // A durable request whose three deliveries left one good record and two that are not records.
    const request = createEnvelope("prompt_request", { service: "svc", method: "tools/call", params: { name: "t" } }, { sender: "test", correlationId: "dead-1" });
    const { seq } = await js.publish(subjects.work("svc", "normal"), encodeEnvelope(request));
    const kv = await new Kvm(raw).open(RESULTS_BUCKET);
    await kv.put("svc.delivery.dead-1.1", bytes("null"));
    await recordDelivery(results, "svc", "dead-1", 2, { ran: true, code: "UPSTREAM_ERROR", message: "boom" });
    await kv.put("svc.delivery.dead-1.3", bytes('{"ran":"yes","code":"X","message":"m"}'));
    const wrongShapes = [
      JSON.stringify({ stream: "OTHER", stream_seq: seq }),
      JSON.stringify({ stream: WORK_STREAM, stream_seq: String(seq) }),
      JSON.stringify({ stream: WORK_STREAM, stream_seq: -1 }),
      JSON.stringify({ stream: WORK_STREAM }),
    ];
    const advisorySubject = subjects.maxDeliveriesAdvisory().replace("*", "dmcp-work-svc-normal");
    await publishJunkThen(advisorySubject, [...NOT_OBJECTS, ...wrongShapes], JSON.stringify({ stream: WORK_STREAM, stream_seq: seq, deliveries: 3 }));
    try {
      const letter = await eventually(() => jsm.streams.getMessage(DEAD_LETTER_STREAM, { last_by_subj: subjects.deadLetter("svc") }).catch(() => null), 10_000);
      expect(letter.header.get(DEAD_LETTER_HEADERS.code)).toBe(ErrorCode.RetriesExhausted);
      expect(letter.header.get(DEAD_LETTER_HEADERS.reason)).toContain("1 ran and failed (UPSTREAM_ERROR), 2 were lost with their replicas");
      const answer = await results.get("svc", "dead-1");
      const decoded = answer && decodeEnvelope(answer.data);
      expect(decoded?.ok && decoded.envelope.type === "error_notification" && decoded.envelope.payload.code).toBe(ErrorCode.RetriesExhausted);
      await eventually(async () => (await jsm.streams.getMessage(WORK_STREAM, { seq }).catch(() => null)) === null, 10_000);
      expect(droppedOn("dead-letter")).toEqual([...NOT_OBJECTS.map(() => "invalid_json"), ...wrongShapes.map(() => "invalid_advisory")]);
      expect(droppedOn("delivery-record")).toEqual(["invalid_json", "invalid_record"]);
    } finally {
      deadLetters.stop();
    }
  });
});

describe("task records (dmcp_tasks)", () => {
  it("are skipped as unknown tasks, and counted, when they are not records; the valid ones are read and listed", async () => {
    const store = await TaskStore.open(bus);
    const now = new Date().toISOString();
    const valid: TaskRecord = {
      v: 1,
      taskId: "task-ok",
      owner: { kind: "token", subject: "alice" },
      status: "working",
      createdAt: now,
      lastUpdatedAt: now,
      ttlMs: 60_000,
      pollIntervalMs: 1_000,
      request: { method: "tools/call", params: { name: "t" }, delivery: "direct", correlationId: "c-task" },
      runner: { gateway: "gw", leaseUntil: now },
    };
    const wrongShapes = [
      { v: 1, taskId: "t", status: "working" },
      { ...valid, v: 2 },
      { ...valid, status: "sleeping" },
      { ...valid, owner: null },
      { ...valid, request: { ...valid.request, params: [] } },
      { ...valid, runner: { gateway: "gw" } },
      { ...valid, ttlMs: "long" },
      { ...valid, error: { code: "x" } },
    ].map((record) => JSON.stringify(record));
    const kv = await new Kvm(raw).open(TASKS_BUCKET);
    const junk = [...NOT_OBJECTS, ...wrongShapes];
    for (const [index, text] of junk.entries()) await kv.put(`task-junk-${index}`, bytes(text));
    await store.create(valid);
    for (const index of junk.keys()) expect(await store.get(`task-junk-${index}`)).toBeUndefined();
    expect(await store.get("task-ok")).toEqual(valid);
    expect((await store.all()).map((record) => record.taskId)).toEqual(["task-ok"]);
    const reasons = [...NOT_OBJECTS.map(() => "invalid_json"), ...wrongShapes.map(() => "invalid_record")];
    // Each junk record was read twice: by get, then by all.
    expect(droppedOn("task-record").sort()).toEqual([...reasons, ...reasons].sort());
  });
});

describe("shared cache entries (dmcp_cache)", () => {
  it("are misses, and counted, when they are not entries; the answer stored over one is a shared hit", async () => {
    const shared = await ensureCacheBucket(bus);
    const catalogs = new Map([
      [
        "svc",
        {
          catalog: { tools: [{ name: "read", inputSchema: { type: "object" }, annotations: { readOnlyHint: true } }], resources: [], prompts: [], resource_templates: [] },
          capabilities: {},
          cache: { rules: [{ pattern: "read", ttl_ms: 60_000, scope: "public" as const }] },
        },
      ],
    ]);
    /** A gateway's cache with nothing kept locally yet: what it serves comes from the bucket or `fetch`. */
    const freshCache = () => {
      const cache = new GatewayCache({ logger: silentLogger(), id: "gw", sealed: () => false });
      cache.attachShared(shared, bus);
      cache.servicesChanged(catalogs);
      return cache;
    };
    const far = Date.now() + 60_000;
    const wrongShapes = [
      { e: far, s: Date.now() },
      { e: far, s: Date.now(), r: null },
      { e: far, s: Date.now(), r: [1] },
      { e: "later", s: 0, r: {} },
    ].map((entry) => JSON.stringify(entry));
    const fetched = { content: [{ type: "text", text: "fresh" }] };
    for (const [index, junk] of [...NOT_OBJECTS, ...wrongShapes].entries()) {
      // A key (and claim) of its own per junk value: no claim of an earlier round is still held.
      const route = { service: "svc", params: { name: "read", arguments: { round: index } } };
      const call = { method: "tools/call", params: route.params, transport: "http", identity: ANONYMOUS, stateless: false, signal: new AbortController().signal };
      const key = cacheKeysOf("svc", "tools/call", route.params, ANONYMOUS, "2025").public;
      await shared.put(key, bytes(junk), 60_000);
      const cache = freshCache();
      let fetches = 0;
      const answer = await cache.serve(call, route, cache.decide(call, route)!, async () => {
        fetches++;
        return structuredClone(fetched);
      });
      expect(answer).toEqual(fetched);
      expect(fetches).toBe(1);
      // The answer fetched goes into the bucket over the junk: the next gateway's read is a shared hit.
      await eventually(async () => new TextDecoder().decode(await shared.get(key)) !== junk, 10_000);
      const next = freshCache();
      const hit = await next.serve(call, route, next.decide(call, route)!, () => Promise.reject(new Error("not fetched again")));
      expect(hit).toMatchObject({ content: fetched.content, _meta: { "io.dmcp/cache": { hit: true, tier: "shared" } } });
    }
    expect(droppedOn("cache-entry")).toEqual([...NOT_OBJECTS.map(() => "invalid_json"), ...wrongShapes.map(() => "invalid_entry")]);
  });
});

describe("recover lookups (dmcp.v1.recover.<service>) and the one rule for correlation ids", () => {
  let agent: Agent;

  beforeAll(async () => {
    agent = new Agent({ bus, name: "echo", version: "1.0.0", logger: silentLogger() }).tool(
      "echo",
      { description: "echoes", input: z.object({ text: z.string() }) },
      ({ text }) => ({ content: [{ type: "text", text }] }),
    );
    await agent.start();
  });

  afterAll(async () => {
    await agent?.stop();
  });

  /** A direct call to the agent with this correlation id, as a gateway sends it. */
  async function call(correlationId: string) {
    const request = createEnvelope("prompt_request", { service: "echo", method: "tools/call", params: { name: "echo", arguments: { text: "hi" } } }, { sender: "test" });
    const reply = await raw.request(subjects.request("echo"), encodeEnvelope({ ...request, correlation_id: correlationId }), { timeout: 10_000 });
    return decodeEnvelope(reply.data);
  }

  it("answer a lookup of a correlation id of 256 characters, and drop and count junk and one of 257 as the envelope refuses it", async () => {
    const longest = "c".repeat(256);
    const answered = await call(longest);
    expect(answered.ok && answered.envelope.type).toBe("prompt_response");
    // One character more: the envelope is invalid, and a lookup naming it is no lookup.
    const tooLong = await call(`${longest}c`);
    expect(tooLong.ok && tooLong.envelope.type === "error_notification" && tooLong.envelope.payload.code).toBe(ErrorCode.InvalidEnvelope);
    const wrongShapes = [JSON.stringify({ correlation_id: `${longest}c` }), JSON.stringify({ correlation_id: "" }), JSON.stringify({ correlation_id: 5 }), "{}"];
    const inbox = raw.subscribe("readers.lookups");
    for (const junk of [...NOT_OBJECTS, ...wrongShapes]) raw.publish(subjects.recover("echo"), bytes(junk), { reply: "readers.lookups" });
    const found = await raw.request(subjects.recover("echo"), bytes(JSON.stringify({ correlation_id: longest })), { timeout: 10_000 });
    const recovered = decodeEnvelope(found.data);
    expect(recovered.ok && recovered.envelope.type === "prompt_response" && recovered.envelope.correlation_id).toBe(longest);
    await raw.flush();
    inbox.unsubscribe();
    expect(inbox.getProcessed()).toBe(0);
    expect(droppedOn("recover")).toEqual([...NOT_OBJECTS, ...wrongShapes].map(() => "not_a_lookup"));
  });
});

/**
 * The session event log (src/bus/session-events.ts, PROTOCOL.md §19.3) on a real nats-server, fed
 * what anyone allowed to publish on a session stream's subject may send: JSON that is not an object
 * (`null`, an array, a number), text that is not JSON, an object that is neither an event nor a call
 * record, a call record whose correlation id would not fit an envelope (PROTOCOL.md §19.4: the one
 * rule of src/protocol, 1-256 characters). Reading the stream and following it skip all of it and
 * keep the events and calls around it. And a follow whose next events the stream discarded before it
 * read them (it keeps the last 100 of a subject) ends saying so, rather than going on past the gap.
 * A box from one gateway's caller key to another's opens on the GET stream only, for that other.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  connectBus,
  EventsDiscardedError,
  GET_STREAM,
  openSessionEvents,
  SESSION_EVENTS_PER_STREAM,
  type Bus,
  type SessionEventLog,
  type StoredEvent,
} from "../../src/bus/index.js";
import { subjects } from "../../src/protocol/index.js";
import { CurveKey, MessageSecurity } from "../../src/security/index.js";
import { silentLogger } from "../../src/util/logger.js";
import { connectRawNats, startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually } from "../support/processes.js";

const CALL = { request_id: 7, service: "files", correlation_id: "c-1", delivery: "direct", deadline: "2026-12-07T12:00:00.000Z" };
const LONGEST_ID_CALL = { ...CALL, request_id: 8, correlation_id: "c".repeat(256) };
const JUNK = [
  "null",
  "[1,2]",
  "42",
  '"text"',
  "not json",
  '{"neither":"event nor call"}',
  JSON.stringify({ call: { ...CALL, correlation_id: "c".repeat(257) } }),
  JSON.stringify({ call: { ...CALL, correlation_id: "" } }),
];

let nats: EmbeddedNats;
let bus: Bus;
let raw: NatsConnection;
let log: SessionEventLog;

beforeAll(async () => {
  nats = await startTestNats();
  bus = await connectBus({ servers: nats.url, name: "events", logger: silentLogger() });
  log = await openSessionEvents(bus);
  raw = await connectRawNats(nats.url);
});

afterAll(async () => {
  await raw?.drain();
  await bus?.drain();
  await nats?.stop();
});

/** Publishes junk between two events and a call record on stream `stream` of session `session`, then waits until the stream holds them all. */
async function publishAmongJunk(session: string, stream: string): Promise<void> {
  const subject = subjects.sessionEvents(session, stream);
  raw.publish(subject, JSON.stringify({ id: "e1", message: { jsonrpc: "2.0", method: "first" } }));
  for (const junk of JUNK) raw.publish(subject, junk);
  raw.publish(subject, JSON.stringify({ call: CALL }));
  raw.publish(subject, JSON.stringify({ call: LONGEST_ID_CALL }));
  raw.publish(subject, JSON.stringify({ id: "e2", message: { jsonrpc: "2.0", method: "second" } }));
  await raw.flush();
}

describe("the session event log, fed what is not an event", () => {
  it("reads a stream's events and calls past it", async () => {
    await publishAmongJunk("s-read", "st");
    const read = await eventually(async () => {
      const logged = await log.readStream("s-read", "st");
      return logged.events.length === 2 ? logged : undefined;
    }, 10_000);
    expect(read.events.map((event) => event.id)).toEqual(["e1", "e2"]);
    expect(read.calls).toEqual([
      { requestId: 7, service: "files", correlationId: "c-1", delivery: "direct", deadline: Date.parse(CALL.deadline) },
      { requestId: 8, service: "files", correlationId: "c".repeat(256), delivery: "direct", deadline: Date.parse(CALL.deadline) },
    ]);
  });

  it("follows a stream past it, each event once", async () => {
    const delivered: StoredEvent[] = [];
    const follow = await log.follow("s-follow", "st", "now", (event) => delivered.push(event));
    try {
      await publishAmongJunk("s-follow", "st");
      await eventually(() => delivered.length >= 2, 10_000);
      // A later event still arrives: the junk did not end or restart the follow.
      raw.publish(subjects.sessionEvents("s-follow", "st"), JSON.stringify({ id: "e3", message: {} }));
      await eventually(() => delivered.length >= 3, 10_000);
      expect(delivered.map((event) => event.id)).toEqual(["e1", "e2", "e3"]);
    } finally {
      follow.stop();
    }
  });
});

/** Stores `count` events (`e<from>` on) on stream `stream` of `session`, and waits until the stream holds the last one. */
async function store(session: string, stream: string, from: number, count: number): Promise<void> {
  const subject = subjects.sessionEvents(session, stream);
  for (let n = from; n < from + count; n++) raw.publish(subject, JSON.stringify({ id: `e${n}`, message: {} }));
  await raw.flush();
  const lastId = `e${from + count - 1}`;
  await eventually(async () => (await log.readStream(session, stream)).events.at(-1)?.id === lastId, 10_000);
}

/** Follows `stream` of `session` after sequence `afterSeq` until it ends (its result) or has delivered `count` events ("running"). */
async function followAfter(session: string, stream: string, afterSeq: number, count: number): Promise<{ delivered: string[]; ended: Error | undefined | "running" }> {
  const delivered: string[] = [];
  const follow = await log.follow(session, stream, { afterSeq }, (event) => delivered.push(event.id));
  const running = eventually(() => delivered.length >= count, 10_000).then(() => "running" as const);
  const ended = await Promise.race([follow.ended, running]);
  follow.stop();
  return { delivered, ended };
}

/** Stores `e0` and returns its sequence. */
async function storeFirst(session: string, stream: string): Promise<number> {
  await store(session, stream, 0, 1);
  return (await log.readStream(session, stream)).events[0]!.seq!;
}

describe("a follow of a stream whose events the stream discards (it keeps the last 100 of each)", () => {
  it("ends with EventsDiscardedError when events after its last one were discarded unread", async () => {
    const firstSeq = await storeFirst("s-gone", "st");
    // 150 more stored before the follow reads any: e1..e50 are discarded.
    await store("s-gone", "st", 1, SESSION_EVENTS_PER_STREAM + 50);
    // Without the check, the follow goes on from e51 as if nothing were missing, and never ends.
    const { delivered, ended } = await followAfter("s-gone", "st", firstSeq, SESSION_EVENTS_PER_STREAM);
    expect(ended).toBeInstanceOf(EventsDiscardedError);
    expect(delivered).toEqual([]);
  });

  it("goes on when every event after its last one is still kept", async () => {
    const firstSeq = await storeFirst("s-kept", "st");
    await store("s-kept", "st", 1, SESSION_EVENTS_PER_STREAM - 1);
    const { delivered, ended } = await followAfter("s-kept", "st", firstSeq, SESSION_EVENTS_PER_STREAM - 1);
    expect(ended).toBe("running");
    expect(delivered).toEqual(Array.from({ length: SESSION_EVENTS_PER_STREAM - 1 }, (_, i) => `e${i + 1}`));
  });
});

describe("sealed events from one gateway's key to another's (PROTOCOL.md §19.3)", () => {
  const keyA = CurveKey.generate();
  const keyB = CurveKey.generate();
  const securityA = new MessageSecurity({ callerSealKey: keyA });
  const securityB = new MessageSecurity({ callerSealKey: keyB });
  const message = { jsonrpc: "2.0", method: "notifications/message", params: { data: "secret" } };

  it("open on the GET stream for the gateway they are sealed to, and for no other", async () => {
    const [logA, logB] = await Promise.all([openSessionEvents(bus.withCodec(securityA)), openSessionEvents(bus.withCodec(securityB))]);
    logA.append("s-peer", GET_STREAM, { id: "g1", message }, { seal: true, sealTo: keyB.publicKey });
    const readB = await eventually(async () => (await logB.readStream("s-peer", GET_STREAM)).events.at(0), 10_000);
    expect(readB).toMatchObject({ id: "g1", message });
    expect((await logA.readStream("s-peer", GET_STREAM)).events[0]?.locked).toBeDefined();
  });

  it("stay locked on a call's stream, where only a box from and to the reader's own key opens", async () => {
    const logB = await openSessionEvents(bus.withCodec(securityB));
    raw.publish(subjects.sessionEvents("s-peer", "st"), JSON.stringify({ id: "c1", sealed: securityA.sealFromSelf({ message }, keyB.publicKey) }));
    const readB = await eventually(async () => (await logB.readStream("s-peer", "st")).events.at(0), 10_000);
    expect(readB.message).toBeUndefined();
    expect(readB.locked).toMatch(/sealed by/);
  });
});

/**
 * Fuzz target: messages published on the subjects executors, agents and gateways listen on, with and
 * without a reply subject: service requests, per-instance requests, cancellations, heartbeats,
 * registry entries (announcements) and context topics.
 *
 * A request to a service (or an instance) with a reply subject must be answered within
 * ANSWER_WITHIN_MS: a prompt_response, an error_notification, or NATS' no-responders status. Context
 * updates and registry entries go to JetStream, which acknowledges them when there is a reply
 * subject. Everything else is never answered: an invalid one must be counted where it is dropped,
 * which the run checks at the end against the oracle below (each message's validity, judged with the
 * protocol module's own functions).
 */
import { performance } from "node:perf_hooks";
import { createInbox, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import fc, { type Arbitrary } from "fast-check";
import {
  CANCEL_METHOD,
  decodeEnvelope,
  DEFAULT_MAX_ENVELOPE_BYTES,
  parseHeartbeatSubject,
  parseRegistryKey,
  REGISTRY_BUCKET,
  SUBJECT_ROOT,
  subjects,
  topicOfSubject,
} from "../../src/protocol/index.js";
import { anyJson, draw, envelopeOf, mutated, rawBytes, strictEnvelope, type FuzzInput, type FuzzWorld } from "./arbitraries.js";
import { forEachConcurrently } from "./outcomes.js";
import { preview, Tally } from "./tally.js";

export type BusSubjectKind = "request" | "instance" | "cancel" | "heartbeat" | "context" | "registry";

interface BusCase extends FuzzInput {
  kind: BusSubjectKind;
  subject: string;
  reply: boolean;
}

/** Who listens where, as the harness started them. */
export interface BusListeners {
  executor: { service: string; instance: string };
  agent: { service: string; instance: string };
}

/**
 * What the components must have counted or reported, per the oracle: each gateway's drops of invalid
 * heartbeats, context updates and registry entries; the executor's and the agent's drops of invalid
 * cancellations (and the agent's of context updates); their error reports on dmcp.v1.err.<instance>.
 */
export const EXPECTED = ["gatewayHeartbeat", "gatewayContext", "gatewayRegistry", "executorCancel", "agentCancel", "agentContext", "executorReports", "agentReports"] as const;
export type BusExpectations = Record<(typeof EXPECTED)[number], number>;

const KV_PREFIX = `$KV.${REGISTRY_BUCKET}.`;
/**
 * Registry keys of made-up instances, valid and not; SEQ (in the key and in the announcement) becomes a
 * number unique to the message. A bucket keeps one value per key, and a value overwritten before a
 * watcher got it is never delivered: with unique keys every entry reaches the gateways, so that their
 * drop counts can be exact. The heartbeat subjects below name other instances, so that a heartbeat
 * never makes a gateway read one of these entries (and count it) a second time.
 */
const SEQ = "SEQ";
const REGISTRY_SERVICE = "kvsvc";
const REGISTRY_INSTANCE = `kv-${SEQ}`;
const BAD_REGISTRY_KEYS = [`onlyone${SEQ}`, `a.b.c${SEQ}`, `bad$${SEQ}.x`, `sp\u00e4ce${SEQ}.x`];
/** Heartbeat subjects no instance could have (the subject builder refuses them, so they are written by hand). */
const BAD_HEARTBEAT_SUBJECTS = ["only", "a.b.c", "a$b.c", "\u00fc.x"].map((tokens) => `${SUBJECT_ROOT}.hb.${tokens}`);
const REPLY_TIMEOUT_MS = 20_000;
const CONCURRENCY = 32;

function busCase(world: FuzzWorld, listeners: BusListeners): Arbitrary<BusCase> {
  const { executor, agent } = listeners;
  const payload = (types: string[], heartbeat?: "heartbeat" | "announce", about = world) =>
    fc.oneof(
      { weight: 12, arbitrary: mutated("envelope", envelopeOf(about, { types, ...(heartbeat ? { heartbeat } : {}) })) },
      { weight: 6, arbitrary: strictEnvelope(about, { types, ...(heartbeat ? { heartbeat } : {}) }) },
      { weight: 2, arbitrary: mutated("envelope", envelopeOf(world)) },
      { weight: 1, arbitrary: rawBytes },
      { weight: 1, arbitrary: anyJson },
    );
  const topics = [...world.topics, "fuzz.x.y"];
  const badTopic = Array.from({ length: 17 }, (_, i) => `t${i}`).join(".");
  const cases: { kind: BusSubjectKind; subject: Arbitrary<string>; types: string[]; heartbeat?: "heartbeat" | "announce"; world?: FuzzWorld }[] = [
    { kind: "request", subject: fc.constantFrom(subjects.request(executor.service), subjects.request(agent.service), subjects.request("nosuch")), types: ["prompt_request"] },
    {
      kind: "instance",
      subject: fc.constantFrom(
        subjects.instanceRequest(executor.service, executor.instance),
        subjects.instanceRequest(agent.service, agent.instance),
        subjects.instanceRequest("nosuch", "nosuch-1"),
      ),
      types: ["prompt_request"],
    },
    { kind: "cancel", subject: fc.constantFrom(subjects.cancel(executor.service), subjects.cancel(agent.service)), types: ["context_update"] },
    {
      kind: "heartbeat",
      subject: fc.oneof(
        fc.constantFrom(subjects.heartbeat("hbsvc", "hb-1"), subjects.heartbeat("hbsvc", "hb-2"), subjects.heartbeat(executor.service, executor.instance)),
        fc.constantFrom(...BAD_HEARTBEAT_SUBJECTS),
      ),
      types: ["agent_heartbeat"],
      heartbeat: "heartbeat",
      // Heartbeats mostly for an instance their subject names (the rest are ignored for naming another).
      world: { ...world, services: ["hbsvc"], instances: ["hb-1", "hb-2"] },
    },
    // Made-up topics are written by hand: the subject builder refuses them.
    {
      kind: "context",
      subject: fc.oneof(
        fc.constantFrom(...topics).map((topic) => subjects.context(topic)),
        fc.constantFrom("bad$.t", badTopic).map((topic) => `${SUBJECT_ROOT}.ctx.${topic}`),
      ),
      types: ["context_update"],
    },
    {
      kind: "registry",
      subject: fc.oneof(fc.constant(`${REGISTRY_SERVICE}.${REGISTRY_INSTANCE}`), fc.constantFrom(...BAD_REGISTRY_KEYS)).map((key) => `${KV_PREFIX}${key}`),
      types: ["agent_heartbeat"],
      heartbeat: "announce",
      // Announcements mostly for the instance their key names (the rest are refused for naming another).
      world: { ...world, services: [REGISTRY_SERVICE], instances: [REGISTRY_INSTANCE] },
    },
  ];
  return fc.oneof(
    ...cases.map(({ kind, subject, types, heartbeat, world: about }) =>
      fc.tuple(subject, payload(types, heartbeat, about), fc.boolean()).map(([s, input, reply]) => ({
        ...input,
        kind,
        subject: s,
        // Nothing listens on the made-up service and instance: only a reply (no responders) tells what became of them.
        reply: reply || s === subjects.request("nosuch") || s === subjects.instanceRequest("nosuch", "nosuch-1"),
      })),
    ),
  );
}

export interface BusFuzzResult {
  tally: Tally;
  expected: BusExpectations;
}

export async function fuzzBus(nc: NatsConnection, world: FuzzWorld, listeners: BusListeners, count: number, seed: number): Promise<BusFuzzResult> {
  const tally = new Tally("bus");
  const expected = Object.fromEntries(EXPECTED.map((name) => [name, 0])) as BusExpectations;
  const inbox = createInbox();
  const waiting = new Map<string, { kind: BusSubjectKind; settle: (outcome: string | Error) => void }>();
  const replies = nc.subscribe(`${inbox}.*`, {
    callback: (err, msg) => {
      if (err) return;
      const wait = waiting.get(msg.subject);
      if (!wait) return;
      const outcome = finalAnswer(wait.kind, msg);
      if (outcome !== undefined) wait.settle(outcome);
    },
  });
  let sequence = 0;
  try {
    await forEachConcurrently(draw(busCase(world, listeners), count, seed), CONCURRENCY, async (generated) => {
      const one = tally.begin();
      const n = ++sequence;
      const input = {
        ...generated,
        subject: generated.subject.replace(SEQ, String(n)),
        bytes: generated.kind === "registry" ? replaceAscii(generated.bytes, SEQ, String(n)) : generated.bytes,
      };
      const judged = judge(input, listeners);
      const reply = input.reply ? `${inbox}.${n}` : undefined;
      const answered = reply && judged.answered ? awaitReply(waiting, reply, input.kind) : undefined;
      const sent = performance.now();
      try {
        nc.publish(input.subject, input.bytes, reply ? { reply } : undefined);
      } catch (err) {
        if (reply) waiting.get(reply)?.settle("");
        one.record("answered", `refused by the NATS client: ${(err as Error).message.slice(0, 60)}`);
        return;
      }
      for (const name of judged.counted) expected[name]++;
      if (!answered) {
        one.record(judged.class, `${input.kind}: ${judged.kind}`);
        if (n % 200 === 0) await nc.flush();
        return;
      }
      const outcome = await answered;
      tally.answeredAfter(outcome instanceof Error ? Number.POSITIVE_INFINITY : performance.now() - sent, () => `${input.subject} ${preview(input.bytes)}`);
      if (outcome instanceof Error) one.fail(`${input.kind}: ${outcome.message}`, `${input.subject} ${preview(input.bytes)}`);
      else one.record("answered", `${input.kind}: ${outcome}`);
    });
    await nc.flush();
  } finally {
    replies.unsubscribe();
  }
  await forgetMadeUpInstances(nc, listeners);
  return { tally, expected };
}

/** Where a message goes and what must become of it, by the oracle, with what must be counted for it. */
function judge(input: BusCase, listeners: BusListeners): { answered: boolean; class: "dropped" | "consumed"; kind: string; counted: (keyof BusExpectations)[] } {
  const decoded = decodeEnvelope(input.bytes, input.kind === "registry" ? Number.POSITIVE_INFINITY : DEFAULT_MAX_ENVELOPE_BYTES);
  const envelope = decoded.ok ? decoded.envelope : undefined;
  // A message nobody answers: consumed when valid, else dropped and counted where `counted` says.
  const unanswered = (ok: boolean, what: string, counted: (keyof BusExpectations)[]) =>
    ok
      ? { answered: false, class: "consumed" as const, kind: `valid ${what}`, counted: [] }
      : { answered: false, class: "dropped" as const, kind: `invalid ${what} (counted)`, counted };
  switch (input.kind) {
    case "request":
    case "instance": {
      const servedBy = (who: { service: string; instance: string }) =>
        input.subject === subjects.request(who.service) || input.subject === subjects.instanceRequest(who.service, who.instance);
      const target = servedBy(listeners.agent) ? "agent" : servedBy(listeners.executor) ? "executor" : undefined;
      const ok = envelope?.type === "prompt_request";
      // An invalid request is reported on the error subject, answered or not.
      const counted: (keyof BusExpectations)[] = target && !ok ? [target === "agent" ? "agentReports" : "executorReports"] : [];
      if (input.reply) return { answered: true, class: "consumed", kind: "", counted };
      return ok
        ? { answered: false, class: "consumed", kind: "valid request, served without a reply subject", counted }
        : { answered: false, class: "dropped", kind: "invalid request, reported on dmcp.v1.err (counted)", counted };
    }
    case "cancel": {
      const ok = envelope?.type === "context_update" && envelope.payload.method === CANCEL_METHOD;
      return unanswered(ok, "cancellation (of no running call)", [input.subject === subjects.cancel(listeners.agent.service) ? "agentCancel" : "executorCancel"]);
    }
    case "heartbeat": {
      // A heartbeat speaks only for the instance its subject names (PROTOCOL.md §6.2).
      const named = parseHeartbeatSubject(input.subject);
      const payload = envelope?.type === "agent_heartbeat" && envelope.payload.kind === "heartbeat" ? envelope.payload : undefined;
      const ok = named !== undefined && payload?.service === named.service && payload.instance === named.instance;
      return unanswered(ok, "heartbeat", ["gatewayHeartbeat"]);
    }
    case "context": {
      const topic = topicOfSubject(input.subject);
      const ok = topic !== undefined && envelope?.type === "context_update" && (envelope.payload.topic === undefined || envelope.payload.topic === topic);
      // JetStream stores every message on a context subject and acknowledges it to a reply subject.
      return { ...unanswered(ok, "context update", ["gatewayContext", "agentContext", "agentReports"]), answered: input.reply };
    }
    case "registry": {
      // An announcement speaks only for the instance its registry key names.
      const key = parseRegistryKey(input.subject.slice(KV_PREFIX.length));
      const payload = envelope?.type === "agent_heartbeat" && envelope.payload.kind === "announce" ? envelope.payload : undefined;
      const ok = key !== undefined && payload?.service === key.service && payload.instance === key.instance;
      return { ...unanswered(ok, "registry entry", ["gatewayRegistry"]), answered: input.reply };
    }
  }
}

function awaitReply(waiting: Map<string, { kind: BusSubjectKind; settle: (outcome: string | Error) => void }>, reply: string, kind: BusSubjectKind): Promise<string | Error> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => settle(new Error(`no answer within ${REPLY_TIMEOUT_MS} ms`)), REPLY_TIMEOUT_MS);
    const settle = (outcome: string | Error) => {
      clearTimeout(timer);
      waiting.delete(reply);
      resolve(outcome);
    };
    waiting.set(reply, { kind, settle });
  });
}

/** The final answer on a reply subject, or undefined for what comes before it (receipts, progress). */
function finalAnswer(kind: BusSubjectKind, msg: Msg): string | Error | undefined {
  if (msg.headers?.hasError && msg.headers.code === 503) return "no responders";
  if (kind === "context" || kind === "registry") {
    try {
      const ack = JSON.parse(new TextDecoder().decode(msg.data)) as { stream?: string; error?: { err_code?: number; description?: string } };
      if (ack.error) return `JetStream refused it (${ack.error.err_code ?? "?"} ${ack.error.description ?? ""})`;
      return ack.stream ? `stored in ${ack.stream}` : new Error("a JetStream answer without stream or error");
    } catch {
      return new Error("a JetStream answer that is not JSON");
    }
  }
  const decoded = decodeEnvelope(msg.data, Number.POSITIVE_INFINITY);
  if (!decoded.ok) return new Error(`an answer that is not a valid envelope: ${decoded.error.message}`);
  const envelope = decoded.envelope;
  if (envelope.type === "context_update") return undefined;
  if (envelope.type === "prompt_response") return "prompt_response";
  if (envelope.type === "error_notification") return `error_notification ${envelope.payload.code}`;
  return new Error(`an answer of type ${envelope.type}`);
}

/** `bytes` with every occurrence of the ASCII text `from` replaced by `to` (other bytes untouched, valid UTF-8 or not). */
function replaceAscii(bytes: Uint8Array, from: string, to: string): Uint8Array {
  const needle = Buffer.from(from);
  const parts: Buffer[] = [];
  const source = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  for (let hit = source.indexOf(needle, at); hit !== -1; hit = source.indexOf(needle, at)) {
    parts.push(source.subarray(at, hit), Buffer.from(to));
    at = hit + needle.length;
  }
  parts.push(source.subarray(at));
  return new Uint8Array(Buffer.concat(parts));
}

/** Deletes the registry entries the fuzz made, so that the gateways forget those instances. */
async function forgetMadeUpInstances(nc: NatsConnection, listeners: BusListeners): Promise<void> {
  const kv = await new Kvm(nc).open(REGISTRY_BUCKET);
  const real = new Set([`${listeners.executor.service}.${listeners.executor.instance}`, `${listeners.agent.service}.${listeners.agent.instance}`]);
  const keys: string[] = [];
  for await (const key of await kv.keys()) if (!real.has(key)) keys.push(key);
  await forEachConcurrently(keys, 16, async (key) => {
    await kv.delete(key).catch(() => undefined);
  });
}

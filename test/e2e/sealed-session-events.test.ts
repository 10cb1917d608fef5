/**
 * The SSE events of sealed calls on the bus (PROTOCOL.md §19.3, §14.3): a gateway publishes the events
 * of a sealed call's stream sealed to its own caller key, so that neither the broker nor a reader of
 * `dmcp.v1.sse.>` (live, or in the DMCP_SESSION_EVENTS stream) sees the answer; a gateway sharing the
 * key (`--caller-seal-key`) resumes the stream as before, one with another key answers the call with
 * DECRYPTION_FAILED and ends the stream. Real nats-server, sealed executor (`dmcp wrap --seal-key`),
 * three gateways, a raw NATS subscriber and JetStream reader. And `dmcp up`'s config key for the
 * caller seal key, `security.callerSealKey`.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/cli/config.js";
import { securityFromConfig } from "../../src/cli/security.js";
import { CurveKey, MessageSecurity } from "../../src/security/index.js";
import { connectRawNats, startTestNats, type EmbeddedNats } from "../support/nats.js";
import { DMCP_BIN, eventually, startGatewayHttp, wrapFixtureStdio, type Child } from "../support/processes.js";
import { openSession, parseEvents } from "../support/sse.js";

type Gateway = Child & { url: string };

/** What no byte on the bus may hold: it is in the tool's answer only. */
const MARKER = "MARKER-7f3c-sealed-answer-text";

let nats: EmbeddedNats;
let dir: string;
let executor: Child;
/** Two gateways sharing a caller seal key, and one with a key of its own. */
let shared: Gateway[] = [];
let other: Gateway;
let raw: NatsConnection;
let tap: Subscription;
const onTheBus: string[] = [];

beforeAll(async () => {
  nats = await startTestNats();
  dir = mkdtempSync(join(tmpdir(), "dmcp-sealed-events-"));
  const keygen = (name: string) => execFileSync(process.execPath, [DMCP_BIN, "keygen", "--curve", "--out", join(dir, name)], { encoding: "utf8" }).trim();
  const servicePublic = keygen("service.xkey");
  keygen("gateways.xkey");
  executor = await wrapFixtureStdio(nats.url, "vault", ["--seal-key", join(dir, "service.xkey")]);
  const sealing = ["--seal-to", `vault=${servicePublic}`];
  // The first creates the streams; the others then start together.
  const sharing = [...sealing, "--caller-seal-key", join(dir, "gateways.xkey")];
  const first = await startGatewayHttp(nats.url, sharing);
  const [second, third] = await Promise.all([startGatewayHttp(nats.url, sharing), startGatewayHttp(nats.url, sealing)]);
  shared = [first, second];
  other = third;
  raw = await connectRawNats(nats.url);
  tap = raw.subscribe("dmcp.v1.sse.>");
  void (async () => {
    for await (const msg of tap) onTheBus.push(msg.string());
  })();
}, 150_000);

afterAll(async () => {
  tap?.unsubscribe();
  await raw?.close();
  await Promise.allSettled([...shared, other, executor].filter(Boolean).map((child) => child.stop()));
  await nats?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Every message the DMCP_SESSION_EVENTS stream keeps for session `session`. */
async function storedFor(session: string): Promise<string[]> {
  const js = jetstream(raw);
  const consumer = await js.consumers.get("DMCP_SESSION_EVENTS", { filter_subjects: `dmcp.v1.sse.${session}.>` });
  const pending = (await consumer.info()).num_pending;
  const stored: string[] = [];
  if (pending === 0) return stored;
  for await (const msg of await consumer.fetch({ max_messages: pending, expires: 5000 })) {
    stored.push(msg.string());
    if (msg.info.pending === 0) break;
  }
  return stored;
}

/** Sends an `echo` of the marker with a progress token (so its answer comes on a resumable SSE stream) on the first gateway: its events. */
async function sealedCall(headers: () => Record<string, string>, id: number): Promise<ReturnType<typeof parseEvents>> {
  const call = { jsonrpc: "2.0", id, method: "tools/call", params: { name: "echo", arguments: { text: `${MARKER}-${id}` }, _meta: { progressToken: `t${id}` } } };
  const response = await fetch(shared[0]!.url, { method: "POST", headers: headers(), body: JSON.stringify(call) });
  expect(response.headers.get("content-type")).toContain("text/event-stream");
  return parseEvents(await response.text());
}

function resume(url: string, headers: () => Record<string, string>, lastEventId: string): Promise<Response> {
  return fetch(url, { method: "GET", headers: { ...headers(), accept: "text/event-stream", "last-event-id": lastEventId } });
}

describe("the SSE events of a sealed call on the bus", () => {
  it("never hold the answer in clear, live or stored, while the client gets it", async () => {
    const headers = await openSession(shared[0]!.url, undefined, '"echo"');
    const session = headers()["mcp-session-id"]!;
    const events = await sealedCall(headers, 2);
    const answer = events.find((event) => event.data.includes('"result"'));
    expect(JSON.parse(answer!.data)).toMatchObject({ id: 2, result: { content: [{ text: `${MARKER}-2` }] } });

    // The call's stream on the bus: its record names the key its events are sealed to, its answer is sealed.
    const stored = await eventually(async () => {
      const all = await storedFor(session);
      return all.some((message) => message.includes('"sealed"')) ? all : undefined;
    }, 10_000);
    const record = stored.map((message) => JSON.parse(message) as { call?: { sealed_to?: string } }).find((message) => message.call);
    expect(record?.call?.sealed_to).toMatch(/^X[A-Z2-7]{55}$/);
    const live = await eventually(() => (onTheBus.some((message) => message.includes(answer!.id!)) ? onTheBus.slice() : undefined), 10_000);
    for (const bytes of [...stored, ...live]) expect(bytes).not.toContain(MARKER);
    expect(stored.some((message) => message.includes(answer!.id!) && message.includes('"sealed"'))).toBe(true);
  });

  it("are read on a gateway that shares the caller seal key: a resumption there replays the answer", async () => {
    const headers = await openSession(shared[0]!.url, undefined, '"echo"');
    const events = await sealedCall(headers, 3);
    const priming = events[0]!;
    // The session is taken up by the second gateway on this request.
    const resumed = await eventually(async () => {
      const response = await resume(shared[1]!.url, headers, priming.id!);
      const text = await response.text();
      return text.includes('"result"') ? { status: response.status, events: parseEvents(text) } : undefined;
    }, 10_000);
    expect(resumed.status).toBe(200);
    const answer = resumed.events.find((event) => event.data.includes('"result"'));
    expect(JSON.parse(answer!.data)).toMatchObject({ id: 3, result: { content: [{ text: `${MARKER}-3` }] } });
    expect(answer!.id).toBe(events.find((event) => event.data.includes('"result"'))!.id);
  });

  it("cannot be read on a gateway with another key: the resumption answers the call with DECRYPTION_FAILED and ends", async () => {
    const headers = await openSession(shared[0]!.url, undefined, '"echo"');
    const events = await sealedCall(headers, 4);
    // Once the stream holds the answer (sealed), a gateway with its own key resumes it.
    await eventually(async () => (await storedFor(headers()["mcp-session-id"]!)).some((message) => message.includes('"sealed"')), 10_000);
    const response = await resume(other.url, headers, events[0]!.id!);
    expect(response.status).toBe(200);
    // The stream ends (text() settles): the client is not left waiting.
    const got = parseEvents(await response.text());
    expect(got).toHaveLength(1);
    expect(got[0]!.id).toBeUndefined();
    const error = JSON.parse(got[0]!.data) as { id: number; error: { code: number; message: string; data: Record<string, unknown> } };
    expect(error.id).toBe(4);
    expect(error.error.code).toBe(-32044);
    expect(error.error.message).toMatch(/cannot be read on this gateway: the events of call \S+ to "vault" are sealed to X[A-Z2-7]{55}/);
    expect(error.error.data).toMatchObject({ dmcp_code: "DECRYPTION_FAILED", service: "vault", sealed_to: expect.stringMatching(/^X/) });
    expect(response.text).toBeDefined();
    expect(JSON.stringify(got)).not.toContain(MARKER);
  });
});

describe("a call's stream followed live that turns out sealed to another key", () => {
  it("ends at the first event it cannot open, answering the call with DECRYPTION_FAILED", async () => {
    const headers = await openSession(other.url, undefined, '"echo"');
    const session = headers()["mcp-session-id"]!;
    // A stream as a gateway that records no key (an older one) would leave it: a priming event and a call record.
    const subject = `dmcp.v1.sse.${session}.s1`;
    const deadline = new Date(Date.now() + 60_000).toISOString();
    raw.publish(subject, JSON.stringify({ id: "0a0b0c0d-1/s1:1", message: {} }));
    raw.publish(subject, JSON.stringify({ call: { request_id: 9, service: "vault", correlation_id: "c-9", delivery: "direct", deadline } }));
    await raw.flush();
    const response = await eventually(async () => {
      const attempt = await resume(other.url, headers, "0a0b0c0d-1/s1:1");
      if (attempt.status === 200) return attempt;
      await attempt.body?.cancel();
      return undefined;
    }, 10_000);
    // Then an event sealed to a key the gateway does not hold.
    const sealer = new MessageSecurity({ callerSealKey: CurveKey.generate() });
    raw.publish(subject, JSON.stringify({ id: "0a0b0c0d-1/s1:2", sealed: sealer.sealToSelf({ message: { jsonrpc: "2.0", id: 9, result: { text: MARKER } } }) }));
    await raw.flush();
    const got = parseEvents(await response.text());
    const error = JSON.parse(got.at(-1)!.data) as { id: number; error: { code: number; message: string } };
    expect(error).toMatchObject({ id: 9, error: { code: -32044 } });
    expect(error.error.message).toMatch(/cannot be read on this gateway: cannot open the sealed payload: it is sealed to X[A-Z2-7]{55}, a key this receiver does not hold/);
    expect(JSON.stringify(got)).not.toContain(MARKER);
  });
});

describe("the caller seal key in dmcp up's config file (security.callerSealKey)", () => {
  it("is read relative to the config file and becomes the key requests and events are sealed with", () => {
    const publicKey = execFileSync(process.execPath, [DMCP_BIN, "keygen", "--curve", "--out", join(dir, "up-caller.xkey")], { encoding: "utf8" }).trim();
    const servicePublic = execFileSync(process.execPath, [DMCP_BIN, "keygen", "--public", join(dir, "service.xkey")], { encoding: "utf8" }).trim();
    const config = parseConfig({ security: { callerSealKey: "up-caller.xkey", sealTo: { vault: servicePublic } } });
    const security = new MessageSecurity(securityFromConfig(config.security, dir));
    expect(security.requestSeal("vault")).toEqual({ from: publicKey, to: servicePublic });
    expect(security.isCallerKey(publicKey)).toBe(true);
    // A gateway given the same file opens what this one sealed to itself; one with a key of its own does not.
    const sealed = security.sealToSelf({ message: { text: MARKER } });
    expect(new MessageSecurity(securityFromConfig(config.security, dir)).openFromSelf(sealed)).toEqual({ message: { text: MARKER } });
    const stranger = new MessageSecurity({ sealTo: { vault: servicePublic } });
    stranger.requestSeal("vault");
    expect(() => stranger.openFromSelf(sealed)).toThrow(/a key this receiver does not hold/);
  });

  it("is refused by dmcp up, naming the key, when the file is missing or holds no curve seed", () => {
    execFileSync(process.execPath, [DMCP_BIN, "keygen", "--out", join(dir, "signing.seed")]);
    for (const [file, message] of [
      ["missing.xkey", /security\.callerSealKey: cannot read key file/],
      ["signing.seed", /security\.callerSealKey: \S+signing\.seed holds no curve seed \(SX…, not SU…\)/],
    ] as const) {
      const path = join(dir, `up-${file}.json`);
      writeFileSync(path, JSON.stringify({ nats: { url: "nats://127.0.0.1:9" }, gateway: { http: false }, security: { callerSealKey: file }, servers: {} }));
      const result = spawnSync(process.execPath, [DMCP_BIN, "up", "--config", path], { encoding: "utf8" });
      expect(result.status, file).toBe(2);
      expect(result.stderr).toMatch(message);
    }
    expect(() => parseConfig({ security: { callerSealKey: 7 } })).toThrow(/security\.callerSealKey/);
  });
});

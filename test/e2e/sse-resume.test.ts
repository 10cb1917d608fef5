/**
 * Resumable SSE streams on the gateway's HTTP inbound for 2025-11-25 sessions (SEP-1699): every
 * POST stream starts with a priming event (an id, no data) and a retry hint, each message has an
 * event id, and a GET with `Last-Event-ID` replays what followed. Real gateway, executor, nats-server.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Child } from "../support/processes.js";
import { startWorld, type World } from "../support/world.js";
import { openSession, parseEvents, readStreamUntil, type SseEvent } from "../support/sse.js";

/** A nats-server, the fixture wrapped as `legacy`, a gateway with `gatewayFlags`, and an open session on it, for the describe block that calls it. */
function gatewayWithSession(gatewayFlags: string[] = []) {
  let world: World;
  let gateway: Child & { url: string };
  let headers: () => Record<string, string>;
  beforeAll(async () => {
    world = await startWorld({ services: { legacy: [] }, gateway: gatewayFlags, client: false });
    gateway = world.gateway;
    headers = await openSession(gateway.url);
  }, 60_000);
  afterAll(() => world?.dispose());
  return {
    get url() {
      return gateway.url;
    },
    headers: () => headers(),
  };
}

describe("resumable SSE streams (2025-11-25 sessions over HTTP)", () => {
  const gateway = gatewayWithSession();
  const headers = () => gateway.headers();

  it("primes each POST stream with an event id and a retry hint, and replays it after Last-Event-ID", async () => {
    const call = { jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "progress", arguments: { steps: 2 }, _meta: { progressToken: "t" } } };
    const response = await fetch(gateway.url, { method: "POST", headers: headers(), body: JSON.stringify(call) });
    expect(response.headers.get("content-type")).toContain("text/event-stream");
    const events = parseEvents(await response.text());
    const [priming, ...messages] = events;
    expect(priming).toMatchObject({ data: "", retry: "1000" });
    expect(priming!.id).toBeTruthy();
    expect(messages.every((event) => event.id !== undefined)).toBe(true);
    expect(messages.map((event) => JSON.parse(event.data).method ?? "result")).toEqual(["notifications/progress", "notifications/progress", "result"]);

    // A client that lost the stream right after the priming event gets everything that followed.
    const resumed = await fetch(gateway.url, { method: "GET", headers: { ...headers(), accept: "text/event-stream", "last-event-id": priming!.id! } });
    expect(resumed.status).toBe(200);
    // The replay ends with the call's answer; the stream itself stays open for what may follow.
    const replayed = (await readStreamUntil(resumed, '"result"')).filter((event) => event.data !== "");
    expect(replayed.map((event) => event.id)).toEqual(messages.map((event) => event.id));
    expect(JSON.parse(replayed.at(-1)!.data)).toMatchObject({ id: 2, result: { content: expect.any(Array) } });
  });
});

describe("SSE polling of long calls (dmcp gateway --sse-poll)", () => {
  const gateway = gatewayWithSession(["--sse-poll", "200"]);
  const headers = () => gateway.headers();

  it("closes a long call's stream before the answer, and the client polling with Last-Event-ID gets the answer", async () => {
    const call = { jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "sleep", arguments: { ms: 1500 } } };
    const response = await fetch(gateway.url, { method: "POST", headers: headers(), body: JSON.stringify(call) });
    const first = parseEvents(await response.text());
    expect(first[0]).toMatchObject({ data: "", retry: "1000" });
    expect(first.some((event) => event.data.includes('"result"'))).toBe(false);
    // Poll as a client does: reconnect from the last event seen until the answer comes.
    let lastId = first.at(-1)!.id!;
    let answer: SseEvent | undefined;
    for (let polls = 0; !answer && polls < 50; polls++) {
      const resumed = await fetch(gateway.url, { method: "GET", headers: { ...headers(), accept: "text/event-stream", "last-event-id": lastId } });
      expect(resumed.status).toBe(200);
      const events = parseEvents(await resumed.text());
      lastId = events.filter((event) => event.id).at(-1)?.id ?? lastId;
      answer = events.find((event) => event.data.includes('"result"'));
    }
    expect(JSON.parse(answer!.data)).toMatchObject({ id: 7, result: { content: [{ text: "slept 1500" }] } });
  });
});

describe("replay stays within the session that owns the stream", () => {
  let world: World;
  let gateway: Child & { url: string };
  let dir: string;
  let alice: () => Record<string, string>;
  let aliceAgain: () => Record<string, string>;
  let bob: () => Record<string, string>;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dmcp-sse-replay-"));
    writeFileSync(join(dir, "tokens"), "alice:alice-token\nbob:bob-token\n");
    world = await startWorld({ services: { legacy: [] }, gateway: ["--auth-tokens", join(dir, "tokens")], client: false });
    gateway = world.gateway;
    [alice, aliceAgain, bob] = await Promise.all(["alice", "alice", "bob"].map((name) => openSession(gateway.url, `Bearer ${name}-token`)));
  }, 60_000);
  afterAll(async () => {
    await world?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  const resume = (headers: Record<string, string>, lastEventId: string) =>
    fetch(gateway.url, { method: "GET", headers: { ...headers, accept: "text/event-stream", "last-event-id": lastEventId } });

  /** Another identity's session, and another session of the same identity, get 400 and none of the stream. */
  async function expectRefusedElsewhere(lastEventId: string): Promise<void> {
    for (const other of [bob, aliceAgain]) {
      const response = await resume(other(), lastEventId);
      expect(response.status).toBe(400);
      expect(await response.json()).toEqual({
        jsonrpc: "2.0",
        id: null,
        error: { code: -32600, message: expect.stringContaining("Last-Event-ID names no stream of this session") },
      });
    }
  }

  it("replays a call's stream only to its own session", async () => {
    // A progress token asks for a stream (a plain call is answered with JSON: nothing to resume).
    const call = { jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "echo", arguments: { text: "alice's secret" }, _meta: { progressToken: "t" } } };
    const [priming] = parseEvents(await (await fetch(gateway.url, { method: "POST", headers: alice(), body: JSON.stringify(call) })).text());
    await expectRefusedElsewhere(priming!.id!);
    // The id was live all along: its own session gets the answer replayed.
    const own = await resume(alice(), priming!.id!);
    expect(own.status).toBe(200);
    const replayed = await readStreamUntil(own, '"result"');
    expect(replayed.at(-1)!.data).toContain("alice's secret");
  });

  it("replays a session's GET stream only to that session", async () => {
    const listening = await fetch(gateway.url, { method: "GET", headers: { ...alice(), accept: "text/event-stream" } });
    expect(listening.status).toBe(200);
    const notified = readStreamUntil(listening, "list_changed");
    const call = { jsonrpc: "2.0", id: 4, method: "tools/call", params: { name: "add_tool", arguments: { name: "fresh" } } };
    await (await fetch(gateway.url, { method: "POST", headers: alice(), body: JSON.stringify(call) })).text();
    const event = (await notified).find((e) => e.data.includes("list_changed"));
    expect(event!.id).toBeTruthy();
    await expectRefusedElsewhere(event!.id!);
  });
});

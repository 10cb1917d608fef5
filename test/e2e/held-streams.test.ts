/**
 * What the gateway keeps in memory of a call's resumable SSE stream once the call is over: nothing,
 * when its answer was written to the client's open connection (a gateway that kept every call's
 * stream grew with each slow call); a client that resumes such a stream anyway is served from the
 * bus's event log (PROTOCOL.md §19.3). A stream whose client was away at the answer stays for it.
 * Real gateway (in this process, to count its store), executor, nats-server.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serveHttp, type HttpGatewayServer } from "../../adapters/inbound/index.js";
import { connectBus, type Bus } from "../../src/bus/index.js";
import { Gateway } from "../../src/gateway/index.js";
import { silentLogger } from "../../src/util/logger.js";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { wrapFixtureStdio, type Child } from "../support/processes.js";
import { openSession, parseEvents, readStreamUntil } from "../support/sse.js";

/** Long enough that every call outlasts the 50 ms after which a plain call gets a resumable stream. */
const SLOW_MS = 1_000;

let nats: EmbeddedNats;
let executor: Child;
let bus: Bus;
let gateway: Gateway;
let http: HttpGatewayServer;
let headers: () => Record<string, string>;

beforeAll(async () => {
  nats = await startTestNats();
  executor = await wrapFixtureStdio(nats.url, "legacy");
  bus = await connectBus({ servers: nats.url, name: "held-streams-gateway", logger: silentLogger() });
  gateway = new Gateway({ bus, logger: silentLogger() });
  await gateway.start();
  http = await serveHttp(gateway, { port: 0, logger: silentLogger() });
  headers = await openSession(http.url);
}, 90_000);

afterAll(async () => {
  await http?.close();
  await gateway?.stop();
  await bus?.drain();
  await executor?.stop();
  await nats?.stop();
});

const sleepCall = (id: number, meta?: Record<string, unknown>) =>
  JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "sleep", arguments: { ms: SLOW_MS }, ...(meta ? { _meta: meta } : {}) } });

describe("the event store after calls with resumable streams", () => {
  it("holds no stream of plain calls answered on their open streams", async () => {
    const calls = Array.from({ length: 20 }, async (_, i) => {
      const response = await fetch(http.url, { method: "POST", headers: headers(), body: sleepCall(100 + i) });
      expect(response.headers.get("content-type")).toContain("text/event-stream");
      const events = parseEvents(await response.text());
      expect(JSON.parse(events.at(-1)!.data)).toMatchObject({ id: 100 + i, result: { content: [{ text: `slept ${SLOW_MS}` }] } });
      return events;
    });
    const streams = await Promise.all(calls);
    expect(streams.every((events) => events[0]!.id !== undefined && events[0]!.data === "")).toBe(true);
    expect(http.heldStreamCount()).toBe(0);
  });

  it("holds no stream of a call that asked for progress (the SDK's stream) once answered", async () => {
    const response = await fetch(http.url, { method: "POST", headers: headers(), body: sleepCall(200, { progressToken: "p" }) });
    const events = parseEvents(await response.text());
    expect(JSON.parse(events.at(-1)!.data)).toMatchObject({ id: 200, result: { content: [{ text: `slept ${SLOW_MS}` }] } });
    expect(http.heldStreamCount()).toBe(0);
  });

  it("still replays an answered stream to a client that resumes it, from the bus's log", async () => {
    const response = await fetch(http.url, { method: "POST", headers: headers(), body: sleepCall(300) });
    const [priming] = parseEvents(await response.text());
    expect(http.heldStreamCount()).toBe(0);
    const resumed = await fetch(http.url, { method: "GET", headers: { ...headers(), accept: "text/event-stream", "last-event-id": priming!.id! } });
    expect(resumed.status).toBe(200);
    const replayed = (await readStreamUntil(resumed, '"result"')).filter((event) => event.data !== "");
    expect(JSON.parse(replayed.at(-1)!.data)).toMatchObject({ id: 300, result: { content: [{ text: `slept ${SLOW_MS}` }] } });
  });

  it("keeps the stream of a call whose client left before the answer, and hands it the answer when it resumes", async () => {
    const away = new AbortController();
    const response = await fetch(http.url, { method: "POST", headers: headers(), body: sleepCall(400), signal: away.signal });
    const [priming] = await readStreamUntil(response, "\n\n");
    away.abort();
    expect(priming!.id).toBeTruthy();
    // Held while the call runs (it sleeps a second), and after it ended without a connection to write to.
    expect(http.heldStreamCount()).toBe(1);
    const resumed = await fetch(http.url, { method: "GET", headers: { ...headers(), accept: "text/event-stream", "last-event-id": priming!.id! } });
    expect(resumed.status).toBe(200);
    const replayed = (await readStreamUntil(resumed, '"result"')).filter((event) => event.data !== "");
    expect(JSON.parse(replayed.at(-1)!.data)).toMatchObject({ id: 400, result: { content: [{ text: `slept ${SLOW_MS}` }] } });
  });
});

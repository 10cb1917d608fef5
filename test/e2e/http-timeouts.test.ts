/**
 * The HTTP gateway's timeouts, probed with raw sockets: a client that trickles its headers is cut
 * (408) 10 s after it began, one that trickles its body 30 s after, while SSE answers and long calls
 * stream on past both. The gateway process is probed with its defaults; an in-process gateway with
 * short figures takes the slow cases. Real nats-server and executor.
 */
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serveHttp, HTTP_TIMEOUTS, type HttpGatewayServer, type HttpTimeouts } from "../../adapters/inbound/index.js";
import { connectBus, type Bus } from "../../src/bus/index.js";
import { Gateway } from "../../src/gateway/index.js";
import { silentLogger } from "../../src/util/logger.js";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { startGatewayHttp, wrapFixtureStdio, type Child } from "../support/processes.js";
import { openSession, readStreamUntil } from "../support/sse.js";

/**
 * Writes `head` to the server at once, then one byte of `drip` every 200 ms, until the server closes
 * the connection; resolves with what it answered and how long after the first byte it closed.
 */
function trickle(port: number, head: string, drip = "a"): Promise<{ answer: string; closedAfterMs: number }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let answer = "";
    let started = 0;
    let timer: NodeJS.Timeout | undefined;
    socket.once("connect", () => {
      started = Date.now();
      socket.write(head);
      timer = setInterval(() => socket.write(drip), 200);
    });
    socket.on("data", (chunk) => (answer += chunk.toString("latin1")));
    // The server may reset the socket while a drip is in flight: the close that follows is what counts.
    socket.on("error", () => undefined);
    socket.once("close", () => {
      clearInterval(timer);
      if (started === 0) reject(new Error("could not connect"));
      else resolve({ answer, closedAfterMs: Date.now() - started });
    });
  });
}

/** A 408, no sooner than the deadline and no later than the next check of it (and 2 s for a busy machine). */
function expectCutAt(cut: { answer: string; closedAfterMs: number }, deadlineMs: number, checkEveryMs: number): void {
  expect(cut.answer).toMatch(/^HTTP\/1\.1 408 /);
  expect(cut.closedAfterMs).toBeGreaterThanOrEqual(deadlineMs - 100);
  expect(cut.closedAfterMs).toBeLessThan(deadlineMs + checkEveryMs + 2_000);
}

const SLOW_HEADERS = "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
const SLOW_BODY = "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n";

let nats: EmbeddedNats;
let executor: Child;

beforeAll(async () => {
  nats = await startTestNats();
  executor = await wrapFixtureStdio(nats.url, "legacy");
});

afterAll(async () => {
  await executor?.stop();
  await nats?.stop();
});

describe("the gateway process with its default timeouts", () => {
  let gateway: Child & { url: string };
  beforeAll(async () => {
    gateway = await startGatewayHttp(nats.url);
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  it("cuts a client that trickles its headers 10 s after it began, within the check interval", async () => {
    expectCutAt(await trickle(Number(new URL(gateway.url).port), SLOW_HEADERS), HTTP_TIMEOUTS.headersMs, HTTP_TIMEOUTS.checkEveryMs);
  }, 30_000);
});

describe("an HTTP gateway with short timeouts", () => {
  const short: HttpTimeouts = { headersMs: 1_000, requestMs: 2_000, checkEveryMs: 100 };
  let bus: Bus;
  let gateway: Gateway;
  let http: HttpGatewayServer;
  beforeAll(async () => {
    bus = await connectBus({ servers: nats.url, name: "timeouts-gateway", logger: silentLogger() });
    gateway = new Gateway({ bus, logger: silentLogger() });
    await gateway.start();
    http = await serveHttp(gateway, { port: 0, logger: silentLogger(), timeouts: short });
  });
  afterAll(async () => {
    await http?.close();
    await gateway?.stop();
    await bus?.drain();
  });

  it("holds the documented figures when none are given: headers 10 s, request 30 s, checked every second", async () => {
    const defaults = await serveHttp(gateway, { port: 0, logger: silentLogger() });
    try {
      expect(defaults.timeouts).toEqual({ headersMs: 10_000, requestMs: 30_000, checkEveryMs: 1_000 });
      expect(http.timeouts).toEqual(short);
    } finally {
      await defaults.close();
    }
  });

  it("cuts a client that trickles its headers at the headers timeout", async () => {
    expectCutAt(await trickle(http.port, SLOW_HEADERS), short.headersMs, short.checkEveryMs);
  });

  it("cuts a client that trickles its body at the request timeout", async () => {
    expectCutAt(await trickle(http.port, SLOW_BODY), short.requestMs, short.checkEveryMs);
  });

  it("lets an SSE stream and a long call run past both timeouts", async () => {
    const headers = await openSession(http.url);
    const listening = await fetch(http.url, { method: "GET", headers: { ...headers(), accept: "text/event-stream" } });
    expect(listening.status).toBe(200);
    const notified = readStreamUntil(listening, "list_changed");
    const call = (id: number, name: string, args: Record<string, unknown>) =>
      fetch(http.url, { method: "POST", headers: headers(), body: JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } }) }).then((r) =>
        r.text(),
      );
    // Longer than the request timeout and its check: the answer still comes on the call's stream.
    expect(await call(2, "sleep", { ms: short.requestMs + 1_000 })).toContain(`slept ${short.requestMs + 1_000}`);
    // The GET stream opened before the call is still the same open stream: the notification arrives on it.
    expect(await call(3, "add_tool", { name: "late" })).toContain("added");
    expect((await notified).some((event) => event.data.includes("notifications/tools/list_changed"))).toBe(true);
  });
});

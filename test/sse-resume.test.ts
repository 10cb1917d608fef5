/**
 * Resumable SSE streams on the gateway's HTTP inbound for 2025-11-25 sessions (SEP-1699): every
 * POST stream starts with a priming event (an id, no data) and a retry hint, each message has an
 * event id, and a GET with `Last-Event-ID` replays what followed. Real gateway, executor, nats-server.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestNats, type EmbeddedNats } from "./helpers/nats.js";
import { eventually, startGatewayHttp, wrapFixtureStdio, type Child } from "./helpers/processes.js";

interface SseEvent {
  id?: string;
  retry?: string;
  data: string;
}

function parseEvents(text: string): SseEvent[] {
  return text
    .split(/\n\n/)
    .filter((block) => block.trim() !== "")
    .map((block) => {
      const event: SseEvent = { data: "" };
      for (const line of block.split("\n")) {
        const colon = line.indexOf(":");
        const field = line.slice(0, colon);
        const value = line.slice(colon + 1).trimStart();
        if (field === "id") event.id = value;
        else if (field === "retry") event.retry = value;
        else if (field === "data") event.data += value;
      }
      return event;
    });
}

/** Opens a 2025-11-25 session on the gateway and returns the headers of its requests. */
async function openSession(url: string): Promise<() => Record<string, string>> {
  const init = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "sse-resume", version: "1" } } }),
  });
  const session = init.headers.get("mcp-session-id")!;
  await init.text();
  const headers = () => ({ "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-session-id": session, "mcp-protocol-version": "2025-11-25" });
  await (await fetch(url, { method: "POST", headers: headers(), body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) })).text();
  await eventually(async () => {
    const listed = await fetch(url, { method: "POST", headers: headers(), body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }) });
    return (await listed.text()).includes('"progress"');
  });
  return headers;
}

/** A nats-server, the fixture wrapped as `legacy`, a gateway with `gatewayFlags`, and an open session on it, for the describe block that calls it. */
function gatewayWithSession(gatewayFlags: string[] = []) {
  let nats: EmbeddedNats;
  let executor: Child;
  let gateway: Child & { url: string };
  let headers: () => Record<string, string>;
  beforeAll(async () => {
    nats = await startTestNats();
    executor = await wrapFixtureStdio(nats.url, "legacy");
    gateway = await startGatewayHttp(nats.url, gatewayFlags);
    headers = await openSession(gateway.url);
  }, 60_000);
  afterAll(async () => {
    await Promise.allSettled([gateway?.stop(), executor?.stop()]);
    await nats?.stop();
  });
  return { get url() { return gateway.url; }, headers: () => headers() };
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
    const reader = resumed.body!.getReader();
    const decoder = new TextDecoder();
    let text = "";
    // The replay ends with the call's answer; the stream itself stays open for what may follow.
    while (!text.includes('"result"')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    await reader.cancel();
    const replayed = parseEvents(text).filter((event) => event.data !== "");
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

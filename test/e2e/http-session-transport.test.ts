/**
 * How the gateway's HTTP session transport writes its answers (adapters/inbound/http/session-transport.ts,
 * direct-answers.ts): a plain call's answer is JSON, whole with its length, unless a message of the call
 * comes first (then SSE); a call that asks for progress gets an SSE answer whose headers and priming
 * event go out before a slow call ends; a client that drops its stream mid-call leaves the session
 * working. Real gateways, executor and nats-server.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually, startGatewayHttp, wrapFixtureStdio, type Child } from "../support/processes.js";

const ACCEPT = "application/json, text/event-stream";

/** Opens a 2025-11-25 session on a gateway, once it lists the fixture's tools; returns the request headers to use. */
async function openSession(url: string): Promise<Record<string, string>> {
  const init = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: ACCEPT },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 0,
      method: "initialize",
      params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "session-transport", version: "1" } },
    }),
  });
  const session = init.headers.get("mcp-session-id");
  await init.text();
  expect(session).toBeTruthy();
  const headers = { "content-type": "application/json", accept: ACCEPT, "mcp-session-id": session!, "mcp-protocol-version": "2025-11-25" };
  await (await fetch(url, { method: "POST", headers, body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) })).text();
  await eventually(async () => {
    const listed = await fetch(url, { method: "POST", headers, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }) });
    return (await listed.text()).includes('"sleep"');
  });
  return headers;
}

const call = (id: number, name: string, args: Record<string, unknown>) => JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } });
/** The same call, asking for progress (a stream) with a progress token. */
const callWithProgress = (id: number, name: string, args: Record<string, unknown>) =>
  JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args, _meta: { progressToken: `p${id}` } } });

/** A JSON answer: its content type, session id and length, and the parsed body. */
async function jsonAnswer(response: Response, sessionId: string): Promise<unknown> {
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toContain("application/json");
  expect(response.headers.get("mcp-session-id")).toBe(sessionId);
  const body = new Uint8Array(await response.arrayBuffer());
  expect(Number(response.headers.get("content-length"))).toBe(body.byteLength);
  return JSON.parse(new TextDecoder().decode(body));
}

describe("the HTTP session transport's answers", () => {
  let nats: EmbeddedNats;
  let executor: Child;
  let sse: Child & { url: string };
  let json: Child & { url: string };

  beforeAll(async () => {
    nats = await startTestNats();
    executor = await wrapFixtureStdio(nats.url, "writer");
    // Plain calls keep JSON however slow (by default one unanswered after 50 ms gets a resumable stream: failover-calls.long.test.ts).
    [sse, json] = await Promise.all([startGatewayHttp(nats.url, ["--resumable-after", "60000"]), startGatewayHttp(nats.url, ["--json-responses"])]);
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled([sse?.stop(), json?.stop(), executor?.stop()]);
    await nats?.stop();
  });

  it("answers a plain call (no progress asked for) with JSON, whole with its length", async () => {
    const headers = await openSession(sse.url);
    const response = await fetch(sse.url, { method: "POST", headers, body: call(2, "sleep", { ms: 300 }) });
    expect(await jsonAnswer(response, headers["mcp-session-id"]!)).toMatchObject({ id: 2, result: { content: [{ type: "text", text: "slept 300" }] } });
  });

  it("answers a plain call on an SSE stream when messages of the call come before its answer", async () => {
    const headers = await openSession(sse.url);
    await (await fetch(sse.url, { method: "POST", headers, body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "logging/setLevel", params: { level: "debug" } }) })).text();
    const response = await fetch(sse.url, { method: "POST", headers, body: call(3, "log", {}) });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("text/event-stream");
    expect(response.headers.get("mcp-session-id")).toBe(headers["mcp-session-id"]);
    const messages = (await response.text())
      .split("\n")
      // A 2025-11-25 client's stream starts with a priming event (no data): it can resume it.
      .filter((line) => line.startsWith("data: ") && line.length > "data: ".length)
      .map((line) => JSON.parse(line.slice("data: ".length)) as { method?: string; id?: number; result?: unknown });
    expect(messages.map((m) => m.method ?? "result")).toEqual(["notifications/message", "notifications/message", "notifications/message", "notifications/message", "result"]);
    expect(messages.at(-1)).toMatchObject({ id: 3, result: { content: [{ type: "text", text: "logged" }] } });
  });

  it("answers a plain call still waiting when its session is deleted with an error, at once", async () => {
    const headers = await openSession(sse.url);
    const pending = fetch(sse.url, { method: "POST", headers, body: call(2, "sleep", { ms: 30_000 }) });
    // The call is under way once the upstream has it: wait for the gateway to hold it, then end the session.
    const metrics = sse.url.replace(/\/mcp$/, "/metrics");
    await eventually(async () => /dmcp_gateway_calls_in_flight\{service="writer"\} 1/.test(await (await fetch(metrics)).text()));
    expect((await fetch(sse.url, { method: "DELETE", headers })).status).toBe(200);
    expect(await jsonAnswer(await pending, headers["mcp-session-id"]!)).toMatchObject({ id: 2, error: { code: -32016, message: expect.stringContaining("session closed") } });
  });

  it("sends an SSE answer's headers and priming event before a slow call that asks for progress ends, then the result", async () => {
    const headers = await openSession(sse.url);
    const response = await fetch(sse.url, { method: "POST", headers, body: callWithProgress(2, "sleep", { ms: 1500 }) });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("text/event-stream");
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    const first = decoder.decode((await reader.read()).value);
    // The call sleeps on: what came so far is the priming event alone.
    expect(first).toMatch(/^id: \S+\nretry: 1000\ndata: \n\n$/);
    let rest = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += decoder.decode(value, { stream: true });
    }
    const data = rest.split("\n").find((line) => line.startsWith("data: {"));
    expect(JSON.parse(data!.slice("data: ".length))).toMatchObject({ id: 2, result: { content: [{ type: "text", text: "slept 1500" }] } });
  });

  it("keeps a session working after its client dropped a call's stream mid-call", async () => {
    const headers = await openSession(sse.url);
    const dropped = new AbortController();
    const response = await fetch(sse.url, { method: "POST", headers, body: callWithProgress(2, "sleep", { ms: 1000 }), signal: dropped.signal });
    await response.body!.getReader().read(); // the priming event: the call is under way
    dropped.abort();
    const next = await fetch(sse.url, { method: "POST", headers, body: call(3, "echo", { text: "still here" }) });
    expect(await next.text()).toContain("still here");
  });

  it("sends a JSON answer whole, with its length (--json-responses)", async () => {
    const headers = await openSession(json.url);
    const response = await fetch(json.url, { method: "POST", headers, body: callWithProgress(2, "echo", { text: "héllo" }) });
    expect(await jsonAnswer(response, headers["mcp-session-id"]!)).toMatchObject({ id: 2, result: { content: [{ type: "text", text: "héllo" }] } });
  });
});

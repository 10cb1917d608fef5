/**
 * A request whose `_meta` fails the MCP schema (not an object, a progress token that is neither string
 * nor number, a related task without its id) is answered at once with -32602 on every path: HTTP
 * 2025-11-25 sessions, HTTP 2026-07-28 stateless requests, stdio, and a prompt_request straight on the
 * bus. Forwarded, it would reach an upstream built on the SDK (the conformance fixture), which drops
 * such a message without an answer: the call would wait for its deadline. The gateways' call timeout
 * is 20 s, so a hang shows as DEADLINE_EXCEEDED, not as the expected code. Real nats-server, gateways,
 * executor and upstream.
 */
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { createEnvelope, decodeEnvelope, encodeEnvelope, ErrorCode, JsonRpcErrorCode, subjects } from "../../src/protocol/index.js";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { STATELESS_META, STATELESS_VERSION } from "../support/stateless-client.js";
import { eventually, REPO_ROOT, runDmcp, startGatewayHttp, type Child } from "../support/processes.js";

const CONFORMANCE_BIN = `${REPO_ROOT}dist/test/support/fixtures/conformance-server.js`;
const SERVICE = "conf";
const TOOL = "test_simple_text";
const CALL_TIMEOUT = ["--call-timeout", "20000"];

const BAD_META: [string, unknown][] = [
  ["a string", "x"],
  ["an array", []],
  ["null", null],
  ["a progressToken that is an object", { progressToken: {} }],
  ["a progressToken that is a boolean", { progressToken: true }],
  ["a progressToken that is null", { progressToken: null }],
  ["a related task that is not an object", { "io.modelcontextprotocol/related-task": "task-1" }],
];

/** The MCP 2026-07-28 `_meta` with the bad keys added (a bad `_meta` that is no object stays as it is). */
function statelessMeta(bad: unknown): unknown {
  return typeof bad === "object" && bad !== null && !Array.isArray(bad) ? { ...STATELESS_META, ...bad } : bad;
}

const HEADERS = { "content-type": "application/json", accept: "application/json, text/event-stream" };

/** POSTs one JSON-RPC message; the answer's messages, from a JSON body or an SSE stream. */
async function post(url: string, message: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(url, { method: "POST", headers: { ...HEADERS, ...headers }, body: JSON.stringify(message) });
  const text = await response.text();
  const messages = (response.headers.get("content-type") ?? "").includes("text/event-stream")
    ? text
        .split("\n")
        .filter((line) => line.startsWith("data:") && line.slice(5).trim() !== "")
        .map((line) => JSON.parse(line.slice(5)) as Record<string, any>)
    : text === ""
      ? []
      : [JSON.parse(text) as Record<string, any>];
  return { status: response.status, sessionId: response.headers.get("mcp-session-id"), messages };
}

/** A `dmcp gateway --stdio` with a line-by-line client. */
function stdioGateway(natsUrl: string) {
  const child = runDmcp(["gateway", "--stdio", "--nats", natsUrl, ...CALL_TIMEOUT, "--log-level", "warn"], { stdin: "pipe" });
  const waiting = new Map<unknown, (message: Record<string, any>) => void>();
  createInterface({ input: child.process.stdout! }).on("line", (line) => {
    const message = JSON.parse(line) as Record<string, any>;
    waiting.get(message.id)?.(message);
  });
  let nextId = 1;
  const request = (method: string, params: unknown) =>
    new Promise<Record<string, any>>((resolve) => {
      const id = nextId++;
      waiting.set(id, resolve);
      child.process.stdin!.write(`${JSON.stringify({ jsonrpc: "2.0", id, method, params })}\n`);
    });
  return { child, request, notify: (method: string) => child.process.stdin!.write(`${JSON.stringify({ jsonrpc: "2.0", method })}\n`) };
}

function expectInvalidMeta(answer: Record<string, any> | undefined): void {
  expect(answer?.error?.code).toBe(JsonRpcErrorCode.InvalidParams);
  expect(answer?.error?.message).toContain("_meta");
}

describe("a _meta that fails the MCP schema, to an upstream built on the SDK", () => {
  let nats: EmbeddedNats;
  let executor: Child;
  let http: Child & { url: string };
  let stdio: ReturnType<typeof stdioGateway>;
  let nc: NatsConnection;
  let sessionId: string;

  beforeAll(async () => {
    nats = await startTestNats();
    executor = runDmcp(["wrap", "--name", SERVICE, "--nats", nats.url, "--heartbeat", "500", "--", process.execPath, CONFORMANCE_BIN, "--stdio"]);
    await executor.waitFor(/executor serving/);
    http = await startGatewayHttp(nats.url, CALL_TIMEOUT);
    stdio = stdioGateway(nats.url);
    nc = await connect({ servers: nats.url });
    const init = await post(http.url, {
      jsonrpc: "2.0",
      id: 0,
      method: "initialize",
      params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "t", version: "1" } },
    });
    sessionId = init.sessionId!;
    await post(http.url, { jsonrpc: "2.0", method: "notifications/initialized" }, { "mcp-session-id": sessionId, "mcp-protocol-version": "2025-11-25" });
    const stdioInit = await stdio.request("initialize", { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "t", version: "1" } });
    expect(stdioInit.result).toBeDefined();
    stdio.notify("notifications/initialized");
    const listed = (answer: Record<string, any>) => (answer.result?.tools ?? []).some((tool: { name: string }) => tool.name === TOOL);
    await eventually(async () =>
      listed((await post(http.url, { jsonrpc: "2.0", id: 1, method: "tools/list" }, { "mcp-session-id": sessionId, "mcp-protocol-version": "2025-11-25" })).messages.at(-1)!),
    );
    await eventually(async () => listed(await stdio.request("tools/list", {})));
  });

  afterAll(async () => {
    await nc?.close();
    stdio?.child.process.stdin?.end();
    await Promise.allSettled([stdio?.child.stop(), http?.stop(), executor?.stop()]);
    await nats?.stop();
  });

  let id = 100;
  const call = (meta: unknown) => ({ jsonrpc: "2.0", id: ++id, method: "tools/call", params: { name: TOOL, arguments: {}, _meta: meta } });

  it("serves the same call with a valid _meta on every path", async () => {
    const session = await post(http.url, call({ progressToken: 1 }), { "mcp-session-id": sessionId, "mcp-protocol-version": "2025-11-25" });
    expect(session.messages.at(-1)?.result?.content?.[0]?.text).toContain("simple text");
    // A token that is a number but no integer is valid MCP; the SDK refuses it, but the executor sends the upstream a token of its own.
    const stateless = await post(http.url, call(statelessMeta({ progressToken: 2.5 })), {
      "mcp-protocol-version": STATELESS_VERSION,
      "mcp-method": "tools/call",
      "mcp-name": TOOL,
    });
    expect(stateless.messages.at(-1)?.result?.content?.[0]?.text).toContain("simple text");
    expect((await stdio.request("tools/call", { name: TOOL, arguments: {}, _meta: { progressToken: 1.5 } })).result?.content?.[0]?.text).toContain("simple text");
  });

  it.each(BAD_META)("answers an MCP 2025-11-25 session's call with %s as _meta at once with -32602 (HTTP)", async (_label, meta) => {
    const answer = await post(http.url, call(meta), { "mcp-session-id": sessionId, "mcp-protocol-version": "2025-11-25" });
    expect(answer.status).toBe(400);
    expectInvalidMeta(answer.messages[0]);
  });

  it.each(BAD_META)("answers an MCP 2026-07-28 call with %s as _meta at once with -32602 (HTTP)", async (_label, meta) => {
    const answer = await post(http.url, call(statelessMeta(meta)), { "mcp-protocol-version": STATELESS_VERSION, "mcp-method": "tools/call", "mcp-name": TOOL });
    expect(answer.status).toBe(400);
    expectInvalidMeta(answer.messages[0]);
  });

  it.each(BAD_META)("answers a call with %s as _meta at once with -32602 (stdio)", async (_label, meta) => {
    expectInvalidMeta(await stdio.request("tools/call", { name: TOOL, arguments: {}, _meta: meta }));
  });

  it.each(BAD_META)("answers an MCP 2026-07-28 call with %s as _meta at once with -32602 (stdio)", async (_label, meta) => {
    expectInvalidMeta(await stdio.request("tools/call", { name: TOOL, arguments: {}, _meta: statelessMeta(meta) }));
  });

  it.each([
    ["client capabilities that are not an object", { "io.modelcontextprotocol/clientCapabilities": "all" }, "clientCapabilities"],
    ["client info without a name", { "io.modelcontextprotocol/clientInfo": { version: "1" } }, "clientInfo"],
  ])("answers an MCP 2026-07-28 call with %s at once with -32602 (HTTP and stdio)", async (_label, meta, key) => {
    const overHttp = await post(http.url, call(statelessMeta(meta)), { "mcp-protocol-version": STATELESS_VERSION, "mcp-method": "tools/call", "mcp-name": TOOL });
    const overStdio = await stdio.request("tools/call", { name: TOOL, arguments: {}, _meta: statelessMeta(meta) });
    for (const answer of [overHttp.messages.at(-1), overStdio]) {
      expect(answer?.error?.code).toBe(JsonRpcErrorCode.InvalidParams);
      expect(answer?.error?.message).toContain(key);
    }
  });

  it.each(BAD_META)("answers a prompt_request with %s as _meta at once with an INVALID_PARAMS error_notification (bus)", async (_label, meta) => {
    const request = createEnvelope(
      "prompt_request",
      { service: SERVICE, method: "tools/call", params: { name: TOOL, arguments: {}, _meta: meta } as Record<string, unknown> },
      { sender: "invalid-meta-test", correlationId: `bad-meta-${++id}`, deadline: new Date(Date.now() + 20_000).toISOString() },
    );
    const reply = await nc.request(subjects.request(SERVICE), encodeEnvelope(request), { timeout: 30_000 });
    const decoded = decodeEnvelope(reply.data);
    expect(decoded.ok && decoded.envelope).toMatchObject({
      type: "error_notification",
      correlation_id: request.correlation_id,
      payload: { code: ErrorCode.InvalidParams, jsonrpc_code: JsonRpcErrorCode.InvalidParams, message: expect.stringContaining("_meta") },
    });
  });
});

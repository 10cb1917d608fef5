/**
 * MCP 2026-07-28 clients (stateless: no initialize, `_meta` on every request) through the gateway and
 * the bus to a wrapped 2025 server: discovery, result fields, header validation, removed methods,
 * progress on an SSE answer, listen streams, cancellation by hanging up, and stdio. Raw HTTP, real
 * gateway and executor processes, real nats-server.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { RawMcpClient } from "../support/mcp-client.js";
import { DMCP_BIN, eventually, startFixtureHttp, startGatewayHttp, wrapFixtureStdio, wrapUrl, type Child } from "../support/processes.js";

const VERSION = "2026-07-28";
const META = {
  "io.modelcontextprotocol/protocolVersion": VERSION,
  "io.modelcontextprotocol/clientInfo": { name: "stateless-test", version: "1" },
  "io.modelcontextprotocol/clientCapabilities": {},
};
const NAMED_BY: Record<string, string> = { "tools/call": "name", "prompts/get": "name", "resources/read": "uri" };

interface Exchange {
  status: number;
  contentType: string;
  /** The JSON-RPC answer (the last message of an SSE stream). */
  body: Record<string, any>;
  /** Every message of an SSE answer, in order. */
  events: Record<string, any>[];
}

let nextId = 1;

type PostOptions = { headers?: Record<string, string>; meta?: Record<string, unknown> | null; signal?: AbortSignal };

/** One stateless POST with the headers a 2026-07-28 client sends; `headers` overrides them. */
async function statelessPost(url: string, method: string, params: Record<string, unknown> = {}, options: PostOptions = {}): Promise<Exchange> {
  const id = nextId++;
  const headers: Record<string, string> = {
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    "mcp-protocol-version": VERSION,
    "mcp-method": method,
  };
  const named = params[NAMED_BY[method] ?? ""];
  if (typeof named === "string") headers["mcp-name"] = named;
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    for (const key of Object.keys(headers)) if (key.toLowerCase() === name.toLowerCase()) delete headers[key];
    if (value !== "") headers[name] = value;
  }
  const withMeta = options.meta === null ? params : { ...params, _meta: { ...META, ...(options.meta ?? {}) } };
  const response = await fetch(url, { method: "POST", headers, body: JSON.stringify({ jsonrpc: "2.0", id, method, params: withMeta }), signal: options.signal ?? null });
  const contentType = response.headers.get("content-type") ?? "";
  if (!contentType.includes("text/event-stream")) return { status: response.status, contentType, body: await response.json(), events: [] };
  const events = parseSse(await response.text());
  return { status: response.status, contentType, body: events.at(-1)!, events };
}

describe("MCP 2026-07-28 clients", () => {
  let nats: EmbeddedNats;
  let executor: Child;
  let gateway: Child & { url: string };
  const post = (method: string, params: Record<string, unknown> = {}, options: PostOptions = {}) => statelessPost(gateway.url, method, params, options);

  beforeAll(async () => {
    nats = await startTestNats();
    executor = await wrapFixtureStdio(nats.url, "legacy");
    gateway = await startGatewayHttp(nats.url);
    await eventually(async () => ((await post("tools/list")).body.result?.tools ?? []).some((tool: { name: string }) => tool.name === "echo"));
  });

  afterAll(async () => {
    await Promise.allSettled([gateway?.stop(), executor?.stop()]);
    await nats?.stop();
  });

  it("answers server/discover with its versions, capabilities and identity", async () => {
    const { status, body } = await post("server/discover");
    expect(status).toBe(200);
    expect(body.result.supportedVersions).toEqual(expect.arrayContaining([VERSION, "2025-11-25"]));
    expect(body.result.capabilities).toMatchObject({ tools: { listChanged: true }, prompts: { listChanged: true }, resources: { subscribe: true } });
    expect(body.result._meta["io.modelcontextprotocol/serverInfo"]).toMatchObject({ name: "dmcp-gateway" });
    expect(body.result).toMatchObject({ resultType: "complete", ttlMs: 0, cacheScope: "private" });
  });

  it("serves a wrapped 2025 server's lists and calls with 2026 result fields", async () => {
    for (const method of ["tools/list", "prompts/list", "resources/list", "resources/templates/list"]) {
      const { body } = await post(method);
      expect(body.result, method).toMatchObject({ resultType: "complete", ttlMs: 0, cacheScope: "private" });
    }
    const call = await post("tools/call", { name: "echo", arguments: { text: "stateless" } });
    expect(call.status).toBe(200);
    expect(call.body.result).toMatchObject({ resultType: "complete", content: [{ type: "text", text: "stateless" }] });
    expect(call.body.result.ttlMs).toBeUndefined();
    const read = await post("resources/read", { uri: "fixture://legacy/static" });
    expect(read.body.result).toMatchObject({ resultType: "complete", ttlMs: 0, cacheScope: "private" });
    expect(read.body.result.contents[0].uri).toBe("fixture://legacy/static");
    // The client's _meta reaches the upstream, except the per-request keys a 2025 server would misread
    // (it answered server/discover with -32601, so it speaks sessions only).
    const meta = await post("tools/call", { name: "meta", arguments: {} }, { meta: { "example.com/trace": "t-1" } });
    const seen = meta.body.result.structuredContent.meta;
    expect(seen["example.com/trace"]).toBe("t-1");
    expect(Object.keys(seen).filter((key) => key.startsWith("io.modelcontextprotocol/"))).toEqual([]);
  });

  it("answers an unknown resource with -32602 and its uri (2025 clients keep -32002)", async () => {
    const { body } = await post("resources/read", { uri: "test://nonexistent" });
    expect(body.error).toMatchObject({ code: -32602, data: { uri: "test://nonexistent" } });
  });

  it("rejects requests whose _meta or headers do not hold up, with 400 and the request's id", async () => {
    const cases: [string, () => Promise<Exchange>, number][] = [
      ["no _meta", () => post("tools/list", {}, { meta: null }), -32602],
      ["no client capabilities", () => post("tools/list", { _meta: { "io.modelcontextprotocol/protocolVersion": VERSION } }, { meta: null }), -32602],
      ["header and _meta disagree", () => post("server/discover", {}, { meta: { "io.modelcontextprotocol/protocolVersion": "v999.0.0" } }), -32020],
      ["Mcp-Method differs", () => post("tools/list", {}, { headers: { "Mcp-Method": "prompts/list" } }), -32020],
      ["Mcp-Method missing", () => post("tools/list", {}, { headers: { "mcp-method": "" } }), -32020],
      ["Mcp-Method in another case", () => post("tools/list", {}, { headers: { "Mcp-Method": "TOOLS/LIST" } }), -32020],
      ["Mcp-Name differs", () => post("tools/call", { name: "echo", arguments: { text: "x" } }, { headers: { "Mcp-Name": "wrong" } }), -32020],
      ["Mcp-Name missing", () => post("tools/call", { name: "echo", arguments: { text: "x" } }, { headers: { "mcp-name": "" } }), -32020],
    ];
    for (const [label, send, code] of cases) {
      const { status, body } = await send();
      expect(status, label).toBe(400);
      expect(body.error?.code, label).toBe(code);
      expect(body.id, label).toBeGreaterThan(0);
    }
    const unsupported = await post("server/discover", {}, { headers: { "MCP-Protocol-Version": "v999.0.0" }, meta: { "io.modelcontextprotocol/protocolVersion": "v999.0.0" } });
    expect(unsupported.status).toBe(400);
    expect(unsupported.body.error).toMatchObject({ code: -32022, data: { supported: [VERSION], requested: "v999.0.0" } });
  });

  it("accepts header names in any case and values with surrounding whitespace", async () => {
    expect((await post("tools/list", {}, { headers: { "MCP-METHOD": "tools/list" } })).body.result).toBeDefined();
    const call = await post("tools/call", { name: "echo", arguments: { text: "ws" } }, { headers: { "Mcp-Name": "  echo  " } });
    expect(call.body.result.content[0].text).toBe("ws");
  });

  it("answers removed and unknown methods with 404 and -32601", async () => {
    for (const method of ["initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe", "unknown/method"]) {
      const { status, body } = await post(method, method === "resources/subscribe" ? { uri: "dmcp://context/x" } : {});
      expect(status, method).toBe(404);
      expect(body.error?.code, method).toBe(-32601);
    }
  });

  it("streams a call's progress before its result on an SSE answer", async () => {
    const { contentType, events, body } = await post("tools/call", { name: "progress", arguments: { steps: 3 } }, { meta: { progressToken: "p-1" } });
    expect(contentType).toContain("text/event-stream");
    expect(events.map((event) => event.method ?? "result")).toEqual(["notifications/progress", "notifications/progress", "notifications/progress", "result"]);
    expect(events.slice(0, 3).map((event) => [event.params.progressToken, event.params.progress])).toEqual([
      ["p-1", 1],
      ["p-1", 2],
      ["p-1", 3],
    ]);
    expect(body.result).toMatchObject({ resultType: "complete", content: [{ text: "done after 3 steps" }] });
  });

  it("opens listen streams: acknowledged first, then only the opted-in notifications, tagged with the stream's id", async () => {
    const tools = openListen({ toolsListChanged: true, resourceSubscriptions: ["dmcp://context/stateless.topic", "fixture://legacy/static"] });
    const prompts = openListen({ promptsListChanged: true });
    try {
      const ack = await tools.next();
      expect(ack).toMatchObject({
        method: "notifications/subscriptions/acknowledged",
        params: { notifications: { toolsListChanged: true, resourceSubscriptions: ["dmcp://context/stateless.topic"] } },
      });
      const subscriptionId = ack.params._meta["io.modelcontextprotocol/subscriptionId"];
      expect(subscriptionId).toBe(String(tools.id));
      expect((await prompts.next()).method).toBe("notifications/subscriptions/acknowledged");

      await post("tools/call", { name: "add_tool", arguments: { name: "added_while_listening" } });
      expect(await tools.next()).toEqual({
        jsonrpc: "2.0",
        method: "notifications/tools/list_changed",
        params: { _meta: { "io.modelcontextprotocol/subscriptionId": subscriptionId } },
      });
      await post("tools/call", { name: "dmcp_publish_context", arguments: { topic: "stateless.topic", data: { v: 1 } } });
      const updated = await tools.next();
      expect(updated).toMatchObject({ method: "notifications/resources/updated", params: { uri: "dmcp://context/stateless.topic" } });
      // The prompts-only stream heard nothing of the tool change nor of the resource.
      expect(prompts.received()).toHaveLength(1);
    } finally {
      tools.close();
      prompts.close();
    }
  });

  it("cancels the upstream call when the client hangs up", async () => {
    const aborted = new AbortController();
    const since = executor.stderr.length;
    const call = post("tools/call", { name: "sleep", arguments: { ms: 20_000 } }, { signal: aborted.signal }).catch((err: Error) => err);
    await executor.waitFor(/sleep: running 20000/, 15_000, since);
    aborted.abort();
    expect(await call).toBeInstanceOf(Error);
    await eventually(async () => {
      const { body } = await post("tools/call", { name: "cancelled", arguments: {} });
      return body.result.structuredContent.cancellations.length > 0;
    });
  });

  it("serves 2026 requests over stdio too, without initialize", async () => {
    const transport = new StdioClientTransport({ command: process.execPath, args: [DMCP_BIN, "gateway", "--stdio", "--nats", nats.url], stderr: "ignore" });
    const client = new RawMcpClient(transport);
    await transport.start();
    try {
      const discover = await client.request("server/discover", { _meta: META });
      expect(discover.result).toMatchObject({ resultType: "complete", supportedVersions: expect.arrayContaining([VERSION]) });
      const listed = await eventually(async () => {
        const response = await client.request("tools/list", { _meta: META });
        return (response.result?.tools as { name: string }[] | undefined)?.some((tool) => tool.name === "echo") ? response : undefined;
      });
      expect(listed.result).toMatchObject({ resultType: "complete", cacheScope: "private" });
      expect((await client.request("ping", { _meta: META })).error?.code).toBe(-32601);
      expect((await client.request("tools/list", { _meta: { "io.modelcontextprotocol/protocolVersion": VERSION } })).error?.code).toBe(-32602);
    } finally {
      await client.close();
    }
  });

  /** A subscriptions/listen request whose SSE stream is read message by message. */
  function openListen(notifications: Record<string, unknown>) {
    const id = nextId++;
    const aborted = new AbortController();
    const messages: Record<string, any>[] = [];
    const waiters: (() => void)[] = [];
    let taken = 0;
    void fetch(gateway.url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": VERSION, "mcp-method": "subscriptions/listen" },
      body: JSON.stringify({ jsonrpc: "2.0", id, method: "subscriptions/listen", params: { notifications, _meta: META } }),
      signal: aborted.signal,
    })
      .then(async (response) => {
        const decoder = new TextDecoder();
        let buffer = "";
        for await (const chunk of response.body!) {
          buffer += decoder.decode(chunk as Uint8Array, { stream: true });
          const parts = buffer.split("\n\n");
          buffer = parts.pop()!;
          messages.push(...parseSse(parts.join("\n\n")));
          for (const wake of waiters.splice(0)) wake();
        }
      })
      .catch(() => undefined);
    return {
      id,
      received: () => messages,
      async next(): Promise<Record<string, any>> {
        await eventually(() => messages.length > taken, 15_000, 20);
        return messages[taken++]!;
      },
      close: () => aborted.abort(),
    };
  }
});

describe("MCP 2026-07-28 clients: log messages per request", () => {
  let nats: EmbeddedNats;
  let upstream: Child & { url: string };
  let executor: Child;
  let gateway: Child & { url: string };
  const post = (method: string, params: Record<string, unknown> = {}, options: PostOptions = {}) => statelessPost(gateway.url, method, params, options);
  const logLevels = (events: Record<string, any>[]) => events.filter((event) => event.method === "notifications/message").map((event) => event.params.level);

  beforeAll(async () => {
    nats = await startTestNats();
    // A 2025 server over HTTP: it logs at every level (it gets no per-request level), on the call's own stream.
    upstream = await startFixtureHttp("logs");
    executor = await wrapUrl(nats.url, "logs", upstream.url);
    gateway = await startGatewayHttp(nats.url);
    await eventually(async () => ((await post("tools/list")).body.result?.tools ?? []).some((tool: { name: string }) => tool.name === "log"));
  });

  afterAll(async () => {
    await Promise.allSettled([gateway?.stop(), executor?.stop(), upstream?.stop()]);
    await nats?.stop();
  });

  it("gets the call's log messages at or above the level in its _meta, on its own stream, before the result", async () => {
    const { events, body } = await post("tools/call", { name: "log", arguments: {} }, { meta: { "io.modelcontextprotocol/logLevel": "warning" } });
    expect(logLevels(events)).toEqual(["warning", "error"]);
    expect(events.at(-1)).toBe(body);
    expect(body.result).toMatchObject({ resultType: "complete", content: [{ text: "logged" }] });
    const all = await post("tools/call", { name: "log", arguments: {} }, { meta: { "io.modelcontextprotocol/logLevel": "debug" } });
    expect(logLevels(all.events)).toEqual(["debug", "info", "warning", "error"]);
  });

  it("gets no log messages without a level, and a clear error for a level that is not one", async () => {
    const { events, body } = await post("tools/call", { name: "log", arguments: {} });
    expect(logLevels(events)).toEqual([]);
    expect(body.result).toMatchObject({ content: [{ text: "logged" }] });
    const bad = await post("tools/call", { name: "log", arguments: {} }, { meta: { "io.modelcontextprotocol/logLevel": "loud" } });
    expect(bad.body.error).toMatchObject({ code: -32602, message: expect.stringContaining("logLevel") });
  });
});

function parseSse(text: string): Record<string, any>[] {
  return text
    .split("\n")
    .filter((line) => line.startsWith("data:"))
    .map((line) => JSON.parse(line.slice(5).trim()) as Record<string, any>);
}

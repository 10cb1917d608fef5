/**
 * What an upstream answers that is not a plain JSON-RPC answer (adapters/outbound/http/streamable-http.ts,
 * adapters/outbound/stdio/stdio.ts): an application/json body with one message per line (newline-delimited
 * JSON, as some servers send a progress notification and then the result) is read message by message;
 * a body or event that cannot be read, or holds no answer, and a stdio line that is the call's answer but
 * not a JSON-RPC message, fail the call at once with an error that shows what came, instead of leaving
 * it to its deadline. The upstreams are real servers written without the SDK (an HTTP one here with
 * node:http, a stdio one in test/support/fixtures/odd-stdio-server.ts), so that they can answer the way such
 * servers do; `dmcp wrap`, the gateway and nats-server are real.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EmbeddedNats } from "../support/nats.js";
import type { RawMcpClient } from "../support/mcp-client.js";
import { eventually, REPO_ROOT, runDmcp, wrapUrl, type Child } from "../support/processes.js";
import { startWorld, type World } from "../support/world.js";

const ODD_STDIO_BIN = `${REPO_ROOT}dist/test/support/fixtures/odd-stdio-server.js`;

type Json = Record<string, unknown>;

const TOOLS = ["ndjson", "not_json", "sse_not_json", "no_answer", "html", "accepted", "sse_ends", "sse_reset", "sse_unresumable"];

/** Answers one tools/call the odd way its tool name asks for. */
function answerCall(request: Json, res: ServerResponse): void {
  const id = request.id;
  const params = request.params as { name: string; _meta?: { progressToken?: string | number } };
  const result = { jsonrpc: "2.0", id, result: { content: [{ type: "text", text: `${params.name} done` }] } };
  switch (params.name) {
    case "ndjson": {
      const token = params._meta?.progressToken;
      const progress = { jsonrpc: "2.0", method: "notifications/progress", params: { progressToken: token, progress: 1, total: 2 } };
      res.writeHead(200, { "content-type": "application/json" }).end(`${JSON.stringify(progress)}\n${JSON.stringify(result)}\n`);
      return;
    }
    case "not_json":
      // Cut off mid-write.
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(result).slice(0, 40));
      return;
    case "sse_not_json":
      // The stream stays open: the call must not wait for its end.
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("event: message\ndata: {this is not json\n\n");
      return;
    case "no_answer":
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ jsonrpc: "2.0", method: "notifications/message", params: { level: "info", data: "no answer here" } }));
      return;
    case "html":
      res.writeHead(200, { "content-type": "text/html" }).end("<html><body>maintenance</body></html>");
      return;
    case "accepted":
      // What answers a notification, not a request.
      res.writeHead(202).end();
      return;
    case "sse_ends":
      // A log message, then the end of the stream: no answer, and no event id to resume from.
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.end(`event: message\ndata: ${JSON.stringify({ jsonrpc: "2.0", method: "notifications/message", params: { level: "info", data: "then nothing" } })}\n\n`);
      return;
    case "sse_reset":
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(": working\n\n", () => res.socket?.destroy());
      return;
    case "sse_unresumable":
      // An event id, so the stream could be resumed, but this server refuses the GET that would.
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.end("id: odd-1\ndata: \n\n");
      return;
  }
}

function answer(request: Json, res: ServerResponse): void {
  const json = (body: Json, headers: Record<string, string> = {}) => res.writeHead(200, { "content-type": "application/json", ...headers }).end(JSON.stringify(body));
  if (!("id" in request)) {
    res.writeHead(202).end();
    return;
  }
  switch (request.method) {
    case "initialize":
      json(
        { jsonrpc: "2.0", id: request.id, result: { protocolVersion: "2025-11-25", capabilities: { tools: {} }, serverInfo: { name: "odd", version: "1.0.0" } } },
        { "mcp-session-id": "odd-session" },
      );
      return;
    case "tools/list":
      json({ jsonrpc: "2.0", id: request.id, result: { tools: TOOLS.map((name) => ({ name, inputSchema: { type: "object" } })) } });
      return;
    case "tools/call":
      answerCall(request, res);
      return;
    default:
      json({ jsonrpc: "2.0", id: request.id, error: { code: -32601, message: `no method ${String(request.method)}` } });
  }
}

/** The odd server's HTTP side: POSTs answered as `answer` says, a DELETE ends the session, nothing else is served. */
function serveOdd(req: IncomingMessage, res: ServerResponse): void {
  if (req.method !== "POST") {
    res.writeHead(req.method === "DELETE" ? 200 : 405).end();
    return;
  }
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => answer(JSON.parse(Buffer.concat(chunks).toString("utf8")) as Json, res));
}

async function startOddServer(): Promise<{ server: Server; url: string }> {
  const server = createServer(serveOdd);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp` };
}

let world: World;
let nats: EmbeddedNats;
let client: RawMcpClient;

beforeAll(async () => {
  world = await startWorld();
  ({ nats, client } = world);
});

afterAll(() => world?.dispose());

// The gateway's deadline is 60 s: an answer within the client's 15 s is one that did not wait for it.
const call = (name: string, meta?: Json) => client.request("tools/call", { name, arguments: {}, ...(meta ? { _meta: meta } : {}) }, 15_000);

describe("an HTTP upstream whose answers are not one JSON-RPC message", () => {
  let odd: { server: Server; url: string };
  let wrap: Child;

  beforeAll(async () => {
    odd = await startOddServer();
    wrap = await wrapUrl(nats.url, "odd", odd.url);
    await eventually(async () => (await client.toolNames()).includes("ndjson"));
  });

  afterAll(async () => {
    await wrap?.stop();
    odd?.server.closeAllConnections();
    await new Promise((resolve) => odd?.server.close(resolve));
  });

  it("reads newline-delimited JSON in an application/json body as separate messages", async () => {
    const response = await call("ndjson", { progressToken: "odd-progress" });
    expect(response.error).toBeUndefined();
    expect(response.result).toMatchObject({ content: [{ type: "text", text: "ndjson done" }] });
    // The notification before the result reached the caller as such.
    expect(client.notifications).toContainEqual({ method: "notifications/progress", params: expect.objectContaining({ progressToken: "odd-progress", progress: 1, total: 2 }) });
  });

  it("fails a call at once whose application/json body is not JSON, showing the content type and the first bytes", async () => {
    const response = await call("not_json");
    expect(response.error?.code).toBe(-32603);
    expect(response.error?.message).toMatch(/answered tools\/call with a body that is not JSON/);
    expect(response.error?.message).toContain('content type "application/json"');
    expect(response.error?.message).toContain('starting "{\\"jsonrpc\\":\\"2.0\\",\\"id\\"');
  });

  it("fails a call at once whose SSE stream carries an event that is not JSON, while the stream stays open", async () => {
    const response = await call("sse_not_json");
    expect(response.error?.code).toBe(-32603);
    expect(response.error?.message).toMatch(/event that is not JSON/);
    expect(response.error?.message).toContain('starting "{this is not json"');
  });

  it("fails a call at once whose application/json body holds no answer to it", async () => {
    const response = await call("no_answer");
    expect(response.error?.code).toBe(-32603);
    expect(response.error?.message).toMatch(/with a body that holds no answer to it/);
    expect(response.error?.message).toContain("no answer here");
  });

  it("fails a call at once that is answered with another content type", async () => {
    const response = await call("html");
    expect(response.error?.code).toBe(-32603);
    expect(response.error?.message).toContain('content type "text/html"');
    expect(response.error?.message).toContain("maintenance");
  });

  it("fails a call at once that is answered 202 Accepted without a body", async () => {
    const response = await call("accepted");
    expect(response.error?.code).toBe(-32603);
    expect(response.error?.message).toBe("the upstream answered tools/call with HTTP 202 and no body");
  });

  it("fails a call at once whose SSE stream ends without its answer and without an event id to resume from", async () => {
    const response = await call("sse_ends");
    expect(response.error?.code).toBe(-32015);
    expect(response.error?.message).toMatch(/closed the request's stream before answering/);
  });

  it("fails a call at once whose SSE stream's connection is reset before its answer", async () => {
    const response = await call("sse_reset");
    expect(response.error?.code).toBe(-32015);
    expect(response.error?.message).toMatch(/closed the request's stream before answering/);
  });

  it("fails a call at once whose SSE stream ends with an event id but whose resumption the server refuses", async () => {
    const response = await call("sse_unresumable");
    expect(response.error?.code).toBe(-32015);
    expect(response.error?.message).toMatch(/closed the request's stream before answering/);
  });

  it("keeps serving after such answers", async () => {
    expect((await call("ndjson")).result).toMatchObject({ content: [{ text: "ndjson done" }] });
    expect(wrap.process.exitCode).toBeNull();
  });
});

describe("an HTTP upstream that closes a kept-alive connection as a request goes out on it", () => {
  let server: Server;
  let wrap: Child;
  /** Set to reset the next request that comes on a connection used before (what an idle timeout does at the wrong moment). */
  let resetNext = false;
  let resets = 0;
  let tool: string;
  const used = new WeakSet<object>();

  beforeAll(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      if (resetNext && used.has(req.socket)) {
        resetNext = false;
        resets++;
        req.socket.destroy();
        return;
      }
      used.add(req.socket);
      serveOdd(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    wrap = await wrapUrl(nats.url, "keepalive", `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`);
    // Named by service only while another service has a tool of that name (the odd server's wrap may still be listed).
    tool = await eventually(async () => (await client.toolNames()).find((name) => name === "ndjson" || name === "keepalive__ndjson"));
  });

  afterAll(async () => {
    await wrap?.stop();
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
  });

  it("sends the request again on a new connection, and the call and its upstream session go on", async () => {
    expect((await call(tool)).result).toMatchObject({ content: [{ text: "ndjson done" }] });
    resetNext = true;
    const response = await call(tool);
    expect(resets).toBe(1);
    expect(response.error).toBeUndefined();
    expect(response.result).toMatchObject({ content: [{ text: "ndjson done" }] });
    expect(wrap.stderr.some((line) => line.includes("socket hang up") || line.includes("ECONNRESET"))).toBe(false);
    expect((await call(tool)).result).toMatchObject({ content: [{ text: "ndjson done" }] });
  });
});

describe("a stdio upstream that writes lines that are not JSON-RPC messages", () => {
  let wrap: Child;

  beforeAll(async () => {
    wrap = runDmcp(["wrap", "--name", "oddstdio", "--nats", nats.url, "--heartbeat", "500", "--", process.execPath, ODD_STDIO_BIN]);
    await wrap.waitFor(/executor serving/);
    await eventually(async () => (await client.toolNames()).includes("bad_jsonrpc"));
  });

  afterAll(async () => {
    await wrap?.stop();
  });

  it("fails a call at once whose answer line is JSON but not a JSON-RPC message, showing the line", async () => {
    const response = await call("bad_jsonrpc");
    expect(response.error?.code).toBe(-32603);
    expect(response.error?.message).toMatch(/^the upstream answered tools\/call with a message that is not a JSON-RPC message: starting /);
    expect(response.error?.message).toContain("done, but not as an object");
  });

  it("logs a line that is not JSON and still takes the answer after it", async () => {
    const response = await call("noise_then_answer");
    expect(response.result).toMatchObject({ content: [{ text: "answered after the noise" }] });
    await wrap.waitFor(/"upstream_stdout":"starting \\"odd-stdio: a log line written to stdout by mistake\\"".*the upstream wrote a line that is not JSON/);
  });
});

/**
 * Proves the raw JSON-RPC fixture server (test/support/fixtures/raw-server.ts) works
 * directly with the real SDK client, over stdio and Streamable HTTP, and that
 * its unknown fields really are on the wire.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

import { Client, StreamableHTTPClientTransport, type JSONRPCMessage, type Transport } from "@modelcontextprotocol/client";
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import { startRawServerHttp } from "../support/fixtures/raw-server.js";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const serverJs = path.join(repoRoot, "dist", "test", "support", "fixtures", "raw-server.js");

beforeAll(() => {
  // `npm test` builds before vitest runs; several files compiling into dist/ at once would collide.
  if (!existsSync(serverJs)) throw new Error(`${serverJs} is missing: run \`npm run build\` first`);
});

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

type Json = Record<string, any>;

/** Talks JSON-RPC straight over a client transport, so nothing gets validated or stripped. */
class RawSession {
  private nextId = 1;
  private readonly pending = new Map<number | string, (msg: Json) => void>();
  readonly notifications: Json[] = [];

  constructor(readonly transport: Transport) {
    transport.onmessage = (message: JSONRPCMessage) => {
      const msg = message as Json;
      if ("id" in msg && ("result" in msg || "error" in msg)) {
        this.pending.get(msg.id)?.(msg);
        this.pending.delete(msg.id);
      } else if ("method" in msg && !("id" in msg)) {
        this.notifications.push(msg);
      }
    };
  }

  /** Resolves with the whole raw response message ({result} or {error}). */
  async request(method: string, params?: Json): Promise<Json> {
    const id = this.nextId++;
    const response = new Promise<Json>((resolve) => this.pending.set(id, resolve));
    await this.transport.send({ jsonrpc: "2.0", id, method, ...(params ? { params } : {}) } as JSONRPCMessage);
    return response;
  }

  async notify(method: string): Promise<void> {
    await this.transport.send({ jsonrpc: "2.0", method } as JSONRPCMessage);
  }

  async initialize(protocolVersion = "2025-11-25"): Promise<Json> {
    await this.transport.start();
    const res = await this.request("initialize", {
      protocolVersion,
      capabilities: {},
      clientInfo: { name: "raw-test", version: "1.0.0" },
    });
    await this.notify("notifications/initialized");
    return res;
  }
}

async function waitFor(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error("timed out waiting for condition");
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Spawn the compiled fixture in http mode and wait for its `LISTENING <port>` line on stderr. */
async function spawnHttp(name: string): Promise<{ child: ChildProcess; url: string; stdout: () => string }> {
  const child = spawn(process.execPath, [serverJs, "--http", "0", "--name", name], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    let err = "";
    child.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
      const m = /^LISTENING (\d+)$/m.exec(err);
      if (m) resolve(Number(m[1]));
    });
    child.once("exit", (code) => reject(new Error(`fixture exited early (${code}): ${err}`)));
  });
  return { child, url: `http://127.0.0.1:${port}/mcp`, stdout: () => out };
}

function exitCode(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

// ---------------------------------------------------------------------------
// both transports
// ---------------------------------------------------------------------------

interface Mode {
  label: string;
  name: string;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  transport(): Transport;
}

const httpChild: { child?: ChildProcess; url?: string } = {};

const modes: Mode[] = [
  {
    label: "stdio",
    name: "stdio-fx",
    setup: async () => {},
    teardown: async () => {},
    transport: () => new StdioClientTransport({ command: process.execPath, args: [serverJs, "--stdio", "--name", "stdio-fx"], stderr: "pipe" }),
  },
  {
    label: "http (CLI)",
    name: "http-fx",
    setup: async () => {
      const { child, url } = await spawnHttp("http-fx");
      httpChild.child = child;
      httpChild.url = url;
    },
    teardown: async () => {
      httpChild.child?.kill("SIGTERM");
      if (httpChild.child) await exitCode(httpChild.child);
    },
    transport: () => new StreamableHTTPClientTransport(new URL(httpChild.url!)),
  },
];

describe.each(modes)("raw fixture server over $label", (mode) => {
  const open: Array<{ close(): Promise<void> }> = [];

  beforeAll(() => mode.setup(), 30_000);
  afterAll(() => mode.teardown());
  afterEach(async () => {
    await Promise.allSettled(open.splice(0).map((c) => c.close()));
  });

  async function connectClient(): Promise<Client> {
    const client = new Client({ name: "fixture-test", version: "1.0.0" });
    await client.connect(mode.transport());
    open.push(client);
    return client;
  }

  async function rawSession(): Promise<RawSession> {
    const t = mode.transport();
    open.push(t);
    return new RawSession(t);
  }

  it("initializes and lists tools with the SDK client", async () => {
    const client = await connectClient();
    expect(client.getServerVersion()).toMatchObject({ name: mode.name, version: "1.0.0" });
    expect(client.getServerCapabilities()).toMatchObject({ tools: { listChanged: true }, completions: {}, logging: {} });
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name)).toEqual(expect.arrayContaining(["echo", "add", "whoami", "sleep", "fail", "crash", "big", "add_tool"]));
    await client.ping();
  });

  it("calls tools", async () => {
    const client = await connectClient();
    const echo = await client.callTool({ name: "echo", arguments: { text: "hello" } });
    expect(echo.content).toEqual([{ type: "text", text: "hello" }]);

    const add = await client.callTool({ name: "add", arguments: { a: 2, b: 40 } });
    expect(add.structuredContent).toEqual({ sum: 42 });
    expect(add.content).toEqual([{ type: "text", text: "42" }]);

    const who = await client.callTool({ name: "whoami", arguments: {} });
    expect(who.content).toEqual([{ type: "text", text: expect.stringMatching(new RegExp(`^${mode.name}:\\d+$`)) }]);

    const fail = await client.callTool({ name: "fail", arguments: {} });
    expect(fail.isError).toBe(true);
    expect(fail.content).toEqual([{ type: "text", text: "failed on purpose" }]);

    const slept = await client.callTool({ name: "sleep", arguments: { ms: 30 } });
    expect(slept.content).toEqual([{ type: "text", text: "slept 30" }]);

    const big = await client.callTool({ name: "big", arguments: { bytes: 100_000 } });
    expect((big.content as Array<{ text: string }>)[0]?.text).toBe("x".repeat(100_000));
  });

  it("reports unknown tools and invalid arguments as -32602", async () => {
    const client = await connectClient();
    await expect(client.callTool({ name: "no_such_tool", arguments: {} })).rejects.toMatchObject({
      code: -32602,
      message: expect.stringContaining("Unknown tool: no_such_tool"),
    });
    await expect(client.callTool({ name: "echo", arguments: {} })).rejects.toMatchObject({ code: -32602 });
    await expect(client.callTool({ name: "add", arguments: { a: "x", b: 1 } })).rejects.toMatchObject({ code: -32602 });
  });

  it("serves resources, templates, prompts and completions", async () => {
    const client = await connectClient();
    // no cursor: the SDK walks both pages
    const all = await client.listResources();
    expect(all.resources.map((r) => r.uri)).toEqual([`fixture://${mode.name}/static`, "fixture://shared/readme"]);
    const page2 = await client.listResources({ cursor: "page2" });
    expect(page2.resources.map((r) => r.uri)).toEqual(["fixture://shared/readme"]);
    expect(page2.nextCursor).toBeUndefined();

    const read = await client.readResource({ uri: "fixture://shared/readme" });
    expect(read.contents).toEqual([expect.objectContaining({ text: `readme of ${mode.name}` })]);

    const templates = await client.listResourceTemplates();
    expect(templates.resourceTemplates.map((t) => t.uriTemplate)).toEqual([`fixture://${mode.name}/items/{id}`]);
    const item = await client.readResource({ uri: `fixture://${mode.name}/items/42` });
    expect(item.contents).toEqual([expect.objectContaining({ text: `item 42 of ${mode.name}` })]);
    // (the SDK client re-maps the wire code -32002 to its ResourceNotFoundError; the raw code is checked below)
    await expect(client.readResource({ uri: "fixture://nowhere/x" })).rejects.toThrow(/Resource not found/);

    const prompts = await client.listPrompts();
    expect(prompts.prompts).toEqual([expect.objectContaining({ name: "greet" })]);
    const greet = await client.getPrompt({ name: "greet", arguments: { who: "Ann" } });
    expect(greet.messages).toEqual([{ role: "user", content: { type: "text", text: `Hello, Ann, from ${mode.name}` } }]);
    await expect(client.getPrompt({ name: "nope" })).rejects.toMatchObject({ code: -32602 });

    const c1 = await client.complete({ ref: { type: "ref/prompt", name: "greet" }, argument: { name: "who", value: "al" } });
    expect(c1.completion.values).toEqual(["alice", "albert"]);
    const c2 = await client.complete({
      ref: { type: "ref/resource", uri: `fixture://${mode.name}/items/{id}` },
      argument: { name: "id", value: "4" },
    });
    expect(c2.completion.values).toEqual(["42"]);

    await client.setLoggingLevel("debug");
  });

  it("keeps unknown fields on the wire (raw transport)", async () => {
    const raw = await rawSession();
    const init = await raw.initialize("2025-06-18");
    expect(init.result.protocolVersion).toBe("2025-06-18");
    expect(init.result["x-fixture"]).toEqual({ kept: true });
    expect(init.result.serverInfo).toEqual({ name: mode.name, version: "1.0.0" });

    const echo = await raw.request("tools/call", { name: "echo", arguments: { text: "raw" } });
    expect(echo.result).toEqual({
      content: [{ type: "text", text: "raw" }],
      "x-unknown-result-field": { nested: [1, 2, 3] },
      _meta: { "fixture/echo": true },
    });

    const list = await raw.request("tools/list", {});
    for (const tool of list.result.tools as Json[]) {
      expect(tool["x-extra"]).toBe("tool-extra");
      expect(tool._meta).toEqual({ "fixture/meta": 1 });
      expect(tool.inputSchema.type).toBe("object");
    }

    const unknown = await raw.request("tools/call", { name: "nope", arguments: {} });
    expect(unknown.error).toEqual({ code: -32602, message: "Unknown tool: nope" });

    const noMethod = await raw.request("bogus/method", {});
    expect(noMethod.error).toMatchObject({ code: -32601, message: "Method not found" });

    const notFound = await raw.request("resources/read", { uri: "fixture://nowhere/x" });
    expect(notFound.error).toEqual({ code: -32002, message: "Resource not found", data: { uri: "fixture://nowhere/x" } });

    expect(await raw.request("ping")).toMatchObject({ result: {} });
  });

  it("paginates resources/list", async () => {
    const raw = await rawSession();
    await raw.initialize();
    const p1 = await raw.request("resources/list", {});
    expect(p1.result.resources).toEqual([expect.objectContaining({ uri: `fixture://${mode.name}/static`, "x-extra": "resource-extra" })]);
    expect(p1.result.nextCursor).toBe("page2");
    const p2 = await raw.request("resources/list", { cursor: "page2" });
    expect(p2.result.resources).toEqual([expect.objectContaining({ uri: "fixture://shared/readme", "x-extra": "resource-extra" })]);
    expect(p2.result).not.toHaveProperty("nextCursor");
  });

  it("falls back to 2025-11-25 for an unknown protocol version", async () => {
    const raw = await rawSession();
    const init = await raw.initialize("1999-01-01");
    expect(init.result.protocolVersion).toBe("2025-11-25");
  });

  it("adds dynamic tools and notifies tools/list_changed", async () => {
    const raw = await rawSession();
    await raw.initialize();
    const toolName = `dyn_${mode.label.replace(/\W/g, "")}`;
    const added = await raw.request("tools/call", { name: "add_tool", arguments: { name: toolName } });
    expect(added.result.content).toEqual([{ type: "text", text: "added" }]);
    await waitFor(() => raw.notifications.some((n) => n.method === "notifications/tools/list_changed"));

    const list = await raw.request("tools/list", {});
    expect((list.result.tools as Json[]).map((t) => t.name)).toContain(toolName);
    const called = await raw.request("tools/call", { name: toolName, arguments: { text: "dyn!" } });
    expect(called.result.content).toEqual([{ type: "text", text: "dyn!" }]);
  });
});

// ---------------------------------------------------------------------------
// http specifics
// ---------------------------------------------------------------------------

describe("raw fixture server http specifics", () => {
  it("startRawServerHttp serves in-process, with independent sessions", async () => {
    const server = await startRawServerHttp({ name: "inproc" });
    try {
      expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
      const a = new Client({ name: "a", version: "1" });
      const b = new Client({ name: "b", version: "1" });
      await a.connect(new StreamableHTTPClientTransport(new URL(server.url)));
      await b.connect(new StreamableHTTPClientTransport(new URL(server.url)));
      expect(server.sessionCount()).toBe(2);
      const who = await b.callTool({ name: "whoami", arguments: {} });
      expect(who.content).toEqual([{ type: "text", text: `inproc:${process.pid}` }]);
      await a.close();
      await b.close();
    } finally {
      await server.close();
    }
  });

  it("rejects non-initialize requests without a session and unknown sessions", async () => {
    const server = await startRawServerHttp({});
    try {
      const headers = { "content-type": "application/json", accept: "application/json, text/event-stream" };
      const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: {} });
      const noSession = await fetch(server.url, { method: "POST", headers, body });
      expect(noSession.status).toBe(400);
      const badSession = await fetch(server.url, { method: "POST", headers: { ...headers, "mcp-session-id": "nope" }, body });
      expect(badSession.status).toBe(404);
    } finally {
      await server.close();
    }
  });

  it("in-process crash drops the connection instead of killing the test process", async () => {
    const server = await startRawServerHttp({ name: "crashy" });
    const client = new Client({ name: "c", version: "1" });
    await client.connect(new StreamableHTTPClientTransport(new URL(server.url)));
    await expect(client.callTool({ name: "crash", arguments: {} }, { timeout: 5_000 })).rejects.toBeDefined();
    await expect(fetch(server.url, { method: "POST", body: "{}" })).rejects.toBeDefined();
    await client.close().catch(() => {});
    await server.close();
  });

  it("CLI crash tool exits the process with code 3 and never writes to stdout", async () => {
    const { child, url, stdout } = await spawnHttp("crash-cli");
    const raw = new RawSession(new StreamableHTTPClientTransport(new URL(url)));
    await raw.initialize();
    const exited = exitCode(child);
    void raw.request("tools/call", { name: "crash", arguments: {} }).catch(() => {});
    expect(await exited).toBe(3);
    expect(stdout()).toBe("");
    await raw.transport.close().catch(() => {});
  });
});

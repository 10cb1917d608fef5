/**
 * Upstreams that serve MCP 2026-07-28 only (built on the SDK's stateless handler, refusing initialize)
 * behind `dmcp wrap`, over HTTP and stdio: the executor speaks to them statelessly, 2025-11-25 client
 * sessions get their input_required rounds asked as server-to-client requests (elicitation, sampling,
 * roots, several rounds, signed request state), 2026 clients get the rounds as they are, and a 2025
 * call without a client session to ask gets an error. Real nats-server, gateway, executors.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually, REPO_ROOT, runDmcp, spawnNode, startGatewayHttp, wrapUrl, type Child } from "../support/processes.js";
import { statelessPost } from "../support/stateless-client.js";

const CONFORMANCE_BIN = `${REPO_ROOT}dist/test/support/fixtures/conformance-server.js`;

function textOf(result: unknown): string {
  return ((result as { content: { text?: string }[] }).content ?? []).map((c) => c.text ?? "").join("");
}

/** A 2025-11-25 SDK client that answers elicitation (one field at a time), sampling and roots. */
async function legacyClient(url: string) {
  const client = new Client({ name: "legacy", version: "1.0.0" }, { capabilities: { sampling: {}, elicitation: { form: {} }, roots: { listChanged: true } } });
  const asked: string[] = [];
  client.setRequestHandler("elicitation/create", (request) => {
    asked.push(String(request.params.message));
    const field = Object.keys((request.params as { requestedSchema?: { properties?: Record<string, unknown> } }).requestedSchema?.properties ?? {})[0] ?? "name";
    return { action: "accept", content: { [field]: field === "color" ? "teal" : field === "ok" ? true : "Ada" } };
  });
  client.setRequestHandler("sampling/createMessage", () => ({ role: "assistant", content: { type: "text", text: "Paris" }, model: "test-model" }));
  client.setRequestHandler("roots/list", () => ({ roots: [{ uri: "file:///work/ada", name: "ada" }] }));
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  await eventually(async () => (await client.listTools()).tools.some((tool) => tool.name === "test_input_required_result_multi_round"));
  return { client, asked };
}

function describeUpstream(kind: "http" | "stdio") {
  describe(`an upstream that serves MCP 2026-07-28 only, over ${kind}`, () => {
    let nats: EmbeddedNats;
    let upstream: Child | undefined;
    let executor: Child;
    let gateway: Child & { url: string };

    beforeAll(async () => {
      nats = await startTestNats();
      if (kind === "http") {
        upstream = spawnNode([CONFORMANCE_BIN, "--http", "0", "--modern-only"]);
        const [, port] = await upstream.waitFor(/LISTENING (\d+)/);
        executor = await wrapUrl(nats.url, "modern", `http://127.0.0.1:${port}/mcp`);
      } else {
        executor = runDmcp(["wrap", "--name", "modern", "--nats", nats.url, "--heartbeat", "500", "--", process.execPath, CONFORMANCE_BIN, "--stdio", "--modern-only"]);
        await executor.waitFor(/executor serving/);
      }
      gateway = await startGatewayHttp(nats.url);
      // The executor announces itself once the gateway has made the streams (PROTOCOL.md §4).
      await eventually(async () =>
        ((await statelessPost(gateway.url, "tools/list")).body.result?.tools as { name: string }[] | undefined)?.some(
          (tool) => tool.name === "test_input_required_result_elicitation",
        ),
      );
    });

    afterAll(async () => {
      await Promise.allSettled([gateway?.stop(), executor?.stop(), upstream?.stop()]);
      await nats?.stop();
    });

    it("connects statelessly once the upstream refused initialize", () => {
      expect(executor.stderr.some((line) => line.includes("serves MCP 2026-07-28 only"))).toBe(true);
    });

    it("passes a 2026 client's input_required rounds through as they are", async () => {
      const meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": { name: "modern", version: "1" },
        "io.modelcontextprotocol/clientCapabilities": { elicitation: { form: {} } },
      };
      const call = async (params: Record<string, unknown>) => {
        const response = await fetch(gateway.url, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            accept: "application/json, text/event-stream",
            "mcp-protocol-version": "2026-07-28",
            "mcp-method": "tools/call",
            "mcp-name": "test_input_required_result_elicitation",
          },
          body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "test_input_required_result_elicitation", arguments: {}, ...params, _meta: meta } }),
        });
        const text = await response.text();
        const data =
          text
            .split("\n")
            .filter((line) => line.startsWith("data:"))
            .map((line) => line.slice(5).trim())
            .filter(Boolean)
            .at(-1) ?? text;
        return JSON.parse(data) as { result: Record<string, any> };
      };
      const first = await call({});
      expect(first.result).toMatchObject({ resultType: "input_required", inputRequests: { user_name: { method: "elicitation/create" } } });
      const second = await call({ inputResponses: { user_name: { action: "accept", content: { name: "Grace" } } } });
      expect(second.result).toMatchObject({ resultType: "complete", content: [{ text: "Hello, Grace!" }] });
    });

    it("serves a 2025 client: lists and plain calls", async () => {
      const { client } = await legacyClient(gateway.url);
      try {
        expect(textOf(await client.callTool({ name: "test_simple_text", arguments: {} }))).toBe("This is a simple text response for testing.");
      } finally {
        await client.close();
      }
    });

    it("passes a 2025 client's log level on with each request, and the call's log messages back", async () => {
      const { client } = await legacyClient(gateway.url);
      const logged: string[] = [];
      client.setNotificationHandler("notifications/message", (n) => void logged.push(String(n.params.level)));
      try {
        await client.setLoggingLevel("info");
        expect(textOf(await client.callTool({ name: "test_tool_with_logging", arguments: {} }))).toBe("Logging finished");
        await eventually(() => logged.length >= 3);
        expect(logged).toEqual(["info", "info", "info"]);
      } finally {
        await client.close();
      }
    });

    it("asks a 2025 client the upstream's input requests, round after round, and completes the call", async () => {
      const { client, asked } = await legacyClient(gateway.url);
      try {
        expect(textOf(await client.callTool({ name: "test_input_required_result_elicitation", arguments: {} }))).toBe("Hello, Ada!");
        expect(textOf(await client.callTool({ name: "test_input_required_result_multi_round", arguments: {} }))).toBe("Ada likes teal");
        expect(asked).toEqual(["What is your name?", "Step 1: What is your name?", "Step 2: What is your favorite color?"]);
        // Elicitation, sampling and roots asked in one round.
        expect(textOf(await client.callTool({ name: "test_input_required_result_multiple_inputs", arguments: {} }))).toBe("Paris Ada (1 roots)");
        expect(textOf(await client.callTool({ name: "test_input_required_result_request_state", arguments: {} }))).toBe("state-ok: confirmed=true");
      } finally {
        await client.close();
      }
    });
  });
}

describeUpstream("http");
describeUpstream("stdio");

describe("a 2025 call without a client session to ask (dmcp wrap --max-sessions 0)", () => {
  let nats: EmbeddedNats;
  let upstream: Child;
  let executor: Child;
  let gateway: Child & { url: string };

  beforeAll(async () => {
    nats = await startTestNats();
    upstream = spawnNode([CONFORMANCE_BIN, "--http", "0", "--modern-only"]);
    const [, port] = await upstream.waitFor(/LISTENING (\d+)/);
    executor = await wrapUrl(nats.url, "modern", `http://127.0.0.1:${port}/mcp`, ["--max-sessions", "0"]);
    gateway = await startGatewayHttp(nats.url);
  });

  afterAll(async () => {
    await Promise.allSettled([gateway?.stop(), executor?.stop(), upstream?.stop()]);
    await nats?.stop();
  });

  it("gets the upstream's refusal to ask as an error, not an input_required result it cannot read", async () => {
    const { client } = await legacyClient(gateway.url);
    try {
      // The call declares no capabilities there: the upstream refuses to ask (-32021), which the client sees.
      const refused = await client.callTool({ name: "test_input_required_result_elicitation", arguments: {} }).then(
        () => "answered",
        (err: Error) => err.message,
      );
      expect(refused).toMatch(/Cannot request input .user_name./);
      expect(textOf(await client.callTool({ name: "test_simple_text", arguments: {} }))).toBe("This is a simple text response for testing.");
    } finally {
      await client.close();
    }
  });
});

/**
 * A bare 2026-07-28-only server (no SDK): it refuses initialize, answers server/discover, lists one
 * tool, and answers every call of it with input_required whatever the request declares, until the
 * retry brings the answer.
 */
async function startAskingServer(): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk: Buffer) => (body += chunk.toString()));
    req.on("end", () => {
      const message = JSON.parse(body || "{}") as { id?: number; method?: string; params?: Record<string, any> };
      const reply = (payload: Record<string, unknown>, status = 200) =>
        res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", id: message.id ?? null, ...payload }));
      if (message.id === undefined) return void res.writeHead(202).end();
      switch (message.method) {
        case "initialize":
          return reply({ error: { code: -32022, message: "Unsupported protocol version: 2025-11-25", data: { supported: ["2026-07-28"] } } }, 400);
        case "server/discover":
          return reply({
            result: { supportedVersions: ["2026-07-28"], capabilities: { tools: {} }, _meta: { "io.modelcontextprotocol/serverInfo": { name: "asking", version: "1" } } },
          });
        case "tools/list":
          return reply({ result: { tools: [{ name: "ask", inputSchema: { type: "object" } }], resultType: "complete" } });
        case "tools/call": {
          const answer = message.params?.inputResponses?.who?.content?.name;
          if (typeof answer === "string") return reply({ result: { content: [{ type: "text", text: `hello ${answer}` }], resultType: "complete" } });
          return reply({
            result: {
              resultType: "input_required",
              inputRequests: { who: { method: "elicitation/create", params: { message: "Who?", requestedSchema: { type: "object", properties: { name: { type: "string" } } } } } },
              requestState: "round-1",
            },
          });
        }
        default:
          return reply({ error: { code: -32601, message: "Method not found" } });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, server };
}

describe("an upstream that asks for input whatever the request declares", () => {
  let nats: EmbeddedNats;
  let upstream: { url: string; server: Server };
  let sessions: Child;
  let shared: Child;
  let gateways: (Child & { url: string })[] = [];

  beforeAll(async () => {
    upstream = await startAskingServer();
    nats = await startTestNats();
    sessions = await wrapUrl(nats.url, "asking", upstream.url);
    shared = await wrapUrl(nats.url, "asking-shared", upstream.url, ["--max-sessions", "0"]);
    gateways = [await startGatewayHttp(nats.url)];
  });

  afterAll(async () => {
    await Promise.allSettled([...gateways.map((g) => g.stop()), sessions?.stop(), shared?.stop()]);
    await nats?.stop();
    upstream?.server.close();
  });

  async function client() {
    const sdk = new Client({ name: "legacy", version: "1.0.0" }, { capabilities: { elicitation: { form: {} } } });
    sdk.setRequestHandler("elicitation/create", () => ({ action: "accept", content: { name: "Ada" } }));
    await sdk.connect(new StreamableHTTPClientTransport(new URL(gateways[0]!.url)));
    await eventually(async () => (await sdk.listTools()).tools.filter((tool) => tool.name.endsWith("ask")).length === 2);
    return sdk;
  }

  it("asks a 2025 client session, and tells a call without one that it cannot", async () => {
    const sdk = await client();
    try {
      expect(textOf(await sdk.callTool({ name: "asking__ask", arguments: {} }))).toBe("hello Ada");
      await expect(sdk.callTool({ name: "asking-shared__ask", arguments: {} })).rejects.toThrow(/needs input from the client.*without a client session/);
    } finally {
      await sdk.close();
    }
  });
});

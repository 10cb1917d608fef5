/**
 * The contract every adapter keeps: one suite, run for each pair of an inbound adapter (how a client
 * reaches the gateway) and an outbound adapter (how an executor reaches its MCP server). A real MCP
 * client, a real `dmcp gateway`, a real nats-server, a real `dmcp wrap` and a real MCP server, each in
 * its own process. A new adapter is one entry in INBOUND or OUTBOUND; a rule that a wire does not
 * have is skipped for it by name.
 */
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gatewayTransport, RawMcpClient } from "../support/mcp-client.js";
import { type EmbeddedNats, startTestNats } from "../support/nats.js";
import { type Child, eventually, startFixtureHttp, startGatewayHttp, wrapFixtureStdio, wrapUrl } from "../support/processes.js";
import { STATELESS_VERSION, statelessPost } from "../support/stateless-client.js";

const SERVICE = "fixture";

interface RpcResponse {
  result?: Record<string, unknown>;
  error?: { code: number; message: string; data?: unknown };
}

/** What the suite asks of a client, whatever the wire. */
interface ContractClient {
  request(method: string, params?: Record<string, unknown>): Promise<RpcResponse>;
  result(method: string, params?: Record<string, unknown>): Promise<Record<string, unknown>>;
  toolNames(): Promise<string[]>;
  close(): Promise<void>;
  /** The session client, on the wires that have sessions (notifications, older revisions). */
  session?: RawMcpClient;
}

interface Gateway {
  natsUrl: string;
  httpUrl: string;
}

interface InboundAdapter {
  name: string;
  /** Connects a client on this wire; a session wire initializes with `revision` (its newest by default). */
  connect(gateway: Gateway, revision?: string): Promise<ContractClient>;
  /** The fields this wire adds to a completed tools/call result. */
  completedCall: Record<string, unknown>;
  /** The code of an unknown resource on this wire. */
  unknownResourceCode: number;
  /** A session wire (initialize, notifications, older revisions); the 2026-07-28 wire has none. */
  sessions: boolean;
}

interface OutboundAdapter {
  name: string;
  /** Starts the upstream and the `dmcp wrap` that serves it as `service`; returns what to stop. */
  start(natsUrl: string, service: string): Promise<Child[]>;
}

function sessionClient(client: RawMcpClient): ContractClient {
  return {
    request: (method, params) => client.request(method, params),
    result: (method, params) => client.result(method, params),
    toolNames: () => client.toolNames(),
    close: () => client.close(),
    session: client,
  };
}

/** A 2026-07-28 client: no session, one POST per request with the revision's headers and `_meta`. */
function statelessClient(url: string): ContractClient {
  const request = async (method: string, params: Record<string, unknown> = {}) => (await statelessPost(url, method, params)).body as RpcResponse;
  const result = async (method: string, params?: Record<string, unknown>) => {
    const response = await request(method, params);
    if (response.error) throw Object.assign(new Error(response.error.message), { rpc: response.error });
    return response.result!;
  };
  return {
    request,
    result,
    toolNames: async () => ((await result("tools/list")).tools as { name: string }[]).map((tool) => tool.name).sort(),
    close: async () => undefined,
  };
}

const INBOUND: InboundAdapter[] = [
  {
    name: "stdio",
    connect: async (gateway, revision) => sessionClient(await RawMcpClient.connect(gatewayTransport("stdio", gateway), revision)),
    completedCall: {},
    unknownResourceCode: -32002,
    sessions: true,
  },
  {
    name: "Streamable HTTP, 2025-11-25",
    connect: async (gateway, revision) => sessionClient(await RawMcpClient.connect(gatewayTransport("http", gateway), revision)),
    completedCall: {},
    unknownResourceCode: -32002,
    sessions: true,
  },
  {
    name: `Streamable HTTP, ${STATELESS_VERSION}`,
    connect: async (gateway) => statelessClient(gateway.httpUrl),
    completedCall: { resultType: "complete" },
    unknownResourceCode: -32602,
    sessions: false,
  },
];

const OUTBOUND: OutboundAdapter[] = [
  {
    name: "stdio child",
    start: async (natsUrl, service) => [await wrapFixtureStdio(natsUrl, service)],
  },
  {
    name: "remote HTTP",
    start: async (natsUrl, service) => {
      const upstream = await startFixtureHttp(service);
      return [await wrapUrl(natsUrl, service, upstream.url), upstream];
    },
  },
];

describe.each(OUTBOUND)("outbound $name", (outbound) => {
  let nats: EmbeddedNats;
  let children: Child[] = [];
  let gateway: Child & { url: string };

  beforeAll(async () => {
    nats = await startTestNats();
    children = await outbound.start(nats.url, SERVICE);
    gateway = await startGatewayHttp(nats.url);
  });

  afterAll(async () => {
    await Promise.allSettled([gateway?.stop(), ...children.map((child) => child.stop())]);
    await nats?.stop();
  });

  describe.each(INBOUND)("inbound $name", (inbound) => {
    let client: ContractClient;

    beforeAll(async () => {
      client = await inbound.connect({ natsUrl: nats.url, httpUrl: gateway.url });
      await eventually(async () => (await client.toolNames()).includes("echo"));
    });

    afterAll(async () => {
      await client?.close();
    });

    it("lists the service's tools with their names, schemas and unknown fields unchanged", async () => {
      const { tools } = (await client.result("tools/list")) as { tools: Record<string, unknown>[] };
      const echo = tools.find((tool) => tool.name === "echo");
      expect(echo).toBeDefined();
      expect(echo!["x-extra"]).toBe("tool-extra");
      expect(echo!._meta).toEqual({ "fixture/meta": 1 });
      expect(echo!.inputSchema).toMatchObject({ type: "object", properties: { text: { type: "string" } } });
      expect(tools.map((tool) => tool.name)).toEqual(expect.arrayContaining(["echo", "add", "whoami", "sleep", "fail", "big"]));
    });

    it("calls a tool and returns the upstream result field for field", async () => {
      const result = await client.result("tools/call", { name: "echo", arguments: { text: `hello over ${inbound.name}` } });
      expect(result).toEqual({
        content: [{ type: "text", text: `hello over ${inbound.name}` }],
        "x-unknown-result-field": { nested: [1, 2, 3] },
        _meta: { "fixture/echo": true },
        ...inbound.completedCall,
      });
    });

    it("passes structured content and tool errors through as results", async () => {
      const sum = await client.result("tools/call", { name: "add", arguments: { a: 2, b: 40 } });
      expect(sum.structuredContent).toEqual({ sum: 42 });
      const failed = await client.result("tools/call", { name: "fail", arguments: {} });
      expect(failed).toMatchObject({ isError: true, content: [{ type: "text", text: "failed on purpose" }] });
    });

    it("answers an unknown tool with a clear MCP error and keeps serving", async () => {
      const response = await client.request("tools/call", { name: "no_such_tool", arguments: {} });
      expect(response.error).toMatchObject({ code: -32602, message: "Unknown tool: no_such_tool" });
      expect(await client.toolNames()).toContain("echo");
    });

    it("passes the upstream's own JSON-RPC errors through unchanged", async () => {
      const response = await client.request("tools/call", { name: "add", arguments: { a: "two" } });
      expect(response.error?.code).toBe(-32602);
      expect(response.error?.message).toMatch(/a|b/);
    });

    it("answers an unknown method with method-not-found", async () => {
      const response = await client.request("no/such/method", {});
      expect(response.error?.code).toBe(-32601);
    });

    it("lists every resource page, templates and prompts, and reads, gets and completes through the bus", async () => {
      const { resources } = (await client.result("resources/list")) as { resources: { uri: string }[] };
      expect(resources.map((r) => r.uri).sort()).toEqual([`fixture://${SERVICE}/static`, "fixture://shared/readme"]);
      const { resourceTemplates } = (await client.result("resources/templates/list")) as { resourceTemplates: { uriTemplate: string }[] };
      expect(resourceTemplates.map((t) => t.uriTemplate)).toEqual([`fixture://${SERVICE}/items/{id}`]);

      const item = (await client.result("resources/read", { uri: `fixture://${SERVICE}/items/42` })) as { contents: { text: string }[] };
      expect(item.contents[0]!.text).toBe(`item 42 of ${SERVICE}`);
      const missing = await client.request("resources/read", { uri: `fixture://${SERVICE}/nothing` });
      expect(missing.error?.code).toBe(inbound.unknownResourceCode);

      const { prompts } = (await client.result("prompts/list")) as { prompts: { name: string }[] };
      expect(prompts.map((p) => p.name)).toEqual(["greet"]);
      const greeting = (await client.result("prompts/get", { name: "greet", arguments: { who: "Ada" } })) as {
        messages: { content: { text: string } }[];
      };
      expect(greeting.messages[0]!.content.text).toBe(`Hello, Ada, from ${SERVICE}`);

      const completion = (await client.result("completion/complete", {
        ref: { type: "ref/prompt", name: "greet" },
        argument: { name: "who", value: "al" },
      })) as { completion: { values: string[] } };
      expect(completion.completion.values).toEqual(["alice", "albert"]);
      const templateCompletion = (await client.result("completion/complete", {
        ref: { type: "ref/resource", uri: `fixture://${SERVICE}/items/{id}` },
        argument: { name: "id", value: "4" },
      })) as { completion: { values: string[] } };
      expect(templateCompletion.completion.values).toEqual(["42"]);
    });

    it.skipIf(!inbound.sessions)("tells connected clients when the upstream's tool list changes (session wires)", async () => {
      const session = client.session!;
      const name = `dynamic_${inbound.name.replace(/\W+/g, "_")}`;
      const since = session.notifications.length;
      await session.result("tools/call", { name: "add_tool", arguments: { name } });
      await session.waitForNotification("notifications/tools/list_changed", 15_000, since);
      await eventually(async () => (await session.toolNames()).includes(name));
      const result = await session.result("tools/call", { name, arguments: { text: "new" } });
      expect(JSON.stringify(result)).toContain("new");
    });

    it.skipIf(!inbound.sessions)("serves 2025-06-18, 2025-03-26 and 2024-11-05 clients too (session wires)", async () => {
      for (const version of ["2025-06-18", "2025-03-26", "2024-11-05"]) {
        const older = await inbound.connect({ natsUrl: nats.url, httpUrl: gateway.url }, version);
        try {
          const result = await older.result("tools/call", { name: "whoami", arguments: {} });
          expect(JSON.stringify(result)).toContain(`${SERVICE}:`);
        } finally {
          await older.close();
        }
      }
    });
  });

  it("works with the SDK's high-level Client as well", async () => {
    const client = new Client({ name: "sdk-client", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(gateway.url)));
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toContain("add");
      const result = await client.callTool({ name: "add", arguments: { a: 1, b: 2 } });
      expect(result.structuredContent).toEqual({ sum: 3 });
    } finally {
      await client.close();
    }
  });
});

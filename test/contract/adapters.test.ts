/**
 * The bridge end to end, one shared suite for every combination of inbound transport (stdio, HTTP)
 * and outbound kind (stdio child, remote HTTP server): a real MCP client, a real `dmcp gateway`, a
 * real nats-server, a real `dmcp wrap` and a real MCP server, each in its own process.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { gatewayTransport, RawMcpClient, type Inbound } from "../support/mcp-client.js";
import { eventually, startFixtureHttp, startGatewayHttp, wrapFixtureStdio, wrapUrl, type Child } from "../support/processes.js";

const SERVICE = "fixture";

describe.each(["stdio", "http"] as const)("outbound %s", (outbound) => {
  let nats: EmbeddedNats;
  let upstream: (Child & { url: string }) | undefined;
  let executor: Child;
  let gateway: Child & { url: string };

  beforeAll(async () => {
    nats = await startTestNats();
    if (outbound === "stdio") {
      executor = await wrapFixtureStdio(nats.url, SERVICE);
    } else {
      upstream = await startFixtureHttp(SERVICE);
      executor = await wrapUrl(nats.url, SERVICE, upstream.url);
    }
    gateway = await startGatewayHttp(nats.url);
  });

  afterAll(async () => {
    await Promise.allSettled([gateway?.stop(), executor?.stop(), upstream?.stop()]);
    await nats?.stop();
  });

  describe.each(["stdio", "http"] as const)("inbound %s", (inbound: Inbound) => {
    let client: RawMcpClient;

    beforeAll(async () => {
      client = await RawMcpClient.connect(gatewayTransport(inbound, { natsUrl: nats.url, httpUrl: gateway.url }));
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
      const result = await client.result("tools/call", { name: "echo", arguments: { text: `hello over ${inbound}` } });
      expect(result).toEqual({
        content: [{ type: "text", text: `hello over ${inbound}` }],
        "x-unknown-result-field": { nested: [1, 2, 3] },
        _meta: { "fixture/echo": true },
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
      expect((await client.result("ping")) ?? {}).toEqual({});
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
      expect(missing.error?.code).toBe(-32002);

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

    it("tells connected clients when the upstream's tool list changes", async () => {
      const name = `dynamic_${inbound}`;
      const since = client.notifications.length;
      await client.result("tools/call", { name: "add_tool", arguments: { name } });
      await client.waitForNotification("notifications/tools/list_changed", 15_000, since);
      await eventually(async () => (await client.toolNames()).includes(name));
      const result = await client.result("tools/call", { name, arguments: { text: "new" } });
      expect(JSON.stringify(result)).toContain("new");
    });

    it("serves 2025-06-18, 2025-03-26 and 2024-11-05 clients too", async () => {
      for (const version of ["2025-06-18", "2025-03-26", "2024-11-05"]) {
        const older = await RawMcpClient.connect(gatewayTransport(inbound, { natsUrl: nats.url, httpUrl: gateway.url }), version);
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

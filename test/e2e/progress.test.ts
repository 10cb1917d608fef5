/**
 * Progress through the bus: the upstream's notifications/progress reach the client that made the
 * call, on the call's own stream, in order, before the result; tokens are re-tagged per hop so that
 * equal tokens of different clients never cross.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import * as z from "zod";
import { Agent } from "../../src/agent/index.js";
import { connectBus } from "../../src/bus/index.js";
import { silentLogger } from "../../src/util/logger.js";
import type { EmbeddedNats } from "../support/nats.js";
import { gatewayTransport, RawMcpClient, type Inbound } from "../support/mcp-client.js";
import { eventually, type Child } from "../support/processes.js";
import { startWorld, type World } from "../support/world.js";

describe("progress notifications", () => {
  let world: World;
  let nats: EmbeddedNats;
  let gateway: Child & { url: string };

  beforeAll(async () => {
    world = await startWorld({ services: { stepper: [] }, client: false });
    ({ nats, gateway } = world);
  });

  afterAll(() => world?.dispose());

  async function connect(inbound: Inbound): Promise<RawMcpClient> {
    const client = await RawMcpClient.connect(gatewayTransport(inbound, { natsUrl: nats.url, httpUrl: gateway.url }));
    await eventually(async () => (await client.toolNames()).includes("progress"));
    return client;
  }

  /** Calls `progress` and returns the notifications that had arrived when the result did. */
  async function callWithProgress(client: RawMcpClient, token: string | number, steps: number) {
    const before = client.notifications.length;
    const response = await client.request("tools/call", { name: "progress", arguments: { steps }, _meta: { progressToken: token } });
    expect(response.result).toMatchObject({ content: [{ text: `done after ${steps} steps` }] });
    return client.notifications
      .slice(before)
      .filter((n) => n.method === "notifications/progress")
      .map((n) => n.params);
  }

  it.each(["stdio", "http"] as const)("delivers them in order before the result, over %s, with the client's own token", async (inbound) => {
    const client = await connect(inbound);
    try {
      const progress = await callWithProgress(client, `tok-${inbound}`, 3);
      expect(progress).toEqual([1, 2, 3].map((step) => ({ progressToken: `tok-${inbound}`, progress: step, total: 3, message: `step ${step}` })));
    } finally {
      await client.close();
    }
  });

  it("keeps equal tokens of two clients apart", async () => {
    const [a, b] = await Promise.all([connect("http"), connect("http")]);
    try {
      const [fromA, fromB] = await Promise.all([callWithProgress(a, 7, 2), callWithProgress(b, 7, 5)]);
      expect(fromA.map((p) => p!.progress)).toEqual([1, 2]);
      expect(fromB.map((p) => p!.progress)).toEqual([1, 2, 3, 4, 5]);
      expect([...fromA, ...fromB].every((p) => p!.progressToken === 7)).toBe(true);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it("works with the SDK client's onprogress", async () => {
    const client = new Client({ name: "progress-test", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(gateway.url)));
    try {
      const seen: number[] = [];
      const result = await client.callTool({ name: "progress", arguments: { steps: 4 } }, { onprogress: (p) => void seen.push(p.progress) });
      expect(seen).toEqual([1, 2, 3, 4]);
      expect(result.content).toEqual([{ type: "text", text: "done after 4 steps" }]);
    } finally {
      await client.close();
    }
  });

  it("sends none when the client asked for none", async () => {
    const client = await connect("http");
    try {
      const before = client.notifications.length;
      await client.result("tools/call", { name: "progress", arguments: { steps: 3 } });
      expect(client.notifications.slice(before).some((n) => n.method === "notifications/progress")).toBe(false);
    } finally {
      await client.close();
    }
  });

  it("carries a native agent's reportProgress to the client", async () => {
    const bus = await connectBus({ servers: nats.url, name: "progress-agent", logger: silentLogger() });
    const agent = new Agent({ bus, name: "counter", version: "1.0.0", logger: silentLogger() });
    agent.tool("count", { description: "counts to n", input: z.object({ n: z.number().int() }) }, ({ n }, ctx) => {
      for (let i = 1; i <= n; i++) ctx.reportProgress(i, n, `counted ${i}`);
      return `counted to ${n}`;
    });
    await agent.start();
    const client = await connect("http");
    try {
      await eventually(async () => (await client.toolNames()).includes("count"));
      const before = client.notifications.length;
      await client.result("tools/call", { name: "count", arguments: { n: 3 }, _meta: { progressToken: "agent-tok" } });
      const progress = client.notifications
        .slice(before)
        .filter((n) => n.method === "notifications/progress")
        .map((n) => n.params);
      expect(progress).toEqual([1, 2, 3].map((i) => ({ progressToken: "agent-tok", progress: i, total: 3, message: `counted ${i}` })));
    } finally {
      await client.close();
      await agent.stop();
      await bus.drain();
    }
  });
});

/**
 * Context topics through the gateway: listed and read as resources, subscribed to, published and
 * replayed with the gateway's own tools; and announcements with invalid tools are dropped and reported.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { ContextStreams, connectBus, InstancePresence, type Bus } from "../../src/bus/index.js";
import { CONTEXT_STREAM, decodeEnvelope, ErrorCode, subjects, type AgentProfile } from "../../src/protocol/index.js";
import { silentLogger } from "../../src/util/logger.js";
import { connectRawNats, startTestNats, type EmbeddedNats } from "../support/nats.js";
import { gatewayTransport, RawMcpClient } from "../support/mcp-client.js";
import { eventually, startGatewayHttp, type Child } from "../support/processes.js";
import { startWorld, type World } from "../support/world.js";

describe("context topics through the gateway", () => {
  let nats: EmbeddedNats;
  let bus: Bus;
  let streams: ContextStreams;
  let gateway: Child & { url: string };
  let client: RawMcpClient;

  beforeAll(async () => {
    nats = await startTestNats();
    bus = await connectBus({ servers: nats.url, name: "context-gateway-test", logger: silentLogger() });
    streams = new ContextStreams(bus, "sensor-test");
    await streams.ensureStream();
    await streams.publish("plant.pressure", { bar: 7.5 });
    gateway = await startGatewayHttp(nats.url, ["--context-max-age", "2d", "--context-max-per-topic", "500"]);
    client = await RawMcpClient.connect(gatewayTransport("http", { natsUrl: nats.url, httpUrl: gateway.url }));
  });

  afterAll(async () => {
    await client?.close();
    await gateway?.stop();
    await bus?.drain();
    await nats?.stop();
  });

  it("sets the retention it was given on the stream", async () => {
    const raw = await connectRawNats(nats.url);
    const info = await (await jetstreamManager(raw)).streams.info(CONTEXT_STREAM);
    await raw.drain();
    expect(info.config.max_msgs_per_subject).toBe(500);
    expect(info.config.max_age).toBe(2 * 24 * 3600 * 1000 * 1_000_000);
  });

  it("lists existing topics as resources and reads their latest value", async () => {
    const { resources } = (await client.result("resources/list")) as { resources: { uri: string; mimeType: string }[] };
    expect(resources).toContainEqual(expect.objectContaining({ uri: "dmcp://context/plant.pressure", mimeType: "application/json" }));
    const read = (await client.result("resources/read", { uri: "dmcp://context/plant.pressure" })) as {
      contents: { text: string; _meta: Record<string, unknown> }[];
    };
    expect(JSON.parse(read.contents[0]!.text)).toEqual({ bar: 7.5 });
    expect(read.contents[0]!._meta["io.dmcp/sender"]).toBe("sensor-test");
    const missing = await client.request("resources/read", { uri: "dmcp://context/plant.nothing" });
    expect(missing.error?.code).toBe(-32002);
  });

  it("announces new topics with list_changed and sends updates to subscribers only", async () => {
    const since = client.notifications.length;
    await streams.publish("plant.temperature", { c: 80 });
    await client.waitForNotification("notifications/resources/list_changed", 10_000, since);
    const other = await RawMcpClient.connect(gatewayTransport("http", { natsUrl: nats.url, httpUrl: gateway.url }));
    try {
      expect(await client.result("resources/subscribe", { uri: "dmcp://context/plant.temperature" })).toEqual({});
      const before = client.notifications.length;
      await streams.publish("plant.temperature", { c: 95 });
      await client.waitForNotification("notifications/resources/updated", 10_000, before);
      expect(client.notifications.slice(before).find((n) => n.method === "notifications/resources/updated")?.params).toEqual({
        uri: "dmcp://context/plant.temperature",
      });
      expect(other.notifications.some((n) => n.method === "notifications/resources/updated")).toBe(false);
      expect(await client.result("resources/unsubscribe", { uri: "dmcp://context/plant.temperature" })).toEqual({});
      const after = client.notifications.length;
      await streams.publish("plant.temperature", { c: 60 });
      // A quiet moment, then the notifications again: no event can say that nothing was sent.
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(client.notifications.slice(after).some((n) => n.method === "notifications/resources/updated")).toBe(false);
    } finally {
      await other.close();
    }
  });

  it("refuses subscriptions to resources that no service offers, clearly", async () => {
    // Resources of wrapped servers are subscribed to in the client's upstream session (docs/sessions-and-tasks.md "Client sessions").
    const response = await client.request("resources/subscribe", { uri: "file:///etc/hosts" });
    expect(response.error?.code).toBe(-32002);
    expect(response.error?.message).toMatch(/Resource not found: file:\/\/\/etc\/hosts/);
  });

  it("publishes with dmcp_publish_context and replays in order with dmcp_context_history", async () => {
    const seqs: number[] = [];
    for (const n of [1, 2, 3]) {
      const result = (await client.result("tools/call", { name: "dmcp_publish_context", arguments: { topic: "orders.new", data: { n } } })) as {
        structuredContent: { seq: number };
      };
      seqs.push(result.structuredContent.seq);
    }
    const all = (await client.result("tools/call", { name: "dmcp_context_history", arguments: { topic: "orders.new" } })) as {
      structuredContent: { updates: { seq: number; data: unknown }[] };
    };
    expect(all.structuredContent.updates.map((u) => u.data)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
    const fromSecond = (await client.result("tools/call", { name: "dmcp_context_history", arguments: { topic: "orders.new", from_seq: seqs[1] } })) as {
      structuredContent: { updates: { seq: number }[] };
    };
    expect(fromSecond.structuredContent.updates.map((u) => u.seq)).toEqual([seqs[1], seqs[2]]);
    const latest = (await streams.latest("orders.new"))!;
    expect(latest.envelope.payload.data).toEqual({ n: 3 });
  });

  it("answers bad arguments of its own tools with a tool result that says what is wrong (isError)", async () => {
    const bad = [
      ["dmcp_publish_context", { topic: "bad topic!", data: 1 }, /^Invalid arguments: topic must be/],
      ["dmcp_publish_context", { topic: "ok" }, /^Invalid arguments: data is required/],
      ["dmcp_context_history", { topic: "ok", limit: 0 }, /^Invalid arguments: limit must be/],
    ] as const;
    for (const [name, args, text] of bad) {
      const response = await client.request("tools/call", { name, arguments: args });
      expect(response.error).toBeUndefined();
      expect(response.result).toMatchObject({ isError: true, content: [{ type: "text", text: expect.stringMatching(text) }] });
    }
  });

  it("skips a malformed update on a topic and keeps serving the topic", async () => {
    bus.publish(subjects.context("orders.new"), new TextEncoder().encode("garbage"));
    await bus.flush();
    await streams.publish("orders.new", { n: 4 });
    const all = (await client.result("tools/call", { name: "dmcp_context_history", arguments: { topic: "orders.new" } })) as {
      structuredContent: { updates: { data: unknown }[] };
    };
    expect(all.structuredContent.updates.map((u) => u.data)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }]);
  });
});

describe("announcements with invalid tools", () => {
  let world: World;
  let nats: EmbeddedNats;
  let bus: Bus;
  let raw: NatsConnection;
  let client: RawMcpClient;

  beforeAll(async () => {
    world = await startWorld();
    ({ nats, client } = world);
    bus = await connectBus({ servers: nats.url, name: "invalid-announce-test", logger: silentLogger() });
    raw = await connect({ servers: nats.url });
  });

  afterAll(async () => {
    await raw?.close();
    await bus?.drain();
    await world?.dispose();
  });

  it("lists the valid tools, drops the invalid ones and reports them as error_notification", async () => {
    const reports = raw.subscribe(subjects.errorsAll(), { max: 1 });
    const presence = new InstancePresence(bus, { service: "sloppy", instance: "sloppy-1", intervalMs: 500, load: () => ({ status: "ready", inflight: 0, handled: 0 }) });
    await presence.start({
      capabilities: { tools: {} },
      catalog: {
        tools: [{ name: "good", inputSchema: { type: "object" } }, { name: "no_schema" }, { name: "array_schema", inputSchema: { type: "array" } }],
        resources: [],
        resource_templates: [],
        prompts: [],
      },
    });
    try {
      await eventually(async () => (await client.toolNames()).includes("good"));
      const names = await client.toolNames();
      expect(names).not.toContain("no_schema");
      expect(names).not.toContain("array_schema");
      for await (const msg of reports) {
        const decoded = decodeEnvelope(msg.data);
        expect(decoded.ok && decoded.envelope.type === "error_notification" && decoded.envelope.payload).toMatchObject({
          code: ErrorCode.InvalidEnvelope,
          message: expect.stringMatching(/sloppy/),
        });
      }
    } finally {
      await presence.stop();
    }
  });

  it("does not list an instance whose profile is invalid, and reports why", async () => {
    const reports = raw.subscribe(subjects.errorsAll());
    const presence = new InstancePresence(bus, { service: "profiled", instance: "profiled-1", intervalMs: 500, load: () => ({ status: "ready", inflight: 0, handled: 0 }) });
    // A profile without version and with a topic that is no topic: the announcement fails validation.
    await presence.start({
      capabilities: { tools: {} },
      catalog: { tools: [{ name: "profiled_tool", inputSchema: { type: "object" } }], resources: [], resource_templates: [], prompts: [] },
      profile: { id: "p", name: "profiled", publishes: ["not a topic"] } as unknown as AgentProfile,
    });
    try {
      for await (const msg of reports) {
        const decoded = decodeEnvelope(msg.data);
        if (!decoded.ok || decoded.envelope.type !== "error_notification" || !decoded.envelope.payload.message.includes("profiled")) continue;
        expect(decoded.envelope.payload.message).toMatch(/profile\.version/);
        expect(decoded.envelope.payload.message).toMatch(/profile\.publishes\.0/);
        break;
      }
      expect(await client.toolNames()).not.toContain("profiled_tool");
    } finally {
      reports.unsubscribe();
      await presence.stop();
    }
  });
});

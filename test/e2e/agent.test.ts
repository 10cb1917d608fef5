/**
 * The agent SDK against the real thing: a nats-server, a `dmcp gateway` and a wrapped MCP server as
 * child processes, agents in this process and in a child process. Agents' tools appear at the gateway
 * next to wrapped servers' tools, their calls are validated and answered, they leave the gateway's
 * list when they stop or die, and they talk to each other through context topics and tool calls.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import * as z from "zod";
import { Agent, AgentDeclarationError, AgentStateError, type ContextEvent } from "../../src/agent/index.js";
import { connectBus, Requester, type Bus } from "../../src/bus/index.js";
import {
  createEnvelope,
  decodeEnvelope,
  DmcpError,
  encodeEnvelope,
  ErrorCode,
  REGISTRY_BUCKET,
  registryKey,
  RequestError,
  subjects,
  type Envelope,
} from "../../src/protocol/index.js";
import { silentLogger } from "../../src/util/logger.js";
import { RawMcpClient } from "../support/mcp-client.js";
import { connectRawNats, startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually, REPO_ROOT, sleep, spawnNode, startGatewayHttp, wrapFixtureStdio, type Child } from "../support/processes.js";

const SDK_AGENT_BIN = `${REPO_ROOT}dist/test/support/fixtures/sdk-agent.js`;

const PlanInput = z.object({
  anomaly: z.string().min(1).describe("what was detected"),
  severity: z.number().int().min(1).max(5).default(3),
  location: z.object({ unit: z.string() }).optional(),
});

type Tool = { name: string; description?: string; title?: string; inputSchema: Record<string, unknown>; annotations?: Record<string, unknown> };
type CallResult = { content: { type: string; text: string }[]; structuredContent?: unknown; isError?: boolean };

function dataOf(events: ContextEvent[]): unknown[] {
  return events.map((event) => event.data);
}

describe("native dMCP agents", () => {
  let nats: EmbeddedNats;
  let bus: Bus;
  let rawBus: Bus;
  let rawNc: NatsConnection;
  let caller: Requester;
  let fixture: Child;
  let gateway: Child & { url: string };
  let client: RawMcpClient;
  let planner: Agent;
  const agents: Agent[] = [];
  const children: Child[] = [];

  function agent(name: string, extra: Partial<ConstructorParameters<typeof Agent>[0]> = {}): Agent {
    const created = new Agent({ bus, name, version: "1.0.0", logger: silentLogger(), heartbeatMs: 500, ...extra });
    agents.push(created);
    return created;
  }

  async function listedTools(): Promise<Tool[]> {
    return (await client.result("tools/list")).tools as Tool[];
  }

  beforeAll(async () => {
    nats = await startTestNats();
    bus = await connectBus({ servers: nats.url, name: "agent-test", logger: silentLogger() });
    rawBus = await connectBus({ servers: nats.url, name: "agent-test-raw", logger: silentLogger() });
    rawNc = await connectRawNats(nats.url);
    caller = new Requester(rawBus, "agent-test-caller");
    [fixture, gateway] = await Promise.all([wrapFixtureStdio(nats.url, "legacy"), startGatewayHttp(nats.url)]);
    client = await RawMcpClient.connect(new StreamableHTTPClientTransport(new URL(gateway.url)));

    planner = agent("planner", { description: "Plans mitigations for plant anomalies" })
      .tool(
        "plan",
        { description: "Plans mitigation steps for an anomaly", title: "Plan", input: PlanInput, annotations: { readOnlyHint: true } },
        async ({ anomaly, severity, location }) => ({
          steps: [`isolate ${location?.unit ?? "the area"}`, `inspect: ${anomaly}`],
          severity,
        }),
      )
      .tool("explode", { description: "Always fails" }, () => {
        throw new Error("boom: the handler failed");
      })
      .tool("shout", { description: "Upper-cases its text", input: z.object({ text: z.string() }) }, ({ text }) => text.toUpperCase())
      .tool("nap", { description: "Sleeps a while", input: z.object({ ms: z.number().int().nonnegative() }) }, async ({ ms }) => {
        await sleep(ms);
        return { slept: ms };
      })
      .publishes("plant.plans")
      .consumes("plant.anomalies");
    await planner.start();
  });

  afterAll(async () => {
    await client?.close().catch(() => undefined);
    await Promise.allSettled(agents.map((a) => a.stop()));
    await Promise.allSettled([gateway?.stop(), fixture?.stop(), ...children.map((c) => c.stop())]);
    caller?.close();
    await bus?.drain();
    await rawBus?.drain();
    await rawNc?.drain();
    await nats?.stop();
  });

  it("refuses bad declarations with clear errors", () => {
    expect(() => new Agent({ bus, name: "has.dot", version: "1" })).toThrow(AgentDeclarationError);
    expect(() => new Agent({ bus, name: "ok", version: "" })).toThrow(/version/);
    const a = new Agent({ bus, name: "decl", version: "1", logger: silentLogger() });
    expect(() => a.tool("bad name", { description: "x" }, () => 1)).toThrow(/invalid tool name "bad name"/);
    a.tool("once", { description: "x" }, () => 1);
    expect(() => a.tool("once", { description: "x" }, () => 1)).toThrow(/declared twice/);
    expect(() => a.tool("stringy", { description: "x", input: z.string() }, () => 1)).toThrow(/must describe an object/);
    expect(() => a.tool("dated", { description: "x", input: z.object({ when: z.date() }) }, () => 1)).toThrow(/cannot be described as JSON Schema/);
    expect(() => a.publishes("plant..plans")).toThrow(/invalid topic "plant..plans"/);
    expect(() => a.consumes("plant.*")).toThrow(AgentDeclarationError);
    expect(() => a.subscribe("bad topic", () => undefined)).toThrow(/invalid topic pattern/);
    // A union of objects has no root type in JSON Schema, but only takes objects.
    a.tool("either", { description: "x", input: z.discriminatedUnion("kind", [z.object({ kind: z.literal("a") }), z.object({ kind: z.literal("b"), n: z.number() })]) }, () => 1);
    return expect(a.publish("plant.plans", {})).rejects.toThrow(AgentStateError);
  });

  it("appears at the gateway next to a wrapped server, with its JSON Schemas, and announces its profile", async () => {
    const tools = await eventually(async () => {
      const listed = await listedTools();
      const names = listed.map((t) => t.name);
      return names.includes("plan") && names.includes("echo") ? listed : undefined;
    });
    const names = tools.map((t) => t.name).sort();
    expect(names).toEqual(expect.arrayContaining(["echo", "add", "whoami", "plan", "explode", "shout", "nap"]));
    const plan = tools.find((t) => t.name === "plan")!;
    expect(plan).toEqual({
      name: "plan",
      description: "Plans mitigation steps for an anomaly",
      title: "Plan",
      inputSchema: z.toJSONSchema(PlanInput, { target: "draft-2020-12", io: "input" }),
      annotations: { readOnlyHint: true },
      // The gateway offers every tool as a task (docs/sessions-and-tasks.md "Tasks").
      execution: { taskSupport: "optional" },
    });
    expect(plan.inputSchema).toMatchObject({ type: "object", required: ["anomaly"] });
    expect(tools.find((t) => t.name === "explode")!.inputSchema).toMatchObject({ type: "object", properties: {} });

    const kv = await new Kvm(rawNc).open(REGISTRY_BUCKET);
    const entry = await kv.get(registryKey("planner", planner.instance));
    const decoded = decodeEnvelope(entry!.value, Number.POSITIVE_INFINITY);
    expect(decoded.ok).toBe(true);
    const announcement = (decoded as { envelope: Envelope }).envelope.payload as Record<string, unknown>;
    expect(announcement).toMatchObject({
      kind: "announce",
      service: "planner",
      status: "ready",
      interval_ms: 500,
      capabilities: { tools: {} },
      profile: {
        id: planner.id,
        name: "planner",
        version: "1.0.0",
        description: "Plans mitigations for plant anomalies",
        publishes: ["plant.plans"],
        consumes: ["plant.anomalies"],
      },
    });
  });

  it("answers tools/call through the gateway with the handler's result as structuredContent and text", async () => {
    const result = (await client.result("tools/call", { name: "plan", arguments: { anomaly: "pressure spike", location: { unit: "P-7" } } })) as CallResult;
    const expected = { steps: ["isolate P-7", "inspect: pressure spike"], severity: 3 };
    expect(result.structuredContent).toEqual(expected);
    expect(result.content).toHaveLength(1);
    expect(result.content[0]!.type).toBe("text");
    expect(JSON.parse(result.content[0]!.text)).toEqual(expected);
    expect(result.isError).toBeUndefined();

    const shout = (await client.result("tools/call", { name: "shout", arguments: { text: "hi" } })) as CallResult;
    expect(shout).toEqual({ content: [{ type: "text", text: "HI" }] });
    // The wrapped server is still reachable next to the agent.
    const echo = (await client.result("tools/call", { name: "echo", arguments: { text: "legacy" } })) as CallResult;
    expect(echo.content[0]!.text).toBe("legacy");
  });

  it("answers arguments that fail the schema with a tool error naming them (MCP 2025-11-25), unknown tools with -32602, and reports a throwing handler as isError", async () => {
    const bad = (await client.result("tools/call", { name: "plan", arguments: { anomaly: "x", location: { unit: 42 } } })) as CallResult;
    expect(bad.isError).toBe(true);
    expect(bad.content).toHaveLength(1);
    expect(bad.content[0]!.text).toMatch(/^Invalid arguments for tool plan: location\.unit: /);

    const missing = (await client.result("tools/call", { name: "plan", arguments: {} })) as CallResult;
    expect(missing).toMatchObject({ isError: true, content: [{ type: "text", text: expect.stringMatching(/^Invalid arguments for tool plan: anomaly: /) }] });

    // A request that does not fit MCP's CallToolRequest is still a protocol error.
    const notAnObject = await caller.call("planner", "tools/call", { name: "plan", arguments: "anomaly" }, { timeoutMs: 5000 }).catch((err: unknown) => err);
    expect(notAnObject).toMatchObject({ code: ErrorCode.InvalidParams, jsonrpcCode: -32602, message: "tools/call needs params.arguments to be an object" });
    expect(notAnObject).toBeInstanceOf(RequestError);
    const nameless = await caller.call("planner", "tools/call", { arguments: {} }, { timeoutMs: 5000 }).catch((err: unknown) => err);
    expect(nameless).toMatchObject({ code: ErrorCode.UnknownTarget, jsonrpcCode: -32602 });

    const unknownAtGateway = await client.request("tools/call", { name: "no_such_tool", arguments: {} });
    expect(unknownAtGateway.error?.code).toBe(-32602);

    // The agent's own check, for callers that reach it directly on the bus.
    const unknown = await caller.call("planner", "tools/call", { name: "no_such_tool" }, { timeoutMs: 5000 }).catch((err: unknown) => err);
    expect(unknown).toBeInstanceOf(DmcpError);
    expect(unknown).toBeInstanceOf(RequestError);
    expect(unknown).toMatchObject({ code: ErrorCode.UnknownTarget, jsonrpcCode: -32602, message: "Unknown tool: no_such_tool" });

    const failed = (await client.result("tools/call", { name: "explode", arguments: {} })) as CallResult;
    expect(failed).toEqual({ content: [{ type: "text", text: "boom: the handler failed" }], isError: true });
  });

  it("serves tools/list and ping on the bus, and answers other methods with -32601", async () => {
    const list = await caller.call("planner", "tools/list", undefined, { timeoutMs: 5000 });
    expect((list.tools as Tool[]).map((t) => t.name)).toEqual(["plan", "explode", "shout", "nap"]);
    expect(await caller.call("planner", "ping", undefined, { timeoutMs: 5000 })).toEqual({});
    const other = await caller.call("planner", "prompts/list", undefined, { timeoutMs: 5000 }).catch((err: unknown) => err);
    expect(other).toMatchObject({ code: ErrorCode.UnknownTarget, jsonrpcCode: -32601, message: "Method not found: prompts/list" });
  });

  it("calls another agent's tool over the bus", async () => {
    const sensor = agent("sensor");
    await sensor.start();
    const result = await sensor.call("planner", "plan", { anomaly: "leak", severity: 5 });
    expect(result.structuredContent).toEqual({ steps: ["isolate the area", "inspect: leak"], severity: 5 });
    const invalid = await sensor.call("planner", "plan", { severity: 9 });
    expect(invalid.isError).toBe(true);
    expect(invalid.content[0]!.text).toMatch(/anomaly: .*; severity: /);
    await expect(sensor.call("nobody", "plan", {}, { timeoutMs: 2000 })).rejects.toMatchObject({ code: ErrorCode.NoResponders });
    const badName = await sensor.call("not.a.service", "plan").catch((err: unknown) => err);
    expect(badName).toBeInstanceOf(RequestError);
    expect(badName).toMatchObject({ code: ErrorCode.UnknownTarget, data: { service: "not.a.service" } });
    const failed = await sensor.call("planner", "explode");
    expect(failed.isError).toBe(true);
  });

  it("a live subscription receives what another agent publishes; history replays in order", async () => {
    const sensor = agent("sensor2").publishes("plant.anomalies");
    const watcher = agent("watcher").consumes("plant.anomalies");
    const seen: ContextEvent[] = [];
    // Made before start(): it opens when the agent starts.
    const sub = watcher.subscribe("plant.anomalies", async (event) => {
      await sleep(5);
      seen.push(event);
    });
    await Promise.all([sensor.start(), watcher.start()]);
    await sub.ready;
    const published = [];
    for (let i = 1; i <= 5; i++) published.push(await sensor.publish("plant.anomalies", { n: i }));
    await eventually(() => seen.length === 5);
    expect(dataOf(seen)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }, { n: 5 }]);
    expect(seen[0]).toMatchObject({ topic: "plant.anomalies", sender: sensor.instance });
    expect(seen[0]!.envelope.type).toBe("context_update");

    const history = await watcher.history("plant.anomalies");
    expect(dataOf(history)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }, { n: 5 }]);
    expect(history.map((e) => e.seq)).toEqual(published.map((p) => p.seq));
    expect(dataOf(await watcher.history("plant.anomalies", { from: { seq: published[3]!.seq } }))).toEqual([{ n: 4 }, { n: 5 }]);
    expect(dataOf(await watcher.history("plant.anomalies", { limit: 2 }))).toEqual([{ n: 1 }, { n: 2 }]);

    // Stopped: no more deliveries.
    await sub.stop();
    await sensor.publish("plant.anomalies", { n: 6 });
    // A quiet moment, then the count again: no event can say that nothing was delivered.
    await sleep(200);
    expect(seen).toHaveLength(5);
  });

  it("a durable subscription catches up, in order, on what was published while its agent was away", async () => {
    const sensor = agent("sensor3");
    await sensor.start();
    const seen: unknown[] = [];
    const first = agent("archivist");
    first.subscribe("plant.readings", (event) => void seen.push(event.data), { durable: true });
    await first.start();
    await sensor.publish("plant.readings", { r: 1 });
    await eventually(() => seen.length === 1);
    await first.stop();

    for (let r = 2; r <= 4; r++) await sensor.publish("plant.readings", { r });
    const again = agent("archivist"); // a new process of the same agent: same durable consumer
    const sub = again.subscribe("plant.readings", (event) => void seen.push(event.data), { durable: true });
    await again.start();
    await sub.ready;
    await eventually(() => seen.length === 4);
    await sensor.publish("plant.readings", { r: 5 });
    await eventually(() => seen.length === 5);
    expect(seen).toEqual([{ r: 1 }, { r: 2 }, { r: 3 }, { r: 4 }, { r: 5 }]);
  });

  it("reports malformed updates on its error subject and keeps receiving valid ones", async () => {
    const logs: string[] = [];
    const logger = pino({ level: "warn" }, { write: (line: string) => void logs.push(line) });
    const sensor = agent("sensor4");
    const live = agent("listener", { logger });
    const durable = agent("keeper", { logger });
    const liveSeen: unknown[] = [];
    const durableSeen: unknown[] = [];
    live.subscribe("plant.noise", (event) => void liveSeen.push(event.data));
    durable.subscribe("plant.noise", (event) => void durableSeen.push(event.data), { durable: true });
    await Promise.all([sensor.start(), live.start(), durable.start()]);

    const reports: Envelope[] = [];
    const errSub = rawBus.subscribe(subjects.errorsAll(), (msg) => {
      const decoded = decodeEnvelope(msg.data);
      if (decoded.ok) reports.push(Object.assign(decoded.envelope, { subject: msg.subject }));
    });
    await rawBus.flush();

    await sensor.publish("plant.noise", { v: 1 });
    rawBus.publish(subjects.context("plant.noise"), new TextEncoder().encode("garbage"));
    await rawBus.flush();
    await sensor.publish("plant.noise", { v: 2 });

    await eventually(() => liveSeen.length === 2 && durableSeen.length === 2);
    expect(liveSeen).toEqual([{ v: 1 }, { v: 2 }]);
    expect(durableSeen).toEqual([{ v: 1 }, { v: 2 }]);
    await eventually(() => reports.length >= 2);
    errSub.unsubscribe();
    for (const who of [live, durable]) {
      const report = reports.find((r) => (r as unknown as { subject: string }).subject === subjects.errors(who.instance));
      expect(report, `a report from ${who.name}`).toBeDefined();
      expect(report!.type).toBe("error_notification");
      expect(report!.sender_id).toBe(who.instance);
      expect(report!.payload).toMatchObject({ code: ErrorCode.InvalidEnvelope, data: { subject: subjects.context("plant.noise") } });
    }
    expect(logs.filter((line) => line.includes("malformed context update")).length).toBeGreaterThanOrEqual(2);
  });

  it("announces tools declared while running, finishes calls in flight when it stops, and leaves the gateway's list at once", async () => {
    let napping: () => void = () => undefined;
    const napStarted = new Promise<void>((resolve) => {
      napping = resolve;
    });
    const ephemeral = agent("ephemeral").tool("ephemeral_nap", { description: "Sleeps", input: z.object({ ms: z.number() }) }, async ({ ms }) => {
      napping();
      await sleep(ms);
      return { slept: ms };
    });
    await ephemeral.start();
    await eventually(async () => (await listedTools()).some((t) => t.name === "ephemeral_nap"));
    // A tool declared while running is announced again, like an MCP server's list_changed.
    ephemeral.tool("ephemeral_late", { description: "Declared after start" }, () => "late");
    await eventually(async () => (await listedTools()).some((t) => t.name === "ephemeral_late"));
    const inFlight = caller.call("ephemeral", "tools/call", { name: "ephemeral_nap", arguments: { ms: 400 } }, { timeoutMs: 5000 });
    await napStarted;
    const began = Date.now();
    const stopped = ephemeral.stop();
    await eventually(async () => !(await listedTools()).some((t) => t.name.startsWith("ephemeral_")), 2000, 50);
    expect(Date.now() - began).toBeLessThan(2000);
    expect((await inFlight).structuredContent).toEqual({ slept: 400 });
    await stopped;
    await expect(caller.call("ephemeral", "tools/call", { name: "ephemeral_nap", arguments: { ms: 1 } }, { timeoutMs: 2000 })).rejects.toMatchObject({
      code: ErrorCode.NoResponders,
    });
  });

  it("a call still running while its agent leaves can be cancelled, with the caller's reason (PROTOCOL.md §6.3)", async () => {
    let sawAbort: unknown;
    let markStarted: () => void = () => undefined;
    const started = new Promise<void>((resolve) => (markStarted = resolve));
    const leaving = agent("leaving", { stopGraceMs: 30_000 }).tool(
      "hang",
      { description: "Waits until cancelled" },
      (_args, ctx) =>
        new Promise((resolve) => {
          markStarted();
          ctx.signal.addEventListener("abort", () => {
            sawAbort = ctx.signal.reason;
            resolve("stopped");
          });
        }),
    );
    await leaving.start();
    const controller = new AbortController();
    const call = caller.call("leaving", "tools/call", { name: "hang" }, { timeoutMs: 30_000, signal: controller.signal }).catch((err: unknown) => err);
    await started;
    const stopped = leaving.stop();
    controller.abort(new DmcpError(ErrorCode.Cancelled, "given up while the agent leaves"));
    await eventually(() => sawAbort !== undefined, 5000);
    expect(sawAbort).toMatchObject({ code: ErrorCode.Cancelled, message: "given up while the agent leaves" });
    expect(await call).toMatchObject({ code: ErrorCode.Cancelled });
    await stopped;
  });

  it("answers SHUTTING_DOWN a request that reached a leaving agent before its unsubscription, instead of dropping it (PROTOCOL.md §6.3)", async () => {
    const leaving = agent("leaving2").tool("quick", { description: "Answers at once" }, () => "done");
    await leaving.start();
    const id = "leaving2-request";
    const request = createEnvelope("prompt_request", { service: "leaving2", method: "tools/call", params: { name: "quick" } }, { id, correlationId: id, sender: "agent-test" });
    // Published on the agent's own connection just before it unsubscribes: the server routes the
    // request to the agent before it reads the unsubscription, so the request arrives after stop().
    const answer = bus.request(subjects.request("leaving2"), encodeEnvelope(request), { timeoutMs: 5000 });
    const stopped = leaving.stop();
    const decoded = decodeEnvelope((await answer).data);
    expect(decoded.ok && decoded.envelope).toMatchObject({ type: "error_notification", correlation_id: id, payload: { code: ErrorCode.ShuttingDown } });
    await stopped;
  });

  it("an agent in a child process serves through the gateway, leaves within seconds when killed, and stops cleanly on SIGTERM", async () => {
    const doomed = spawnNode([SDK_AGENT_BIN, "--nats", nats.url, "--name", "doomed", "--heartbeat", "500"]);
    const tidy = spawnNode([SDK_AGENT_BIN, "--nats", nats.url, "--name", "tidy", "--heartbeat", "500"]);
    children.push(doomed, tidy);
    await Promise.all([doomed.waitFor(/AGENT READY/), tidy.waitFor(/AGENT READY/)]);
    await eventually(async () => {
      const names = (await listedTools()).map((t) => t.name);
      return names.includes("doomed_echo") && names.includes("tidy_echo");
    });
    const echoed = (await client.result("tools/call", { name: "doomed_echo", arguments: { text: "from afar" } })) as CallResult;
    expect(echoed).toEqual({ content: [{ type: "text", text: "from afar" }] });

    doomed.kill("SIGKILL");
    const killedAt = Date.now();
    await eventually(async () => !(await listedTools()).some((t) => t.name.startsWith("doomed_")), 10_000, 100);
    expect(Date.now() - killedAt).toBeLessThan(10_000);

    const stoppedAt = Date.now();
    expect(await tidy.stop()).toBe(0);
    await eventually(async () => !(await listedTools()).some((t) => t.name.startsWith("tidy_")), 2000, 50);
    expect(Date.now() - stoppedAt).toBeLessThan(3000);
  });
});

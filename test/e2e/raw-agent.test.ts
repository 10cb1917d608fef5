/**
 * Conformance of PROTOCOL.md: a native dMCP agent written from the document alone
 * (test/support/fixtures/raw-agent.ts, no imports from src/ or adapters/) against the real gateway.
 *
 * Like every test here it needs a fresh dist/ (`npm run build`; `npm test` runs it): building inside
 * this file would rewrite dist/ under test files running in parallel.
 *
 * Real processes: a private nats-server, `dmcp gateway --http 0` (from dist/), an MCP client over
 * Streamable HTTP. A wire tap subscribed to `>` records every message the agents send, and every one
 * of them must validate against schemas/envelope.schema.json.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";

import { Kvm, type KV } from "@nats-io/kv";
import { connect, type Msg, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import Ajv2020Import from "ajv/dist/2020.js";
import addFormatsImport from "ajv-formats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { REGISTRY_STREAM_CONFIG, startRawAgent, type Envelope, type RawAgent } from "../support/fixtures/raw-agent.js";
import { gatewayTransport, RawMcpClient } from "../support/mcp-client.js";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually, sleep, startGatewayHttp, type Child } from "../support/processes.js";

const REPO = new URL("../../", import.meta.url);
const schema = JSON.parse(readFileSync(new URL("schemas/envelope.schema.json", REPO), "utf8")) as object;
// CommonJS packages: under plain Node ESM the default import is module.exports, under vitest the class.
type AjvClass = typeof Ajv2020Import.default;
const Ajv2020 = ((Ajv2020Import as unknown as { default?: AjvClass }).default ?? Ajv2020Import) as AjvClass;
const addFormats = ((addFormatsImport as unknown as { default?: unknown }).default ?? addFormatsImport) as (ajv: InstanceType<AjvClass>) => void;
const ajv = new Ajv2020({ allErrors: true, strict: true });
addFormats(ajv);
const validateEnvelope = ajv.compile(schema);

interface Tapped {
  subject: string;
  reply?: string;
  at: number;
  headers: Record<string, string>;
  envelope: Envelope;
}

interface Rpc {
  result?: Record<string, unknown>;
  error?: { code: number; message: string; data?: Record<string, unknown> };
}

describe("a native agent written from PROTOCOL.md alone", () => {
  let nats: EmbeddedNats;
  let tapConn: NatsConnection;
  let caller: NatsConnection;
  let gateway: Child & { url: string };
  let client: RawMcpClient;
  let agent: RawAgent;
  const agents: RawAgent[] = [];
  const tapped: Tapped[] = [];
  let registry: KV;

  const fromAgents = () => {
    const ids = new Set(agents.map((a) => a.instance));
    return tapped.filter((t) => ids.has(t.envelope.sender_id));
  };

  beforeAll(async () => {
    nats = await startTestNats();
    tapConn = await connect({ servers: nats.url, name: "wire-tap" });
    tapConn.subscribe(">", {
      callback: (err, msg: Msg) => {
        // JetStream API traffic, and stored messages delivered again to consumers (reply $JS.ACK...),
        // are not messages the agents sent.
        if (err || msg.subject.startsWith("$JS.API") || msg.reply?.startsWith("$JS.ACK.") || msg.headers?.has("Nats-Stream")) return;
        try {
          const parsed = JSON.parse(msg.string()) as Envelope;
          if (parsed && typeof parsed === "object" && "sender_id" in parsed) {
            const headers: Record<string, string> = {};
            for (const k of msg.headers?.keys() ?? []) headers[k] = msg.headers!.get(k);
            tapped.push({ subject: msg.subject, ...(msg.reply ? { reply: msg.reply } : {}), at: Date.now(), headers, envelope: parsed });
          }
        } catch {
          // not JSON: JetStream acks, KV deletes, ...
        }
      },
    });
    await tapConn.flush();
    caller = await connect({ servers: nats.url, name: "conformance-caller" });
    // The agent starts first, on a fresh server: it waits for the gateway to create the streams (§4).
    const starting = startRawAgent({
      natsUrl: nats.url,
      name: "rawcalc",
      heartbeatMs: 500,
      publishes: ["raw.readings"],
      consumes: ["raw.commands"],
    });
    gateway = await startGatewayHttp(nats.url);
    agent = await starting;
    agents.push(agent);
    client = await RawMcpClient.connect(gatewayTransport("http", { natsUrl: nats.url, httpUrl: gateway.url }));
    registry = await new Kvm(caller).open("dmcp_registry");
  }, 120_000);

  afterAll(async () => {
    for (const a of agents) await a.stop().catch(() => undefined);
    await client?.close().catch(() => undefined);
    await gateway?.stop();
    await caller?.close();
    await tapConn?.close();
    await nats?.stop();
  });

  /** Sends a prompt_request straight over the bus; collects every reply until the final one (+150 ms). */
  async function busCall(subject: string, envelope: Record<string, unknown> | string, waitMs = 10_000): Promise<Envelope[]> {
    const inbox = `_INBOX.conformance.${randomUUID().replace(/-/g, "")}`;
    const replies: Envelope[] = [];
    const sub: Subscription = caller.subscribe(inbox);
    const done = (async () => {
      let finalAt = 0;
      const timer = setTimeout(() => sub.unsubscribe(), waitMs);
      for await (const m of sub) {
        const env = JSON.parse(m.string()) as Envelope;
        replies.push(env);
        if ((env.type === "prompt_response" || env.type === "error_notification") && !finalAt) {
          finalAt = Date.now();
          clearTimeout(timer);
          setTimeout(() => sub.unsubscribe(), 150);
        }
      }
    })();
    await caller.flush();
    caller.publish(subject, typeof envelope === "string" ? envelope : JSON.stringify(envelope), { reply: inbox });
    await done;
    return replies;
  }

  function request(method: string, params?: Record<string, unknown>, extra: Record<string, unknown> = {}, service = "rawcalc") {
    const id = randomUUID();
    return {
      dMCP_version: "0.1",
      type: "prompt_request",
      id,
      correlation_id: id,
      session_id: "conformance-session",
      timestamp: new Date().toISOString(),
      sender_id: "conformance-caller",
      deadline: new Date(Date.now() + 10_000).toISOString(),
      payload: { service, method, ...(params ? { params } : {}) },
      ...extra,
    };
  }

  const finalOf = (replies: Envelope[]) => replies.filter((r) => r.type !== "context_update");

  async function toolsList(): Promise<{ name: string; inputSchema?: unknown; description?: string }[]> {
    return (await client.result("tools/list")).tools as { name: string; inputSchema?: unknown }[];
  }

  async function callTool(name: string, args: Record<string, unknown>): Promise<Rpc> {
    return (await client.request("tools/call", { name, arguments: args })) as Rpc;
  }

  // ------------------------------------------------------------------------------------------
  // Registry and heartbeats
  // ------------------------------------------------------------------------------------------

  it("announces itself in dmcp_registry under <service>.<instance> (§6.1, §13.1)", async () => {
    const entry = await registry.get(`rawcalc.${agent.instance}`);
    expect(entry?.operation).toBe("PUT");
    const env = entry!.json<Envelope>();
    expect(validateEnvelope(env), JSON.stringify(validateEnvelope.errors)).toBe(true);
    expect(env.type).toBe("agent_heartbeat");
    expect(env.payload).toMatchObject({
      kind: "announce",
      service: "rawcalc",
      instance: agent.instance,
      status: "ready",
      interval_ms: 500,
      capabilities: { tools: {} },
      profile: { name: "rawcalc", publishes: ["raw.readings"], consumes: ["raw.commands"] },
    });
    const tools = (env.payload.catalog as { tools: { name: string }[] }).tools.map((t) => t.name);
    expect(tools).toEqual(["add", "wait"]);
    const status = await registry.status();
    expect(status.history).toBe(1);
    expect(status.ttl).toBe(30_000);
  });

  it("finds the registry stream the gateway made, and §6.1's config, exactly as a key-value library makes the bucket (§6.1)", async () => {
    const jsm = await jetstreamManager(caller);
    const made = (await jsm.streams.info("KV_dmcp_registry")).config;
    // §6.1's config and the same bucket settings through the KV library, under other names.
    await jsm.streams.add({ ...REGISTRY_STREAM_CONFIG, name: "KV_dmcp_registry_documented", subjects: ["$KV.dmcp_registry_documented.>"] } as Parameters<
      typeof jsm.streams.add
    >[0]);
    const documented = (await jsm.streams.info("KV_dmcp_registry_documented")).config;
    await new Kvm(caller).create("dmcp_registry_reference", { history: 1, ttl: 30_000 });
    const reference = (await jsm.streams.info("KV_dmcp_registry_reference")).config;
    expect(made.subjects).toEqual(["$KV.dmcp_registry.>"]);
    expect({ ...made, name: "", subjects: [] }).toEqual({ ...reference, name: "", subjects: [] });
    expect({ ...documented, name: "", subjects: [] }).toEqual({ ...reference, name: "", subjects: [] });
    expect(documented).toMatchObject({ discard: "new", duplicate_window: 30_000_000_000, allow_direct: true, max_age: 30_000_000_000, max_msgs_per_subject: 1 });
    await jsm.streams.delete("KV_dmcp_registry_documented");
    await jsm.streams.delete("KV_dmcp_registry_reference");
  });

  it("publishes heartbeats on dmcp.v1.hb.<service>.<instance> at its interval (§6.2)", async () => {
    const subject = `dmcp.v1.hb.rawcalc.${agent.instance}`;
    const since = Date.now();
    const beats = await eventually(
      () => {
        const seen = tapped.filter((t) => t.subject === subject && t.at >= since);
        return seen.length >= 3 ? seen : undefined;
      },
      10_000,
      50,
    );
    expect(beats.length).toBeGreaterThanOrEqual(3);
    for (const b of beats) {
      expect(b.envelope.payload).toMatchObject({ kind: "heartbeat", service: "rawcalc", instance: agent.instance, status: "ready", interval_ms: 500 });
    }
    const gaps = beats.slice(1).map((b, i) => b.at - beats[i]!.at);
    for (const gap of gaps) expect(gap).toBeLessThan(800);
  });

  // ------------------------------------------------------------------------------------------
  // Through the gateway
  // ------------------------------------------------------------------------------------------

  it("its tools are listed by the gateway with their schemas (§13.2, §8)", async () => {
    const tools = await eventually(async () => {
      const list = await toolsList();
      return list.some((t) => t.name === "add") && list.some((t) => t.name === "wait") ? list : undefined;
    });
    const announced = (await registry.get(`rawcalc.${agent.instance}`))!.json<Envelope>();
    const catalog = (announced.payload.catalog as { tools: { name: string }[] }).tools;
    for (const item of catalog) {
      // Unchanged, except that the gateway offers every tool as a task (docs/sessions-and-tasks.md "Tasks").
      expect(tools.find((t) => t.name === item.name)).toEqual({ ...item, execution: { taskSupport: "optional" } });
    }
  });

  it("tools/call through the gateway returns the agent's result", async () => {
    const response = await callTool("add", { a: 2, b: 3 });
    expect(response.error).toBeUndefined();
    expect(response.result).toEqual({ content: [{ type: "text", text: "5" }], structuredContent: { sum: 5 } });
  });

  it("bad arguments give a tool result with isError naming each failing argument (§13.2, MCP 2025-11-25)", async () => {
    const response = await callTool("add", { a: "two" });
    expect(response.error).toBeUndefined();
    expect(response.result).toEqual({
      content: [{ type: "text", text: "Invalid arguments for tool add: b: required property is missing; a: expected number, received string" }],
      isError: true,
    });
  });

  it("an unknown tool gives -32602 at the gateway", async () => {
    const response = await callTool("no_such_tool", {});
    expect(response.error?.code).toBe(-32602);
    expect(response.error?.data).toMatchObject({ dmcp_code: "UNKNOWN_TARGET" });
  });

  it("a tool that fails while running is a result with isError (§13.2)", async () => {
    const response = await callTool("wait", { ms: 5, fail: true });
    expect(response.result).toMatchObject({ isError: true });
  });

  it("sends a receipt for a slow gateway call and copies correlation_id and session_id (§5.2)", async () => {
    const response = await callTool("wait", { ms: 150 });
    expect(response.result).toEqual({ content: [{ type: "text", text: "waited 150 ms" }] });
    const req = [...tapped]
      .reverse()
      .find((t) => t.subject === "dmcp.v1.req.rawcalc" && (t.envelope.payload.params as { name?: string; arguments?: { ms?: number } })?.arguments?.ms === 150)!;
    expect(req.envelope.receipt).toBe(true);
    // The tap is a subscriber of its own: it may see the answer after the client did.
    const replies = await eventually(
      () => {
        const seen = tapped.filter((t) => t.envelope.correlation_id === req.envelope.correlation_id && t.envelope.sender_id === agent.instance);
        return seen.length >= 2 ? seen : undefined;
      },
      5000,
      20,
    );
    expect(replies.map((r) => r.envelope.type)).toEqual(["context_update", "prompt_response"]);
    expect(replies[0]!.envelope.payload).toEqual({ method: "dmcp/accepted", params: { instance: agent.instance } });
    for (const r of replies) {
      expect(r.subject).toBe(req.reply);
      expect(r.envelope.id).not.toBe(req.envelope.id);
    }
    // §5.2 step 3: the answer carries the request's session_id (the gateway's MCP session id).
    expect(req.envelope.session_id).toBeTruthy();
    expect(replies[1]!.envelope.session_id).toBe(req.envelope.session_id);
  });

  // ------------------------------------------------------------------------------------------
  // Straight over the bus
  // ------------------------------------------------------------------------------------------

  it("answers ping and tools/list on its instance subject (§4, §13.2)", async () => {
    const ping = request("ping");
    const [pong] = await busCall(`dmcp.v1.inst.${agent.service}.${agent.instance}.req`, ping);
    expect(pong).toMatchObject({ type: "prompt_response", correlation_id: ping.id, session_id: "conformance-session", sender_id: agent.instance, payload: { result: {} } });
    const list = await busCall(`dmcp.v1.inst.${agent.service}.${agent.instance}.req`, request("tools/list"));
    expect(list).toHaveLength(1);
    expect((list[0]!.payload.result as { tools: { name: string }[] }).tools.map((t) => t.name)).toEqual(["add", "wait"]);
  });

  it("answers an unknown tool with UNKNOWN_TARGET -32602 and an unknown method with -32601", async () => {
    const [unknownTool] = await busCall("dmcp.v1.req.rawcalc", request("tools/call", { name: "nope", arguments: {} }));
    expect(unknownTool).toMatchObject({ type: "error_notification", payload: { code: "UNKNOWN_TARGET", jsonrpc_code: -32602, message: "Unknown tool: nope" } });
    const [unknownMethod] = await busCall("dmcp.v1.req.rawcalc", request("prompts/list"));
    expect(unknownMethod).toMatchObject({ type: "error_notification", payload: { code: "UNKNOWN_TARGET", jsonrpc_code: -32601 } });
  });

  it("validates tool arguments by hand: a tool error for schema failures, INVALID_PARAMS or UNKNOWN_TARGET for malformed calls (§13.2)", async () => {
    const [bad] = await busCall("dmcp.v1.req.rawcalc", request("tools/call", { name: "wait", arguments: { ms: 1.5, extra: 1 } }));
    expect(bad).toMatchObject({
      type: "prompt_response",
      payload: { result: { content: [{ type: "text", text: "Invalid arguments for tool wait: ms: expected integer, received number" }], isError: true } },
    });
    const [notAnObject] = await busCall("dmcp.v1.req.rawcalc", request("tools/call", { name: "wait", arguments: [1] }));
    expect(notAnObject).toMatchObject({ type: "error_notification", payload: { code: "INVALID_PARAMS", jsonrpc_code: -32602 } });
    const [nameless] = await busCall("dmcp.v1.req.rawcalc", request("tools/call", { arguments: {} }));
    expect(nameless).toMatchObject({ type: "error_notification", payload: { code: "UNKNOWN_TARGET", jsonrpc_code: -32602 } });
  });

  it("a client's cancellation reaches it with the client's reason, and it answers CANCELLED (§5.5)", async () => {
    const pending = client.request("tools/call", { name: "wait", arguments: { ms: 20_000 } }, 3000).then(
      () => "answered",
      () => "no answer",
    );
    const req = await eventually(() =>
      [...tapped].reverse().find((t) => t.subject === "dmcp.v1.req.rawcalc" && (t.envelope.payload.params as { arguments?: { ms?: number } })?.arguments?.ms === 20_000),
    );
    // The receipt: the agent runs the call.
    await eventually(() => tapped.find((t) => t.envelope.correlation_id === req.envelope.correlation_id && t.envelope.type === "context_update"));
    await client.notify("notifications/cancelled", { requestId: client.lastRequestId, reason: "the user changed their mind" });
    const cancel = await eventually(() => tapped.find((t) => t.subject === "dmcp.v1.cancel.rawcalc" && t.envelope.correlation_id === req.envelope.correlation_id));
    expect(cancel.envelope).toMatchObject({ type: "context_update", payload: { method: "notifications/cancelled", params: { reason: "the user changed their mind" } } });
    const answer = await eventually(() => tapped.find((t) => t.envelope.correlation_id === req.envelope.correlation_id && t.envelope.type === "error_notification"));
    expect(answer.subject).toBe(req.reply);
    expect(answer.envelope.payload).toMatchObject({ code: "CANCELLED", jsonrpc_code: -32016, message: "the user changed their mind" });
    expect(await pending).toBe("no answer");
  });

  it("honours deadline: passed → DEADLINE_EXCEEDED at once; too short → DEADLINE_EXCEEDED at the deadline (§5.4)", async () => {
    const past = request("ping", undefined, { deadline: new Date(Date.now() - 1000).toISOString() });
    const [late] = await busCall("dmcp.v1.req.rawcalc", past);
    expect(late).toMatchObject({ type: "error_notification", correlation_id: past.id, payload: { code: "DEADLINE_EXCEEDED", jsonrpc_code: -32012 } });
    const t0 = Date.now();
    const short = request("tools/call", { name: "wait", arguments: { ms: 3000 } }, { deadline: new Date(Date.now() + 300).toISOString() });
    const replies = await busCall("dmcp.v1.req.rawcalc", short);
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(finalOf(replies)).toHaveLength(1);
    expect(finalOf(replies)[0]).toMatchObject({ type: "error_notification", payload: { code: "DEADLINE_EXCEEDED" } });
  });

  it("honours receipt: none without receipt:true, none for fast calls, one before the answer otherwise (§5.2)", async () => {
    const without = await busCall("dmcp.v1.req.rawcalc", request("tools/call", { name: "wait", arguments: { ms: 100 } }));
    expect(without.map((r) => r.type)).toEqual(["prompt_response"]);
    const fast = await busCall("dmcp.v1.req.rawcalc", request("ping", undefined, { receipt: true }));
    expect(fast.map((r) => r.type)).toEqual(["prompt_response"]);
    const slow = request("tools/call", { name: "wait", arguments: { ms: 100 } }, { receipt: true });
    const withReceipt = await busCall("dmcp.v1.req.rawcalc", slow);
    expect(withReceipt.map((r) => r.type)).toEqual(["context_update", "prompt_response"]);
    for (const r of withReceipt) expect(r.correlation_id).toBe(slow.id);
  });

  it("is lenient: no correlation_id → answered with the id; unknown fields are accepted (§2)", async () => {
    const req: Record<string, unknown> = { ...request("ping"), "x-extra": { keep: true } };
    delete req.correlation_id;
    (req.payload as Record<string, unknown>)["x-payload-extra"] = 1;
    const [answer] = await busCall("dmcp.v1.req.rawcalc", req);
    expect(answer).toMatchObject({ type: "prompt_response", correlation_id: req.id });
  });

  it("rejects invalid envelopes with INVALID_ENVELOPE on the reply and on dmcp.v1.err.<instance> (§5.2)", async () => {
    const errSub = caller.subscribe(`dmcp.v1.err.${agent.instance}`);
    const copies: Envelope[] = [];
    void (async () => {
      for await (const m of errSub) copies.push(m.json<Envelope>());
    })();
    await caller.flush();
    const bad = request("ping");
    delete (bad.payload as Record<string, unknown>).method;
    const [answer] = await busCall("dmcp.v1.req.rawcalc", bad);
    expect(answer).toMatchObject({ type: "error_notification", correlation_id: bad.id, payload: { code: "INVALID_ENVELOPE", jsonrpc_code: -32600 } });
    const notJson = await busCall("dmcp.v1.req.rawcalc", '{"dMCP_version":"0.1","id":"salvage-me","type":');
    expect(notJson[0]).toMatchObject({ type: "error_notification", correlation_id: "salvage-me", payload: { code: "INVALID_ENVELOPE" } });
    const wrongType = await busCall("dmcp.v1.req.rawcalc", { ...request("ping"), type: "prompt_response" });
    expect(wrongType[0]).toMatchObject({ type: "error_notification", payload: { code: "INVALID_ENVELOPE" } });
    await eventually(() => copies.length >= 3, 2000);
    // The report carries the answer's payload and correlation, as a message of its own (own id).
    expect(copies[0]).toMatchObject({ type: "error_notification", correlation_id: answer!.correlation_id, payload: answer!.payload });
    expect(copies[0]!.id).not.toBe(answer!.id);
    errSub.unsubscribe();
  });

  it("serves dmcp.v1.req.<service> in the queue group dmcp-<service>: each request answered once (§4)", async () => {
    const second = await startRawAgent({ natsUrl: nats.url, name: "rawcalc", heartbeatMs: 500 });
    agents.push(second);
    // A plain subscriber in the same queue group proves the group's name: it takes a share of the requests.
    const answeredBy = new Map<string, number>();
    for (let i = 0; i < 20; i++) {
      const replies = await busCall("dmcp.v1.req.rawcalc", request("ping"));
      expect(replies).toHaveLength(1);
      answeredBy.set(replies[0]!.sender_id, (answeredBy.get(replies[0]!.sender_id) ?? 0) + 1);
    }
    expect([...answeredBy.keys()].sort()).toEqual([agent.instance, second.instance].sort());
    await second.stop();
  });

  it("shares the queue group with a foreign member named dmcp-<service>", async () => {
    const intruder = caller.subscribe("dmcp.v1.req.rawcalc", { queue: "dmcp-rawcalc" });
    let stolen = 0;
    void (async () => {
      for await (const _m of intruder) stolen++;
    })();
    await caller.flush();
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const req = request("ping", undefined, { deadline: new Date(Date.now() + 1000).toISOString() });
      ids.push(req.id);
      caller.publish("dmcp.v1.req.rawcalc", JSON.stringify(req));
    }
    await caller.flush();
    // Time for the 20 deliveries: the count that matters is the one short of 20, which no event announces.
    await sleep(300);
    intruder.unsubscribe();
    // Without a reply subject the agent executes but does not answer; the intruder got a share only
    // if it is in the same group as the agent (otherwise it would get all 20).
    expect(stolen).toBeGreaterThan(0);
    expect(stolen).toBeLessThan(20);
  });

  // ------------------------------------------------------------------------------------------
  // Context (§13)
  // ------------------------------------------------------------------------------------------

  it("publishes context through JetStream with Nats-Msg-Id; the gateway shows it as dmcp://context/<topic> (§13.3, §13.5)", async () => {
    const since = client.notifications.length;
    const { seq, id } = await agent.publishContext("raw.readings", { value: 42, unit: "bar" });
    const onWire = await eventually(() => tapped.find((t) => t.envelope.id === id), 2000);
    expect(onWire.subject).toBe("dmcp.v1.ctx.raw.readings");
    expect(onWire.headers["Nats-Msg-Id"]).toBe(id);
    expect(onWire.envelope.payload).toEqual({ topic: "raw.readings", data: { value: 42, unit: "bar" } });

    await client.waitForNotification("notifications/resources/list_changed", 10_000, since);
    const resources = await eventually(async () => {
      const list = (await client.result("resources/list")).resources as { uri: string; mimeType?: string }[];
      return list.find((r) => r.uri === "dmcp://context/raw.readings");
    });
    expect(resources.mimeType).toBe("application/json");
    const read = await client.result("resources/read", { uri: "dmcp://context/raw.readings" });
    const contents = read.contents as { uri: string; text: string; mimeType?: string; _meta?: Record<string, unknown> }[];
    expect(JSON.parse(contents[0]!.text)).toEqual({ value: 42, unit: "bar" });
    // §13.5 does not say where `_meta` goes; the gateway puts it on the content item.
    expect(contents[0]!._meta).toMatchObject({ "io.dmcp/seq": seq, "io.dmcp/sender": agent.instance, "io.dmcp/time": expect.any(String) });

    const history = await client.result("tools/call", { name: "dmcp_context_history", arguments: { topic: "raw.readings" } });
    const updates = (history.structuredContent as { updates: { seq: number; sender_id: string; data: unknown }[] }).updates;
    expect(updates).toContainEqual(expect.objectContaining({ seq, sender_id: agent.instance, data: { value: 42, unit: "bar" } }));
  });

  it("the gateway's own context tools answer invalid arguments as agents do: a tool result with isError (§13.5)", async () => {
    const response = (await client.request("tools/call", { name: "dmcp_context_history", arguments: { topic: "raw.readings", limit: 5000 } })) as Rpc;
    expect(response.error).toBeUndefined();
    expect(response.result).toMatchObject({ isError: true, content: [{ type: "text", text: expect.stringMatching(/limit must be a whole number from 1 to 1000/) }] });
  });

  it("consumes a topic with a durable consumer: a gateway publish reaches the agent (§13.4)", async () => {
    const published = await client.result("tools/call", { name: "dmcp_publish_context", arguments: { topic: "raw.commands", data: { cmd: "go" } } });
    const seq = (published.structuredContent as { seq: number }).seq;
    const got = await eventually(() => agent.received.find((r) => r.seq === seq), 5000);
    expect(got.envelope.payload).toMatchObject({ topic: "raw.commands", data: { cmd: "go" } });
  });

  it("skips and reports an invalid message on a consumed context subject (§13.3)", async () => {
    const errSub = caller.subscribe(`dmcp.v1.err.${agent.instance}`);
    const reports: Envelope[] = [];
    void (async () => {
      for await (const m of errSub) reports.push(m.json<Envelope>());
    })();
    await caller.flush();
    const js = jetstream(caller);
    const before = agent.received.length;
    const ack = await js.publish("dmcp.v1.ctx.raw.commands", JSON.stringify({ ...request("ping"), id: "bogus-1", correlation_id: undefined }));
    await eventually(() => reports.length > 0, 5000);
    expect(reports[0]).toMatchObject({ type: "error_notification", correlation_id: "bogus-1", payload: { code: "INVALID_ENVELOPE", data: { seq: ack.seq } } });
    expect(agent.received.length).toBe(before);
    errSub.unsubscribe();
  });

  it("re-puts its announcement at least every 10 s (§6.1)", async () => {
    const key = `$KV.dmcp_registry.rawcalc.${agent.instance}`;
    const puts = await eventually(
      () => {
        const seen = tapped.filter((t) => t.subject === key);
        return seen.length >= 2 ? seen : undefined;
      },
      15_000,
      100,
    );
    expect(puts.length).toBeGreaterThanOrEqual(2);
    const gaps = puts.slice(1).map((p, i) => p.at - puts[i]!.at);
    for (const gap of gaps) expect(gap).toBeLessThan(10_500);
  }, 20_000);

  // ------------------------------------------------------------------------------------------
  // Leaving and crashing (§6.3)
  // ------------------------------------------------------------------------------------------

  /** Resolves once the agent's receipt for a call (`dmcp/accepted`, sent 20 ms into a slow call) is on the bus. */
  const accepted = (instance: string) =>
    eventually(() => tapped.some((t) => t.envelope.sender_id === instance && (t.envelope.payload as { method?: string }).method === "dmcp/accepted"), 10_000, 20);

  it("stop(): its tools leave the list quickly, and a call in flight still finishes", async () => {
    const leaver = await startRawAgent({ natsUrl: nats.url, name: "rawstop" }); // default heartbeat 2000 ms
    agents.push(leaver);
    // "add"/"wait" now collide with rawcalc's: both are exposed as <service>__<name> (§8.2).
    await eventually(async () => (await toolsList()).some((t) => t.name === "rawstop__wait"));
    const call = callTool("rawstop__wait", { ms: 800 });
    await accepted(leaver.instance);
    const t0 = Date.now();
    const stopping = leaver.stop();
    await eventually(async () => !(await toolsList()).some((t) => t.name.startsWith("rawstop__")), 5000, 50);
    const leftAfter = Date.now() - t0;
    expect(leftAfter).toBeLessThan(1500); // eviction by missed heartbeats would take 6.25 s
    expect((await call).result).toEqual({ content: [{ type: "text", text: "waited 800 ms" }] });
    await stopping;
    const last = tapped.filter((t) => t.subject === `dmcp.v1.hb.rawstop.${leaver.instance}`).at(-1)!;
    expect(last.envelope.payload.status).toBe("stopping");
    const entry = await registry.get(`rawstop.${leaver.instance}`);
    expect(entry?.operation).toBe("DEL");
    // the collision is gone: rawcalc's tools are unqualified again
    await eventually(async () => (await toolsList()).some((t) => t.name === "add"));
  });

  it("stop(): a call still running can be cancelled while it leaves, and is answered CANCELLED (§6.3 step 3)", async () => {
    const leaver = await startRawAgent({ natsUrl: nats.url, name: "rawleave", heartbeatMs: 500 });
    agents.push(leaver);
    const call = request("tools/call", { name: "wait", arguments: { ms: 20_000 } }, { receipt: true }, "rawleave");
    const replies = busCall(`dmcp.v1.inst.rawleave.${leaver.instance}.req`, call, 15_000);
    await eventually(() => tapped.find((t) => t.envelope.correlation_id === call.id && t.envelope.type === "context_update"));
    const stopping = leaver.stop();
    await eventually(() => tapped.find((t) => t.subject === `dmcp.v1.hb.rawleave.${leaver.instance}` && t.envelope.payload.status === "stopping"));
    const cancel = {
      dMCP_version: "0.1",
      type: "context_update",
      id: randomUUID(),
      correlation_id: call.id,
      timestamp: new Date().toISOString(),
      sender_id: "conformance-caller",
      payload: { method: "notifications/cancelled", params: { reason: "not while leaving" } },
    };
    caller.publish("dmcp.v1.cancel.rawleave", JSON.stringify(cancel));
    expect(finalOf(await replies)).toEqual([
      expect.objectContaining({ type: "error_notification", payload: expect.objectContaining({ code: "CANCELLED", message: "not while leaving" }) }),
    ]);
    await stopping;
    expect((await registry.get(`rawleave.${leaver.instance}`))?.operation).toBe("DEL");
  });

  it("kill(): its tools leave after the missed heartbeats, and a call it accepted fails with EXECUTOR_LOST", async () => {
    const victim = await startRawAgent({ natsUrl: nats.url, name: "rawkill", heartbeatMs: 500 });
    agents.push(victim);
    await eventually(async () => (await toolsList()).some((t) => t.name === "rawkill__wait"));
    const call = client.request("tools/call", { name: "rawkill__wait", arguments: { ms: 20_000 } }) as Promise<Rpc>;
    await accepted(victim.instance);
    const t0 = Date.now();
    await victim.kill();
    const entry = await registry.get(`rawkill.${victim.instance}`);
    expect(entry?.operation).toBe("PUT"); // a crash leaves the registry entry behind
    await eventually(async () => !(await toolsList()).some((t) => t.name.startsWith("rawkill__")), 10_000, 50);
    const leftAfter = Date.now() - t0;
    expect(leftAfter).toBeGreaterThan(700); // not at once: 3 × 500 ms + 250 ms after the last heartbeat
    expect(leftAfter).toBeLessThan(4000);
    const response = await call;
    expect(response.error?.code).toBe(-32018);
    expect(response.error?.data).toMatchObject({ dmcp_code: "EXECUTOR_LOST" });
  });

  // §13.1: `consumes` holds topics, not wildcard patterns; a gateway refuses such an announcement
  // (§6.1) and reports it on dmcp.v1.err.<gateway>.
  it("an agent whose profile consumes a wildcard pattern is refused, with a report (§13.1, §6.1)", async () => {
    const reports = caller.subscribe("dmcp.v1.err.>");
    const patterned = await startRawAgent({ natsUrl: nats.url, name: "rawpattern", heartbeatMs: 500, consumes: ["raw.*"] });
    try {
      for await (const msg of reports) {
        const report = JSON.parse(new TextDecoder().decode(msg.data)) as Envelope;
        const text = JSON.stringify(report.payload);
        // Only the refusal of its announcement: as it starts, its consumer also replays (and reports) the
        // invalid context update an earlier test published on raw.commands.
        if (!text.includes("rawpattern") || text.includes('"topic"')) continue;
        expect(report.type).toBe("error_notification");
        expect(text).toMatch(/profile\.consumes\.0/);
        break;
      }
      expect((await toolsList()).some((t) => t.name === "rawpattern__add")).toBe(false);
    } finally {
      reports.unsubscribe();
      await patterned.stop();
    }
  });

  // ------------------------------------------------------------------------------------------
  // Every envelope sent
  // ------------------------------------------------------------------------------------------

  it("every envelope the agents sent validates against schemas/envelope.schema.json", () => {
    const onWire = fromAgents();
    const logged = agents.flatMap((a) => a.sent);
    expect(onWire.length).toBeGreaterThan(50);
    expect(logged.length).toBeGreaterThan(50);
    // the validator is not vacuous: a lower-case "z" or a missing payload is refused
    const sample = onWire[0]!.envelope;
    expect(validateEnvelope({ ...sample, timestamp: sample.timestamp.replace("Z", "z") })).toBe(false);
    expect(validateEnvelope({ ...sample, payload: undefined })).toBe(false);
    const failures: string[] = [];
    for (const { subject, envelope } of [...onWire, ...logged]) {
      const ok: boolean = validateEnvelope(envelope);
      if (!ok) failures.push(`${subject} ${envelope.type}: ${ajv.errorsText(validateEnvelope.errors)}`);
    }
    expect(failures).toEqual([]);
    const kinds = new Set(onWire.map((t) => `${t.envelope.type}${t.envelope.type === "agent_heartbeat" ? `/${String(t.envelope.payload.kind)}` : ""}`));
    expect([...kinds].sort()).toEqual(["agent_heartbeat/announce", "agent_heartbeat/heartbeat", "context_update", "error_notification", "prompt_response"]);
    // ids are unique; every reply has a correlation_id; timestamps are RFC 3339 with Z
    // §5.2 step 1: the report on dmcp.v1.err.<instance> is a message of its own, with its own id.
    const ids = onWire.map((t) => t.envelope.id);
    const reused = ids.filter((id, i) => ids.indexOf(id) !== i);
    expect(reused.map((id) => onWire.filter((t) => t.envelope.id === id).map((t) => t.subject))).toEqual([]);
    for (const t of onWire) {
      if (t.envelope.type === "prompt_response" || t.envelope.type === "error_notification") {
        expect(t.envelope.correlation_id).toBeTruthy();
      }
      expect(t.envelope.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    }
  });
});

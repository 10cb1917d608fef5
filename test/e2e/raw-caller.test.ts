/**
 * Conformance of PROTOCOL.md from the other side of raw-agent.test.ts: a caller and a misbehaving
 * service written from the document alone (plain NATS messages, no imports from src/), against the
 * real `dmcp wrap` and `dmcp gateway` (from dist/; `npm run build` first).
 */
import { randomUUID } from "node:crypto";

import { Kvm } from "@nats-io/kv";
import { connect, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { gatewayTransport, RawMcpClient } from "../support/mcp-client.js";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually, startGatewayHttp, wrapFixtureStdio, type Child } from "../support/processes.js";

type Envelope = Record<string, unknown> & { type: string; correlation_id?: string; session_id?: string; payload: Record<string, unknown> };

function envelope(type: string, payload: Record<string, unknown>, extra: Record<string, unknown> = {}): Envelope {
  const id = randomUUID();
  return { dMCP_version: "0.1", type, id, correlation_id: id, timestamp: new Date().toISOString(), sender_id: "raw-caller", payload, ...extra };
}

describe("a caller and a service written from PROTOCOL.md alone", () => {
  let nats: EmbeddedNats;
  let nc: NatsConnection;
  let executor: Child;
  let gateway: Child & { url: string };
  let client: RawMcpClient;
  let instance: string;

  async function ask(body: string | Envelope, subject = "dmcp.v1.req.fx"): Promise<Envelope> {
    const data = typeof body === "string" ? body : JSON.stringify(body);
    const reply = await nc.request(subject, data, { timeout: 10_000 });
    return reply.json<Envelope>();
  }

  beforeAll(async () => {
    nats = await startTestNats();
    nc = await connect({ servers: nats.url, name: "raw-caller" });
    gateway = await startGatewayHttp(nats.url, ["--call-timeout", "20000"]);
    executor = await wrapFixtureStdio(nats.url, "fx");
    // Executors answer ping themselves, as the instance that got it (§5.2).
    instance = String((await ask(envelope("prompt_request", { service: "fx", method: "ping" }))).sender_id);
    client = await RawMcpClient.connect(gatewayTransport("http", { natsUrl: nats.url, httpUrl: gateway.url }));
  });

  afterAll(async () => {
    await client?.close();
    await nc?.close();
    await executor?.stop();
    await gateway?.stop();
    await nats?.stop();
  });

  describe("every error the executor raises itself names its instance in data.instance (§5.1, §13.2)", () => {
    it("INVALID_ENVELOPE for a request that fails validation, beside data.issues", async () => {
      const request = envelope("prompt_request", { service: "fx" });
      const answer = await ask(request);
      expect(answer).toMatchObject({ type: "error_notification", correlation_id: request.id, payload: { code: "INVALID_ENVELOPE", jsonrpc_code: -32600 } });
      expect(answer.payload.data).toMatchObject({ instance, issues: [{ path: "payload.method" }] });
    });

    it("INVALID_ENVELOPE correlated with an id of 256 characters in more UTF-16 units (§2: ids are counted in characters)", async () => {
      const id = "😀".repeat(256);
      const answer = await ask({ ...envelope("prompt_request", { service: "fx" }), id, correlation_id: id });
      expect(answer).toMatchObject({ correlation_id: id, payload: { code: "INVALID_ENVELOPE", data: { instance } } });
    });

    it("INVALID_ENVELOPE for a message that is not JSON", async () => {
      const answer = await ask("{not json");
      expect(answer.payload).toMatchObject({ code: "INVALID_ENVELOPE", data: { instance } });
    });

    it("PAYLOAD_TOO_LARGE for a result over the server's max_payload, with the request's session_id", async () => {
      const request = envelope(
        "prompt_request",
        { service: "fx", method: "tools/call", params: { name: "big", arguments: { bytes: 2 * 1024 * 1024 } } },
        { session_id: "raw-session" },
      );
      const answer = await ask(request);
      expect(answer).toMatchObject({ correlation_id: request.id, session_id: "raw-session", payload: { code: "PAYLOAD_TOO_LARGE", jsonrpc_code: -32014, data: { instance } } });
    });
  });

  describe("the gateway as the caller of a service that answers with the wrong type (§5.3)", () => {
    const service = "odd";
    const oddInstance = "odd-0001";

    beforeAll(async () => {
      // Answers each tools/call with a message of the type the tool is named after, correlated with the call.
      const answer = (msg: Msg) => {
        const request = msg.json<Envelope>();
        const params = request.payload.params as { name?: string } | undefined;
        const payloads: Record<string, Record<string, unknown>> = {
          agent_heartbeat: { kind: "heartbeat", service, instance: oddInstance, status: "ready", interval_ms: 60_000, inflight: 1, handled: 0 },
          prompt_request: { service, method: "tools/call", params: { name: "x" } },
          prompt_response: { result: { content: [{ type: "text", text: "fine" }] } },
        };
        if (params?.name === "chatty") return chatter(msg, request);
        const type = request.payload.method === "ping" ? "prompt_response" : String(params?.name);
        const payload = request.payload.method === "ping" ? { result: {} } : payloads[type]!;
        msg.respond(JSON.stringify(envelope(type, payload, { correlation_id: request.correlation_id, sender_id: oddInstance })));
      };
      // Sends, before its answer, notifications of every kind a service could put on the reply subject.
      const chatter = (msg: Msg, request: Envelope) => {
        const token = (request.payload.params as { _meta?: { progressToken?: unknown } })._meta?.progressToken;
        const notifications: [string, Record<string, unknown>][] = [
          ["notifications/progress", { progressToken: token, progress: 1, total: 2 }],
          ["notifications/progress", { progressToken: "not-the-clients", progress: 1 }],
          ["notifications/progress", { progress: 1 }],
          ["notifications/message", { level: "info", data: "from the service" }],
          ["notifications/resources/updated", { uri: "file:///made-up" }],
          ["notifications/cancelled", { requestId: 1, reason: "made up" }],
          ["sampling/createMessage", { messages: [] }],
          ["x-odd/whatever", {}],
        ];
        for (const [method, params] of notifications) {
          msg.respond(JSON.stringify(envelope("context_update", { method, params }, { correlation_id: request.correlation_id, sender_id: oddInstance })));
        }
        const done = { result: { content: [{ type: "text", text: "said it all" }] } };
        msg.respond(JSON.stringify(envelope("prompt_response", done, { correlation_id: request.correlation_id, sender_id: oddInstance })));
      };
      nc.subscribe(`dmcp.v1.req.${service}`, { queue: `dmcp-${service}`, callback: (_err, msg) => answer(msg) });
      nc.subscribe(`dmcp.v1.inst.${service}.${oddInstance}.req`, { callback: (_err, msg) => answer(msg) });
      await nc.flush();
      const tools = ["agent_heartbeat", "prompt_request", "prompt_response", "chatty"].map((name) => ({ name, inputSchema: { type: "object" } }));
      const announcement = envelope(
        "agent_heartbeat",
        { kind: "announce", service, instance: oddInstance, status: "ready", interval_ms: 60_000, started_at: new Date().toISOString(), catalog: { tools } },
        { sender_id: oddInstance },
      );
      delete announcement.correlation_id;
      const registry = await new Kvm(nc).open("dmcp_registry");
      await registry.put(`${service}.${oddInstance}`, JSON.stringify(announcement));
      await eventually(async () => (await client.toolNames()).includes("prompt_response"));
    });

    it("a correlated prompt_response settles the call", async () => {
      expect(await client.result("tools/call", { name: "prompt_response", arguments: {} })).toMatchObject({ content: [{ text: "fine" }] });
    });

    it("passes on to the client only progress for its own token and log messages, ignoring the rest (§5.6)", async () => {
      const since = client.notifications.length;
      expect(await client.result("tools/call", { name: "chatty", arguments: {}, _meta: { progressToken: "tok-1" } })).toMatchObject({ content: [{ text: "said it all" }] });
      // The gateway's own list_changed, should the catalog change meanwhile, is not the call's.
      const got = client.notifications.slice(since).filter((n) => !n.method.endsWith("/list_changed"));
      expect(got).toEqual([
        { method: "notifications/progress", params: { progressToken: "tok-1", progress: 1, total: 2 } },
        { method: "notifications/message", params: { level: "info", data: "from the service" } },
      ]);
    });

    it.each(["agent_heartbeat", "prompt_request"])("a correlated %s fails the call with INVALID_ENVELOPE instead of waiting for the deadline", async (type) => {
      const response = await client.request("tools/call", { name: type, arguments: {} });
      expect(response.error).toMatchObject({ code: -32600, data: { dmcp_code: "INVALID_ENVELOPE", service } });
      expect(response.error?.message).toContain(type);
    });
  });

  describe("a replica pinned to a client session, sending it session notifications (§16)", () => {
    const service = "pinned";
    const pinnedInstance = "pinned-0001";
    let stdioClient: RawMcpClient;

    beforeAll(async () => {
      // Its one tool publishes, on the session subject of the gateway that sent the call, notifications
      // of every kind for the call's client session, the log message last; then it answers.
      const serve = (msg: Msg) => {
        const request = msg.json<Envelope>();
        const answer = (result: Record<string, unknown>) =>
          msg.respond(JSON.stringify(envelope("prompt_response", { result }, { correlation_id: request.correlation_id, sender_id: pinnedInstance })));
        if (request.payload.method !== "tools/call") return answer({});
        const gateway = (request.client_session as { gateway: string }).gateway;
        const notifications: [string, Record<string, unknown>][] = [
          ["notifications/progress", { progressToken: 1, progress: 1 }],
          ["notifications/cancelled", { requestId: 1, reason: "made up" }],
          ["sampling/createMessage", { messages: [] }],
          ["x-odd/whatever", {}],
          ["notifications/message", { level: "info", data: "the last one" }],
        ];
        for (const [method, params] of notifications) {
          const update = envelope("context_update", { method, params, data: { service } }, { sender_id: pinnedInstance, session_id: request.session_id });
          delete update.correlation_id;
          nc.publish(`dmcp.v1.gw.${gateway}.session`, JSON.stringify(update));
        }
        answer({ content: [{ type: "text", text: "notified" }] });
      };
      nc.subscribe(`dmcp.v1.req.${service}`, { queue: `dmcp-${service}`, callback: (_err, msg) => serve(msg) });
      nc.subscribe(`dmcp.v1.inst.${service}.${pinnedInstance}.req`, { callback: (_err, msg) => serve(msg) });
      await nc.flush();
      const announcement = envelope(
        "agent_heartbeat",
        {
          kind: "announce",
          service,
          instance: pinnedInstance,
          status: "ready",
          interval_ms: 60_000,
          started_at: new Date().toISOString(),
          client_sessions: true,
          catalog: { tools: [{ name: "notify", inputSchema: { type: "object" } }] },
        },
        { sender_id: pinnedInstance },
      );
      delete announcement.correlation_id;
      await (await new Kvm(nc).open("dmcp_registry")).put(`${service}.${pinnedInstance}`, JSON.stringify(announcement));
      // Over stdio every notification the gateway sends the session reaches this client, in order.
      stdioClient = await RawMcpClient.connect(gatewayTransport("stdio", { natsUrl: nats.url }));
      await eventually(async () => (await stdioClient.toolNames()).includes("notify"));
    });

    afterAll(async () => {
      await stdioClient?.close();
    });

    it("the gateway hands the client session its log messages, and none of the methods §16 does not list", async () => {
      const since = stdioClient.notifications.length;
      expect(await stdioClient.result("tools/call", { name: "notify", arguments: {} })).toMatchObject({ content: [{ text: "notified" }] });
      await stdioClient.waitForNotification("notifications/message", 15_000, since);
      const got = stdioClient.notifications.slice(since).filter((n) => !n.method.endsWith("/list_changed"));
      expect(got).toEqual([{ method: "notifications/message", params: { level: "info", data: "the last one" } }]);
    });
  });

  it("a heartbeat whose payload names another instance than its subject keeps no instance alive (§6.2)", async () => {
    const service = "ghost";
    const instance = "ghost-0001";
    const heartbeat = (named: string) => {
      const beat = envelope(
        "agent_heartbeat",
        { kind: "heartbeat", service, instance: named, status: "ready", interval_ms: 500, inflight: 0, handled: 0 },
        { sender_id: instance },
      );
      delete beat.correlation_id;
      nc.publish(`dmcp.v1.hb.${service}.${instance}`, JSON.stringify(beat));
    };
    let named = instance;
    const beats = setInterval(() => heartbeat(named), 200);
    try {
      const announcement = envelope(
        "agent_heartbeat",
        {
          kind: "announce",
          service,
          instance,
          status: "ready",
          interval_ms: 500,
          started_at: new Date().toISOString(),
          catalog: { tools: [{ name: "haunt", inputSchema: { type: "object" } }] },
        },
        { sender_id: instance },
      );
      delete announcement.correlation_id;
      await (await new Kvm(nc).open("dmcp_registry")).put(`${service}.${instance}`, JSON.stringify(announcement));
      await eventually(async () => (await client.toolNames()).includes("haunt"));
      // From now on its subject's heartbeats name someone else: the instance has stopped beating.
      named = "ghost-9999";
      await eventually(async () => !(await client.toolNames()).includes("haunt"), 20_000);
    } finally {
      clearInterval(beats);
    }
  });
});

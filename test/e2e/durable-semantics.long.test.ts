/**
 * What durable delivery promises, one rule at a time, against a real nats-server and real executors
 * (`dmcp wrap --delivery durable` around the fixture): requests written to the work stream as another
 * language would, and calls through `dmcp gateway` for priority lanes and cancellation.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, createInbox, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import { randomUUID } from "node:crypto";
import { DEAD_LETTER_HEADERS } from "../../src/bus/durable/dead-letters.js";
import {
  ACCEPTED_METHOD,
  CANCEL_METHOD,
  createEnvelope,
  DEAD_LETTER_STREAM,
  decodeEnvelope,
  encodeEnvelope,
  ErrorCode,
  META_ATTEMPT,
  META_CORRELATION_ID,
  META_PRIORITY,
  subjects,
  WORK_STREAM,
  workConsumer,
  type Envelope,
  type PriorityLane,
} from "../../src/protocol/index.js";
import { planDelivery } from "../../src/bus/durable/delivery-plan.js";
import { deliveryFromConfig, deliveryFromFlags, resultTtlFromConfig } from "../../src/cli/delivery.js";
import { parseConfig } from "../../src/cli/config.js";
import { provisionTestStreams, startTestNats, type EmbeddedNats } from "../support/nats.js";
import type { RawMcpClient } from "../support/mcp-client.js";
import { crashRuns, eventually, runDmcp, wrapFixtureStdio, type Child } from "../support/processes.js";
import { startWorld, type World } from "../support/world.js";

const DURABLE = ["--delivery", "durable", "--ack-wait", "1s", "--backoff", "100ms"];

/** A raw durable request, as an agent in another language would queue it. */
function request(service: string, tool: string, args: Record<string, unknown>, replyTo: string, extra: Record<string, unknown> = {}) {
  const id = randomUUID();
  const envelope = createEnvelope(
    "prompt_request",
    { service, method: "tools/call", params: { name: tool, arguments: args } },
    {
      id,
      correlationId: id,
      sender: "test",
      deadline: new Date(Date.now() + 30_000),
    },
  );
  return { id, data: encodeEnvelope({ ...envelope, receipt: true, reply_to: replyTo, ...extra }) };
}

/** Calls a tool on one instance directly (past the queue); resolves the error message, if any. */
async function directCall(nc: NatsConnection, service: string, instance: string, tool: string): Promise<string | undefined> {
  const request = createEnvelope("prompt_request", { service, method: "tools/call", params: { name: tool, arguments: { text: "x" } } }, { sender: "test" });
  const reply = decodeEnvelope((await nc.request(subjects.instanceRequest(service, instance), encodeEnvelope(request), { timeout: 10_000 })).data);
  return reply.ok && reply.envelope.type === "error_notification" ? reply.envelope.payload.message : undefined;
}

/** The pid of the upstream server behind an instance (the fixture's `whoami` says `<name>:<pid>`). */
async function upstreamPid(nc: NatsConnection, service: string, instance: string): Promise<number> {
  const request = createEnvelope("prompt_request", { service, method: "tools/call", params: { name: "whoami", arguments: {} } }, { sender: "test" });
  const reply = decodeEnvelope((await nc.request(subjects.instanceRequest(service, instance), encodeEnvelope(request), { timeout: 10_000 })).data);
  const text = reply.ok && reply.envelope.type === "prompt_response" ? (reply.envelope.payload.result.content as { text: string }[])[0]!.text : "";
  return Number(text.split(":")[1]);
}

/** Collects the envelopes that arrive on a fresh inbox. */
function inbox(nc: NatsConnection) {
  const subject = createInbox();
  const received: Envelope[] = [];
  nc.subscribe(subject, {
    callback: (_err, msg) => {
      const decoded = decodeEnvelope(msg.data, Number.POSITIVE_INFINITY);
      if (decoded.ok) received.push(decoded.envelope);
    },
  });
  const answers = (id: string) => received.filter((e) => e.correlation_id === id && (e.type === "prompt_response" || e.type === "error_notification"));
  return {
    subject,
    received,
    answers,
    answer: (id: string) => eventually(() => answers(id)[0], 20_000),
  };
}

describe("durable requests on the bus", () => {
  let nats: EmbeddedNats;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let solo: Child;
  let doomed: Child;

  beforeAll(async () => {
    nats = await startTestNats();
    await provisionTestStreams(nats.url);
    [solo, doomed] = await Promise.all([
      wrapFixtureStdio(nats.url, "solo", [...DURABLE, "--instance", "solo-1", "--metrics-port", "0"]),
      wrapFixtureStdio(nats.url, "doomed", [...DURABLE, "--max-deliver", "1", "--instance", "doomed-1"]),
    ]);
    nc = await connect({ servers: nats.url });
    js = jetstream(nc);
  }, 60_000);

  afterAll(async () => {
    await nc?.close();
    await Promise.all([solo?.stop(), doomed?.stop()]);
    await nats?.stop();
  });

  const deliveries = async (lane: PriorityLane = "normal") => (await (await jetstreamManager(nc)).consumers.info(WORK_STREAM, workConsumer("solo", lane))).delivered.consumer_seq;

  it("answers on reply_to, acknowledges, and gives the upstream the correlation id and the attempt in _meta", async () => {
    const replies = inbox(nc);
    const { id, data } = request("solo", "meta", {}, replies.subject);
    await js.publish(subjects.work("solo", "normal"), data, { msgID: id });
    const answer = await replies.answer(id);
    expect(answer.type).toBe("prompt_response");
    const meta = (answer.payload as { result: { structuredContent: { meta: Record<string, unknown> } } }).result.structuredContent.meta;
    expect(meta[META_CORRELATION_ID]).toBe(id);
    expect(meta[META_ATTEMPT]).toBe(1);
    await eventually(async () => (await (await jetstreamManager(nc)).streams.info(WORK_STREAM)).state.messages === 0);
  });

  it("stores a request published twice under one Nats-Msg-Id once", async () => {
    const replies = inbox(nc);
    const { id, data } = request("solo", "echo", { text: "once" }, replies.subject);
    const first = await js.publish(subjects.work("solo", "normal"), data, { msgID: id });
    const second = await js.publish(subjects.work("solo", "normal"), data, { msgID: id });
    expect(first.duplicate).toBe(false);
    expect(second.duplicate).toBe(true);
    expect(second.seq).toBe(first.seq);
    await replies.answer(id);
  });

  it("answers a request delivered again after its work finished from the result store, without running it again", async () => {
    const replies = inbox(nc);
    const { id, data } = request("solo", "echo", { text: "stored" }, replies.subject);
    await js.publish(subjects.work("solo", "normal"), data, { msgID: `${id}-a` });
    const first = await replies.answer(id);
    // The same request again (past the duplicate window, or re-driven from the dead letters).
    await js.publish(subjects.work("solo", "normal"), data, { msgID: `${id}-b` });
    await eventually(() => replies.answers(id).length === 2);
    const [a, b] = replies.answers(id);
    // Byte for byte the stored answer: a new run would have made a new envelope.
    expect(b!.id).toBe(a!.id);
    expect(first.type).toBe("prompt_response");
    const [, metricsUrl] = await solo.waitFor(/"url":"(http[^"]+\/metrics)"/);
    const metrics = await (await fetch(metricsUrl!)).text();
    expect(metrics).toMatch(/dmcp_durable_requests_total\{service="solo",outcome="replayed"\} 1\b/);
  });

  it("does not start a request whose deadline has passed: it answers DEADLINE_EXCEEDED and removes it", async () => {
    const replies = inbox(nc);
    const { id, data } = request("solo", "add_tool", { name: "late" }, replies.subject, { deadline: new Date(Date.now() - 1000).toISOString() });
    await js.publish(subjects.work("solo", "normal"), data, { msgID: id });
    const answer = await replies.answer(id);
    expect(answer).toMatchObject({ type: "error_notification", payload: { code: ErrorCode.DeadlineExceeded } });
    // Never started: the tool it would have added does not exist.
    expect(await directCall(nc, "solo", "solo-1", "late")).toContain("Unknown tool: late");
  });

  it("takes a tool's explicit error (isError, or a JSON-RPC error of the upstream) as the answer, not as a reason to deliver again", async () => {
    const before = await deliveries();
    const replies = inbox(nc);
    const failing = request("solo", "fail", {}, replies.subject);
    const invalid = request("solo", "add", { a: "not a number", b: 1 }, replies.subject);
    await js.publish(subjects.work("solo", "normal"), failing.data, { msgID: failing.id });
    await js.publish(subjects.work("solo", "normal"), invalid.data, { msgID: invalid.id });
    expect(await replies.answer(failing.id)).toMatchObject({ type: "prompt_response", payload: { result: { isError: true } } });
    expect(await replies.answer(invalid.id)).toMatchObject({ type: "error_notification", payload: { code: ErrorCode.UpstreamError, jsonrpc_code: -32602 } });
    expect(await deliveries()).toBe(before + 2);
  });

  it("dead-letters an invalid message in the work queue instead of delivering it again", async () => {
    const garbage = new TextEncoder().encode(JSON.stringify({ dMCP_version: "0.1", type: "prompt_request", id: "junk-1", reply_to: "x.y" }));
    const ack = await js.publish(subjects.work("solo", "normal"), garbage, { msgID: "junk-1" });
    const jsm = await jetstreamManager(nc);
    const dead = await eventually(() => jsm.streams.getMessage(DEAD_LETTER_STREAM, { last_by_subj: subjects.deadLetter("solo") }).catch(() => undefined));
    expect(dead.header?.get(DEAD_LETTER_HEADERS.code)).toBe(ErrorCode.InvalidEnvelope);
    expect(dead.header?.get(DEAD_LETTER_HEADERS.workSequence)).toBe(String(ack.seq));
    await eventually(async () => (await jsm.streams.info(WORK_STREAM)).state.messages === 0);
  });

  it("dead-letters a request whose executor died during its last attempt (max-deliveries advisory), and answers its caller", async () => {
    const replies = inbox(nc);
    const { id, data } = request("doomed", "sleep", { ms: 60_000 }, replies.subject);
    await js.publish(subjects.work("doomed", "normal"), data, { msgID: id });
    // Its receipt says the replica holds it; then the replica dies.
    await eventually(() => replies.received.some((e) => e.correlation_id === id && e.type === "context_update"));
    doomed.kill("SIGKILL");
    const answer = await replies.answer(id);
    expect(answer).toMatchObject({ type: "error_notification", payload: { code: ErrorCode.RetriesExhausted, data: { deliveries: 1, attempts: 0 } } });
    expect((answer.payload as { message: string }).message).toBe(
      '"doomed" got no answer in 1 delivery: 1 was lost with its replica; the replica holding the last one died or was cut off from the server before answering',
    );
    const jsm = await jetstreamManager(nc);
    const dead = await jsm.streams.getMessage(DEAD_LETTER_STREAM, { last_by_subj: subjects.deadLetter("doomed") });
    expect(dead.header?.get(DEAD_LETTER_HEADERS.correlationId)).toBe(id);
    await eventually(async () => (await jsm.streams.info(WORK_STREAM)).state.messages === 0);
  }, 60_000);

  it("says in a dead letter what the earlier deliveries did when the replica holding the last one was lost", async () => {
    const fated = await wrapFixtureStdio(nats.url, "fated", [...DURABLE, "--max-deliver", "2", "--instance", "fated-1"]);
    const replies = inbox(nc);
    const { id, data } = request("fated", "sleep", { ms: 60_000 }, replies.subject);
    const receipts = () => replies.received.filter((e) => e.correlation_id === id && e.type === "context_update").length;
    const pid = await upstreamPid(nc, "fated", "fated-1");
    await js.publish(subjects.work("fated", "normal"), data, { msgID: id });
    await eventually(() => receipts() >= 1);
    // Its upstream dies during the first delivery; the second (the last) runs on the restarted one, and then its replica dies.
    process.kill(pid, "SIGKILL");
    await eventually(() => receipts() >= 2);
    fated.kill("SIGKILL");
    const answer = await replies.answer(id);
    expect(answer).toMatchObject({ type: "error_notification", payload: { code: ErrorCode.RetriesExhausted, data: { deliveries: 2, attempts: 1 } } });
    expect((answer.payload as { message: string }).message).toBe(
      '"fated" got no answer in 2 deliveries: 1 ran and failed (UPSTREAM_CLOSED), 1 was lost with its replica; the replica holding the last one died or was cut off from the server before answering',
    );
  }, 60_000);

  it("counts in a dead letter only the deliveries that ran: one handed back by a stopping replica did not", async () => {
    const settings = [...DURABLE, "--max-deliver", "3"];
    const first = await wrapFixtureStdio(nats.url, "brittle", [...settings, "--concurrency", "1", "--instance", "brittle-1"]);
    let second: Child | undefined;
    try {
      const replies = inbox(nc);
      const blocker = request("brittle", "sleep", { ms: 30_000 }, replies.subject);
      const poison = request("brittle", "crash", {}, replies.subject);
      await js.publish(subjects.work("brittle", "normal"), blocker.data, { msgID: blocker.id });
      await eventually(() => replies.received.some((e) => e.correlation_id === blocker.id && e.type === "context_update"));
      // brittle-1's one slot is busy: it holds the poison request, waiting for the slot.
      await js.publish(subjects.work("brittle", "normal"), poison.data, { msgID: poison.id });
      await eventually(async () => (await (await jetstreamManager(nc)).consumers.info(WORK_STREAM, workConsumer("brittle", "normal"))).num_ack_pending >= 2);
      second = await wrapFixtureStdio(nats.url, "brittle", [...settings, "--instance", "brittle-2"]);
      // Stopping, brittle-1 hands the poison back without running it; brittle-2 runs it on the two deliveries left.
      first.kill("SIGTERM");
      const answer = await replies.answer(poison.id);
      expect(answer).toMatchObject({ type: "error_notification", payload: { code: ErrorCode.RetriesExhausted, data: { deliveries: 3, attempts: 2 } } });
      expect((answer.payload as { message: string }).message).toBe(
        '"brittle" got no answer in 3 deliveries: 2 ran and failed (UPSTREAM_CLOSED), 1 did not run (SHUTTING_DOWN); the last failure: UPSTREAM_CLOSED: the upstream MCP server closed the connection during the call',
      );
      await eventually(() => crashRuns([first, second!], poison.id) === 2);
    } finally {
      await Promise.all([first.stop(), second?.stop()]);
    }
  }, 60_000);
});

describe("durable calls through the gateway: lanes and cancellation", () => {
  let world: World;
  let nats: EmbeddedNats;
  let client: RawMcpClient;
  let nc: NatsConnection;

  beforeAll(async () => {
    // One call at a time, so that a backlog forms.
    world = await startWorld({
      services: { lanes: [...DURABLE, "--concurrency", "1", "--high-priority-tools", "whoami", "--instance", "lanes-1"] },
      gateway: ["--call-timeout", "60000"],
      awaitTool: "sleep",
    });
    ({ nats, client } = world);
    nc = await connect({ servers: nats.url });
  }, 60_000);

  afterAll(async () => {
    await nc?.close();
    await world?.dispose();
  });

  it("lets high-priority calls (chosen by the caller in _meta, or by the tool's lane) overtake a backlog of normal ones", async () => {
    const order: string[] = [];
    const call = (label: string, params: Record<string, unknown>) =>
      client.request("tools/call", params, 60_000).then((response) => {
        expect(response.error).toBeUndefined();
        order.push(label);
      });
    const backlog = Array.from({ length: 20 }, (_, i) => call(`normal-${i}`, { name: "sleep", arguments: { ms: 100 } }));
    // Let the backlog reach the queue first.
    await eventually(async () => (await (await jetstreamManager(nc)).streams.info(WORK_STREAM)).state.messages >= 15);
    const urgent = call("high-meta", { name: "sleep", arguments: { ms: 1 }, _meta: { [META_PRIORITY]: "high" } });
    const byTool = call("high-tool", { name: "whoami", arguments: {} });
    await Promise.all([...backlog, urgent, byTool]);
    // Each high call waits for at most the call running and the one normal call held for a slot.
    expect(order.indexOf("high-meta")).toBeLessThan(6);
    expect(order.indexOf("high-tool")).toBeLessThan(6);
  }, 60_000);

  it("keeps a cancelled call that is still queued from ever starting", async () => {
    const running = client.request("tools/call", { name: "sleep", arguments: { ms: 1500 } }, 60_000);
    await eventually(async () => (await (await jetstreamManager(nc)).consumers.info(WORK_STREAM, workConsumer("lanes", "normal"))).num_ack_pending >= 1);
    const queued = client.request("tools/call", { name: "add_tool", arguments: { name: "ghost" } }, 60_000);
    const queuedId = client.lastRequestId;
    await eventually(async () => (await (await jetstreamManager(nc)).streams.info(WORK_STREAM)).state.messages >= 2);
    await client.notify("notifications/cancelled", { requestId: queuedId, reason: "changed my mind" });
    void queued.catch(() => undefined);
    await running;
    // Queued after the cancelled call: once this is answered, the cancelled one has had its turn.
    await client.result("tools/call", { name: "echo", arguments: { text: "after" } });
    expect(await directCall(nc, "lanes", "lanes-1", "ghost")).toContain("Unknown tool: ghost");
  }, 60_000);

  const heldByTheReplica = async () => (await (await jetstreamManager(nc)).consumers.info(WORK_STREAM, workConsumer("lanes", "normal"))).num_ack_pending;

  it("stops a running durable call when its caller cancels it (the upstream gets notifications/cancelled)", async () => {
    // Delivered is not yet running: the replica's receipt on the gateway's reply subject says it runs.
    const receipts = nc.subscribe("_INBOX.>");
    const receipt = (async () => {
      for await (const msg of receipts) {
        const decoded = decodeEnvelope(msg.data, Number.POSITIVE_INFINITY);
        if (decoded.ok && decoded.envelope.type === "context_update" && decoded.envelope.payload.method === ACCEPTED_METHOD) return;
      }
    })();
    const running = client.request("tools/call", { name: "sleep", arguments: { ms: 30_000 } }, 60_000);
    const id = client.lastRequestId;
    void running.catch(() => undefined);
    await receipt;
    receipts.unsubscribe();
    await client.notify("notifications/cancelled", { requestId: id, reason: "stop" });
    const seen = await eventually(async () => {
      const result = await client.result("tools/call", { name: "cancelled", arguments: {} });
      const cancellations = (result.structuredContent as { cancellations: unknown[] }).cancellations;
      return cancellations.length > 0 ? cancellations : undefined;
    }, 30_000);
    // The client's reason reaches the upstream (PROTOCOL.md §5.5).
    expect(seen[0]).toMatchObject({ requestId: expect.anything(), reason: "stop" });
  }, 60_000);

  it("answers CANCELLED, without running it, a durable request whose cancellation came before it started", async () => {
    const js = jetstream(nc);
    const replies = inbox(nc);
    const blocker = request("lanes", "sleep", { ms: 1500 }, replies.subject);
    const victim = request("lanes", "sleep", { ms: 30_000 }, replies.subject);
    await js.publish(subjects.work("lanes", "normal"), blocker.data, { msgID: blocker.id });
    await eventually(() => replies.received.some((e) => e.correlation_id === blocker.id && e.type === "context_update"));
    await js.publish(subjects.work("lanes", "normal"), victim.data, { msgID: victim.id });
    // The replica holds it, waiting for its one slot.
    await eventually(async () => (await heldByTheReplica()) >= 2);
    // The cancellation as a gateway publishes it (§5.5), ahead of the CANCELLED answer it stores in the
    // result store (§15.8), which here never comes: the replica reads no answer there before the call starts.
    const cancellation = createEnvelope("context_update", { method: CANCEL_METHOD, params: { reason: "stop" } }, { sender: "test", correlationId: victim.id });
    nc.publish(subjects.cancel("lanes"), encodeEnvelope(cancellation));
    expect(await replies.answer(victim.id)).toMatchObject({ type: "error_notification", payload: { code: ErrorCode.Cancelled } });
    expect(replies.received.some((e) => e.correlation_id === victim.id && e.type === "context_update")).toBe(false);
  }, 60_000);
});

describe("delivery plans and options", () => {
  const catalog = {
    tools: [
      { name: "read_file", inputSchema: { type: "object" }, annotations: { readOnlyHint: true } },
      { name: "write_file", inputSchema: { type: "object" }, annotations: { idempotentHint: true } },
      { name: "deploy", inputSchema: { type: "object" } },
    ],
    resources: [],
    resource_templates: [],
    prompts: [],
  };

  it("auto: read-only tools direct, the others durable; rules win, direct before durable", () => {
    expect(planDelivery(catalog, { mode: "auto" })).toEqual({ mode: "durable", priority: "normal", tools: { read_file: { mode: "direct" } } });
    const flags = deliveryFromFlags({ delivery: "direct", "durable-tools": ["*_file,deploy"], "direct-tools": ["write_*"], "high-priority-tools": ["dep*"] });
    expect(planDelivery(catalog, flags!)).toEqual({
      mode: "direct",
      priority: "normal",
      tools: { read_file: { mode: "durable" }, deploy: { mode: "durable", priority: "high" } },
    });
    expect(deliveryFromFlags({})).toBeUndefined();
    expect(() => deliveryFromFlags({ delivery: "sometimes" })).toThrow(/direct, durable or auto/);
  });

  it("reads durable delivery from the config file", () => {
    const config = parseConfig({
      servers: {
        files: {
          command: "files-server",
          delivery: "durable",
          tools: { "read_*": { delivery: "direct" }, deploy: { priority: "high" } },
          durable: { maxDeliver: 3, ackWait: "20s", backoff: ["500ms", 2000], concurrency: 4, resultTtl: "1h" },
        },
      },
    });
    const options = deliveryFromConfig(config.servers.files!)!;
    expect(options.settings).toEqual({ maxDeliver: 3, ackWaitMs: 20_000, backoffMs: [500, 2000], concurrency: 4 });
    // The result store is the gateway's: dmcp up creates it with the longest TTL its servers ask for.
    expect(resultTtlFromConfig({ ...config.servers, other: parseConfig({ servers: { other: { command: "c", durable: { resultTtl: 60_000 } } } }).servers.other! })).toBe(3_600_000);
    expect(planDelivery(catalog, options, 3)).toEqual({
      mode: "durable",
      priority: "normal",
      tools: { read_file: { mode: "direct" }, deploy: { priority: "high" } },
      max_deliver: 3,
    });
    expect(() => parseConfig({ servers: { x: { command: "c", delivery: "eventually" } } })).toThrow(/servers\.x/);
    expect(deliveryFromConfig(parseConfig({ servers: { x: { command: "c" } } }).servers.x!)).toBeUndefined();
  });

  it("documents the options in dmcp wrap --help, and --result-ttl in dmcp gateway --help (the gateway creates the result store)", async () => {
    const helpOf = async (command: string) => {
      const help = runDmcp([command, "--help"]);
      let out = "";
      help.process.stdout!.on("data", (chunk: Buffer) => (out += chunk.toString()));
      expect(await help.exited).toBe(0);
      return out;
    };
    const wrap = await helpOf("wrap");
    for (const flag of ["--delivery", "--durable-tools", "--direct-tools", "--high-priority-tools", "--max-deliver", "--ack-wait", "--backoff", "--concurrency"]) {
      expect(wrap).toContain(flag);
    }
    expect(wrap).not.toContain("--result-ttl");
    expect(await helpOf("gateway")).toContain("--result-ttl");
    expect(() => deliveryFromFlags({ "result-ttl": "1h" })).toThrow(/--result-ttl is a dmcp gateway option/);
  });
});

/** A client's notifications/cancelled travels over the bus to the executor or agent running the call. */
import { randomUUID } from "node:crypto";
import { createInbox } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as z from "zod";
import { Agent } from "../../src/agent/index.js";
import { connectBus, type Bus } from "../../src/bus/index.js";
import { createEnvelope, decodeEnvelope, encodeEnvelope, subjects, type Envelope } from "../../src/protocol/index.js";
import { silentLogger } from "../../src/util/logger.js";
import { connectRawNats, provisionTestStreams, startTestNats, type EmbeddedNats } from "../support/nats.js";
import { gatewayTransport, RawMcpClient } from "../support/mcp-client.js";
import { eventually, startGatewayHttp, wrapFixtureStdio, type Child } from "../support/processes.js";

describe("cancellation across the bus", () => {
  let nats: EmbeddedNats;
  let executor: Child;
  let metricsUrl: string;
  let gateway: Child & { url: string };
  let client: RawMcpClient;
  let bus: Bus;
  let agent: Agent;
  let agentSawAbort: unknown;
  /** Called when the agent's handler starts running a call. */
  let agentStarted: () => void = () => undefined;

  beforeAll(async () => {
    nats = await startTestNats();
    // The streams a gateway creates: the agent below starts before the gateway does.
    await provisionTestStreams(nats.url);
    executor = await wrapFixtureStdio(nats.url, "halting", ["--metrics-port", "0"]);
    metricsUrl = (await executor.waitFor(/"url":"(http:\/\/[^"]+\/metrics)"/))[1]!;
    bus = await connectBus({ servers: nats.url, name: "cancel-test", logger: silentLogger() });
    agent = new Agent({ bus, name: "patient", version: "1.0.0", logger: silentLogger() });
    agent.tool(
      "wait_for_abort",
      { description: "waits until cancelled", input: z.object({}) },
      (_args, ctx) =>
        new Promise((resolve) => {
          agentStarted();
          ctx.signal.addEventListener("abort", () => {
            agentSawAbort = ctx.signal.reason;
            resolve("stopped");
          });
        }),
    );
    await agent.start();
    gateway = await startGatewayHttp(nats.url);
    client = await RawMcpClient.connect(gatewayTransport("http", { natsUrl: nats.url, httpUrl: gateway.url }));
    await eventually(async () => {
      const names = await client.toolNames();
      return names.includes("sleep") && names.includes("wait_for_abort");
    });
  });

  afterAll(async () => {
    await client?.close();
    await gateway?.stop();
    await agent?.stop();
    await bus?.drain();
    await executor?.stop();
    await nats?.stop();
  });

  /** Starts a call, waits until `running` says it runs, cancels it, and checks that the client gets no answer. */
  async function startAndCancel(name: string, args: Record<string, unknown>, running: Promise<unknown>): Promise<void> {
    const pending = client.request("tools/call", { name, arguments: args }, 3000).then(
      () => "answered",
      () => "no answer",
    );
    await running;
    await client.notify("notifications/cancelled", { requestId: client.lastRequestId, reason: "user pressed stop" });
    expect(await pending).toBe("no answer");
  }

  it("stops the upstream call of a wrapped server: the server receives notifications/cancelled with the client's reason", async () => {
    // The session's first call opens its upstream session (a new stdio process): open it before timing a cancel.
    await client.result("tools/call", { name: "echo", arguments: { text: "warm" } });
    await startAndCancel("sleep", { ms: 20_000 }, executor.waitFor(/sleep: running 20000/, 10_000, executor.stderr.length));
    const cancellations = await eventually(async () => {
      const result = (await client.result("tools/call", { name: "cancelled", arguments: {} })) as { structuredContent: { cancellations: unknown[] } };
      return result.structuredContent.cancellations.length > 0 ? result.structuredContent.cancellations : undefined;
    });
    expect(cancellations[0]).toMatchObject({ requestId: expect.anything(), reason: "user pressed stop" });
    const metrics = await eventually(async () => {
      const text = await (await fetch(metricsUrl)).text();
      return /dmcp_executor_calls_total\{service="halting",method="tools\/call",outcome="cancelled"\} 1/.test(text) ? text : undefined;
    });
    expect(metrics).toMatch(/dmcp_executor_calls_in_flight\{service="halting"\} 0/);
  });

  it("aborts a native agent's handler through its signal, with the client's reason", async () => {
    agentSawAbort = undefined;
    const started = new Promise<void>((resolve) => {
      agentStarted = resolve;
    });
    await startAndCancel("wait_for_abort", {}, started);
    await eventually(() => agentSawAbort !== undefined);
    expect(agentSawAbort).toMatchObject({ code: "CANCELLED", message: "user pressed stop" });
  });

  it("answers a cancelled call CANCELLED with the caller's reason, although the agent's handler returned a result", async () => {
    // A requester of the test's own: it publishes with a reply subject it reads itself.
    const nc = await connectRawNats(nats.url);
    const inbox = createInbox();
    const replies: Envelope[] = [];
    const sub = nc.subscribe(inbox, {
      callback: (_err, msg) => {
        const decoded = decodeEnvelope(msg.data);
        if (decoded.ok) replies.push(decoded.envelope);
      },
    });
    await nc.flush();
    const id = randomUUID();
    const request = createEnvelope(
      "prompt_request",
      { service: "patient", method: "tools/call", params: { name: "wait_for_abort", arguments: {} } },
      { id, correlationId: id, sender: "cancel-test", deadline: new Date(Date.now() + 10_000) },
    );
    request.receipt = true;
    nc.publish(subjects.request("patient"), encodeEnvelope(request), { reply: inbox });
    // The receipt says the handler is running.
    await eventually(() => replies.some((reply) => reply.type === "context_update"));
    const cancel = createEnvelope("context_update", { method: "notifications/cancelled", params: { reason: "no longer needed" } }, { sender: "cancel-test", correlationId: id });
    nc.publish(subjects.cancel("patient"), encodeEnvelope(cancel));
    const answer = await eventually(() => replies.find((reply) => reply.type !== "context_update"));
    expect(answer).toMatchObject({
      type: "error_notification",
      correlation_id: id,
      payload: { code: "CANCELLED", jsonrpc_code: -32016, message: "no longer needed", data: { instance: agent.instance } },
    });
    sub.unsubscribe();
    await nc.drain();
  });
});

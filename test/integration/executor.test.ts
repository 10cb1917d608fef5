/**
 * The executor and gateway as a library (what `dmcp wrap` and `dmcp gateway` are made of), in-process
 * against a real nats-server and the fixture MCP server over stdio.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, createInbox, type NatsConnection } from "@nats-io/transport-node";
import { stdioConnector } from "../../adapters/outbound/index.js";
import { connectBus, Requester, type Bus } from "../../src/bus/index.js";
import { Executor } from "../../src/executor/index.js";
import { CallCancellation } from "../../src/bus/call-cancellation.js";
import { CallError, decodeEnvelope, ErrorCode, isDmcpError, subjects } from "../../src/protocol/index.js";
import { silentLogger } from "../../src/util/logger.js";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually, FIXTURE_BIN } from "../support/processes.js";

describe("Executor in-process", () => {
  let nats: EmbeddedNats;
  let bus: Bus;
  let executor: Executor;
  let raw: NatsConnection;

  beforeAll(async () => {
    nats = await startTestNats();
    bus = await connectBus({ servers: nats.url, name: "executor-test", logger: silentLogger() });
    executor = new Executor({
      bus,
      service: "lib",
      logger: silentLogger(),
      maxEnvelopeBytes: 2048,
      heartbeatMs: 500,
      // Long enough that no call of this file is still running when its receipt would be due.
      receiptDelayMs: 5000,
      connector: stdioConnector({ command: process.execPath, args: [FIXTURE_BIN, "--stdio", "--name", "lib"] }),
    });
    await executor.start();
    raw = await connect({ servers: nats.url });
  });

  afterAll(async () => {
    await raw?.close();
    await executor?.stop();
    await bus?.drain();
    await nats?.stop();
  });

  it("announces the upstream's catalog", () => {
    expect(executor.currentCatalog.tools.map((tool) => tool.name)).toContain("echo");
    expect(executor.currentCatalog.resources).toHaveLength(2);
  });

  it("serves calls made with a Requester", async () => {
    const caller = new Requester(bus, "caller-test");
    const result = await caller.call("lib", "tools/call", { name: "add", arguments: { a: 20, b: 22 } }, { timeoutMs: 5000 });
    expect(result.structuredContent).toEqual({ sum: 42 });
    caller.close();
  });

  it("refuses an envelope over its size limit with PAYLOAD_TOO_LARGE", async () => {
    const envelope = JSON.stringify({
      dMCP_version: "0.1",
      type: "prompt_request",
      id: "huge-1",
      correlation_id: "huge-1",
      timestamp: new Date().toISOString(),
      sender_id: "t",
      payload: { service: "lib", method: "tools/call", params: { name: "echo", arguments: { text: "x".repeat(4096) } } },
    });
    const reply = await raw.request(subjects.request("lib"), envelope, { timeout: 5000 });
    const decoded = decodeEnvelope(reply.data);
    expect(decoded.ok && decoded.envelope).toMatchObject({ type: "error_notification", correlation_id: "huge-1", payload: { code: ErrorCode.PayloadTooLarge } });
  });

  it("gives NO_RESPONDERS for a service nobody serves, at once", async () => {
    const caller = new Requester(bus, "caller-test");
    const error = await caller.call("nobody", "tools/list", undefined, { timeoutMs: 30_000 }).catch((err: unknown) => err);
    expect(isDmcpError(error, ErrorCode.NoResponders)).toBe(true);
    caller.close();
  });

  it("ends a call at its own deadline when a call with a later deadline is pending (one timer for all the requester's calls)", async () => {
    const silent = raw.subscribe(subjects.request("silent"), { callback: () => undefined });
    await raw.flush();
    const caller = new Requester(bus, "deadline-test");
    let longSettled = false;
    const long = caller.call("silent", "tools/list", undefined, { timeoutMs: 60_000 }).finally(() => (longSettled = true));
    const short = await caller.call("silent", "tools/list", undefined, { timeoutMs: 200 }).catch((err: unknown) => err);
    expect(isDmcpError(short, ErrorCode.DeadlineExceeded)).toBe(true);
    expect((short as Error).message).toContain("within 200 ms");
    expect(longSettled).toBe(false);
    caller.close();
    expect(isDmcpError(await long.catch((err: unknown) => err), ErrorCode.BusUnavailable)).toBe(true);
    silent.unsubscribe();
  });

  it("ends an upstream request at its own deadline while one with a later deadline runs (one timer for all of an upstream's requests)", async () => {
    const inbox = createInbox();
    const answers: { correlationId: string; type: string; code?: unknown; message?: unknown }[] = [];
    const sub = raw.subscribe(inbox, {
      callback: (_err, msg) => {
        const decoded = decodeEnvelope(msg.data);
        if (!decoded.ok || decoded.envelope.type === "context_update") return;
        const { correlation_id, type, payload } = decoded.envelope as { correlation_id: string; type: string; payload: { code?: unknown; message?: unknown } };
        answers.push({ correlationId: correlation_id, type, code: payload.code, message: payload.message });
      },
    });
    const send = (id: string, sleepMs: number, deadlineMs: number) =>
      raw.publish(
        subjects.request("lib"),
        JSON.stringify({
          dMCP_version: "0.1",
          type: "prompt_request",
          id,
          correlation_id: id,
          timestamp: new Date().toISOString(),
          deadline: new Date(Date.now() + deadlineMs).toISOString(),
          sender_id: "t",
          payload: { service: "lib", method: "tools/call", params: { name: "sleep", arguments: { ms: sleepMs } } },
        }),
        { reply: inbox },
      );
    // The first answers after 1.5 s, well within its deadline; the second outlives its own, which is earlier.
    send("slow-ok", 1500, 20_000);
    send("too-slow", 5000, 300);
    await eventually(() => answers.length === 2, 10_000);
    sub.unsubscribe();
    expect(answers[0]).toMatchObject({ correlationId: "too-slow", type: "error_notification", code: ErrorCode.DeadlineExceeded });
    expect(answers[1]).toMatchObject({ correlationId: "slow-ok", type: "prompt_response" });
  }, 15_000);

  it("cancels a call locally when its signal aborts", async () => {
    const caller = new Requester(bus, "caller-test");
    const controller = new AbortController();
    const pending = caller.call("lib", "tools/call", { name: "sleep", arguments: { ms: 2000 } }, { timeoutMs: 10_000, signal: controller.signal });
    setTimeout(() => controller.abort(), 100);
    const error = await pending.catch((err: unknown) => err);
    expect(isDmcpError(error, ErrorCode.Cancelled)).toBe(true);
    caller.close();
  });

  it("cancels a call when the CallCancellation it was given aborts, with the abort's reason", async () => {
    const caller = new Requester(bus, "caller-test");
    const abort = new CallCancellation();
    const pending = caller.call("lib", "tools/call", { name: "sleep", arguments: { ms: 2000 } }, { timeoutMs: 10_000, signal: abort });
    setTimeout(() => abort.abort(new CallError(ErrorCode.ShuttingDown, "stopping")), 100);
    const error = await pending.catch((err: unknown) => err);
    expect(isDmcpError(error, ErrorCode.ShuttingDown)).toBe(true);
    caller.close();
  });

  it("probes an instance holding a call once the call has waited 250 ms, and not for calls answered sooner", async () => {
    const pings: number[] = [];
    const probes = raw.subscribe(subjects.instanceRequest("lib", executor.instance), {
      callback: (_err, msg) => {
        const decoded = decodeEnvelope(msg.data);
        if (decoded.ok && decoded.envelope.type === "prompt_request" && decoded.envelope.payload.method === "ping") pings.push(Date.now());
      },
    });
    await raw.flush();
    const caller = new Requester(bus, "probe-test", { listed: () => true });
    const at = { timeoutMs: 5000, instance: executor.instance };
    // Quick calls one after the other for 700 ms: the probe's ticks find one in flight, never an old one.
    const quick: number[] = [];
    for (const until = Date.now() + 700; Date.now() < until; ) {
      const started = Date.now();
      await caller.call("lib", "tools/call", { name: "echo", arguments: { text: "q" } }, at);
      quick.push(Date.now() - started);
    }
    // Wait out a probe interval with nothing in flight: any ping for the quick calls would be sent by now.
    await new Promise((resolve) => setTimeout(resolve, 400));
    await raw.flush();
    const afterQuick = pings.length;
    await caller.call("lib", "tools/call", { name: "sleep", arguments: { ms: 1200 } }, at);
    await raw.flush();
    caller.close();
    probes.unsubscribe();
    // A call that took 250 ms itself (a very loaded machine) may rightly have been probed.
    if (quick.every((ms) => ms < 200)) expect(afterQuick).toBe(0);
    expect(pings.length - afterQuick).toBeGreaterThanOrEqual(2);
  });

  it("asks for a receipt on a call to the queue group, not on one to an instance unless told to", async () => {
    // What each request asked for, in order, as a plain subscriber of both subjects sees it.
    const asked: Record<string, unknown[]> = { group: [], instance: [] };
    const watch = (subject: string, into: unknown[]) =>
      raw.subscribe(subject, {
        callback: (_err, msg) => {
          const decoded = decodeEnvelope(msg.data);
          if (decoded.ok && decoded.envelope.type === "prompt_request") into.push(decoded.envelope.receipt);
        },
      });
    const subscriptions = [watch(subjects.request("lib"), asked.group!), watch(subjects.instanceRequest("lib", executor.instance), asked.instance!)];
    await raw.flush();
    const caller = new Requester(bus, "receipt-test");
    const echo = { name: "echo", arguments: { text: "r" } };
    await caller.call("lib", "tools/call", echo, { timeoutMs: 5000 });
    await caller.call("lib", "tools/call", echo, { timeoutMs: 5000, instance: executor.instance });
    await caller.call("lib", "tools/call", echo, { timeoutMs: 5000, instance: executor.instance, receipt: true });
    caller.close();
    await raw.flush();
    for (const subscription of subscriptions) subscription.unsubscribe();
    expect(asked).toEqual({ group: [true], instance: [undefined, true] });
  });

  it("sends no receipt for a call that answers before the receipt is due", async () => {
    const inbox = createInbox();
    const replies = raw.subscribe(inbox);
    const request = {
      dMCP_version: "0.1",
      type: "prompt_request",
      id: "quick-1",
      correlation_id: "quick-1",
      receipt: true,
      timestamp: new Date().toISOString(),
      sender_id: "t",
      payload: { service: "lib", method: "tools/call", params: { name: "echo", arguments: { text: "quick" } } },
    };
    raw.publish(subjects.request("lib"), JSON.stringify(request), { reply: inbox });
    const types: string[] = [];
    const timer = setTimeout(() => replies.unsubscribe(), 1000);
    for await (const msg of replies) {
      const decoded = decodeEnvelope(msg.data);
      if (decoded.ok) types.push(decoded.envelope.type);
    }
    clearTimeout(timer);
    expect(types).toEqual(["prompt_response"]);
  });
});

/**
 * Bad input and failures: malformed envelopes on the bus, invalid JSON-RPC on both inbound transports,
 * unknown tools, services without executors, executors and upstreams that die mid-call, deadlines, and
 * a nats-server that goes away. Each gets a clear error; nothing crashes; no call outlives its deadline.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, createInbox, type NatsConnection } from "@nats-io/transport-node";
import { ACCEPTED_METHOD, ErrorCode, JsonRpcErrorCode, decodeEnvelope, subjects } from "../../src/protocol/index.js";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { gatewayTransport, RawMcpClient } from "../support/mcp-client.js";
import { eventually, runDmcp, sleep, startGatewayHttp, wrapFixtureStdio, type Child } from "../support/processes.js";
import { startWorld, type World } from "../support/world.js";

function errorData(response: { error?: { data?: unknown } }): Record<string, unknown> {
  return (response.error?.data ?? {}) as Record<string, unknown>;
}

describe("bad input on the bus", () => {
  let world: World;
  let nats: EmbeddedNats;
  let nc: NatsConnection;

  beforeAll(async () => {
    world = await startWorld({ services: { sturdy: [] }, gateway: false });
    nats = world.nats;
    nc = await connect({ servers: nats.url });
  });

  afterAll(async () => {
    await nc?.close();
    await world?.dispose();
  });

  async function requestRaw(data: string | Uint8Array) {
    const reply = await nc.request(subjects.request("sturdy"), data, { timeout: 5000 });
    const decoded = decodeEnvelope(reply.data);
    if (!decoded.ok) throw decoded.error;
    return decoded.envelope;
  }

  it.each([
    ["not JSON", "{oops"],
    ["JSON but no envelope", JSON.stringify({ hello: "world" })],
    ["a wrong dMCP_version", JSON.stringify({ dMCP_version: "9", type: "prompt_request", id: "x", timestamp: new Date().toISOString(), sender_id: "t", payload: {} })],
    [
      "a prompt_request without a method",
      JSON.stringify({ dMCP_version: "0.1", type: "prompt_request", id: "x", timestamp: new Date().toISOString(), sender_id: "t", payload: { service: "sturdy" } }),
    ],
  ])("answers %s with an INVALID_ENVELOPE error_notification and reports it on the error subject", async (_label, body) => {
    const reported = nc.subscribe(subjects.errorsAll(), { max: 1 });
    const envelope = await requestRaw(body);
    expect(envelope.type).toBe("error_notification");
    expect(envelope.type === "error_notification" && envelope.payload.code).toBe(ErrorCode.InvalidEnvelope);
    for await (const msg of reported) {
      const decoded = decodeEnvelope(msg.data);
      expect(decoded.ok && decoded.envelope.type === "error_notification" && decoded.envelope.payload.code).toBe(ErrorCode.InvalidEnvelope);
      break;
    }
  });

  it("answers an envelope of the wrong type with an error and keeps the caller's correlation id", async () => {
    const envelope = await requestRaw(
      JSON.stringify({
        dMCP_version: "0.1",
        type: "prompt_response",
        id: "m1",
        correlation_id: "c-42",
        timestamp: new Date().toISOString(),
        sender_id: "t",
        payload: { result: {} },
      }),
    );
    expect(envelope).toMatchObject({ type: "error_notification", correlation_id: "c-42", payload: { code: ErrorCode.InvalidEnvelope } });
  });

  /** A raw prompt_request, as an agent in another language would write it. */
  function toolCall(id: string, name: string, args: Record<string, unknown>, extra: Record<string, unknown> = {}): string {
    return JSON.stringify({
      dMCP_version: "0.1",
      type: "prompt_request",
      id,
      correlation_id: id,
      timestamp: new Date().toISOString(),
      sender_id: "t",
      payload: { service: "sturdy", method: "tools/call", params: { name, arguments: args } },
      ...extra,
    });
  }

  it("refuses a request whose deadline has passed, without starting it", async () => {
    const envelope = await requestRaw(toolCall("late-1", "echo", { text: "x" }, { deadline: new Date(Date.now() - 1000).toISOString() }));
    expect(envelope).toMatchObject({ type: "error_notification", correlation_id: "late-1", payload: { code: ErrorCode.DeadlineExceeded } });
  });

  it("still serves valid requests after all that, and keeps quiet about receipts unless asked", async () => {
    const envelope = await requestRaw(toolCall("ok-1", "echo", { text: "still here" }));
    expect(envelope).toMatchObject({ type: "prompt_response", correlation_id: "ok-1", payload: { result: { content: [{ text: "still here" }] } } });
  });

  it("sends an accepted receipt before the answer of a call that runs a while, when the request asks for one", async () => {
    const inbox = createInbox();
    const replies = nc.subscribe(inbox, { max: 2 });
    nc.publish(subjects.request("sturdy"), toolCall("rc-1", "sleep", { ms: 300 }, { receipt: true }), { reply: inbox });
    const received = [];
    for await (const msg of replies) {
      const decoded = decodeEnvelope(msg.data);
      if (decoded.ok) received.push(decoded.envelope);
    }
    expect(received[0]).toMatchObject({ type: "context_update", correlation_id: "rc-1", payload: { method: "dmcp/accepted" } });
    expect(received[1]).toMatchObject({ type: "prompt_response", correlation_id: "rc-1" });
  });

  it("answers a result larger than the bus allows with PAYLOAD_TOO_LARGE instead of dropping it", async () => {
    const envelope = await requestRaw(toolCall("big-1", "big", { bytes: 2 * 1024 * 1024 }));
    expect(envelope).toMatchObject({ type: "error_notification", correlation_id: "big-1", payload: { code: ErrorCode.PayloadTooLarge } });
  });
});

describe("invalid JSON-RPC from MCP clients", () => {
  let world: World;
  let nats: EmbeddedNats;
  let gateway: Child & { url: string };

  beforeAll(async () => {
    world = await startWorld({ client: false });
    ({ nats, gateway } = world);
  });

  afterAll(() => world?.dispose());

  const post = (body: string, headers: Record<string, string> = {}) =>
    fetch(gateway.url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers },
      body,
    });

  it("answers a body that is not JSON with 400 and a parse error", async () => {
    const response = await post("{not json");
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ jsonrpc: "2.0", id: null, error: { code: JsonRpcErrorCode.ParseError } });
  });

  it("answers an oversized body with 413 and a JSON-RPC error", async () => {
    const response = await post(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping", params: { pad: "x".repeat(5 * 1024 * 1024) } }));
    expect(response.status).toBe(413);
    expect(await response.json()).toMatchObject({ error: { code: JsonRpcErrorCode.InvalidRequest } });
  });

  it("answers a request without a session with 400, and an unknown session with 404", async () => {
    const noSession = await post(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }));
    expect(noSession.status).toBe(400);
    const unknown = await post(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }), { "mcp-session-id": "nope" });
    expect(unknown.status).toBe(404);
  });

  it("answers JSON that is not JSON-RPC inside a session with an error", async () => {
    const client = await RawMcpClient.connect(gatewayTransport("http", { natsUrl: nats.url, httpUrl: gateway.url }));
    const sessionId = client.transport.sessionId!;
    const response = await post(JSON.stringify({ hello: "world" }), { "mcp-session-id": sessionId, "mcp-protocol-version": "2025-11-25" });
    expect(response.status).toBeGreaterThanOrEqual(400);
    expect(response.status).toBeLessThan(500);
    const body = (await response.json()) as { error?: { code: number } };
    expect([JsonRpcErrorCode.ParseError, JsonRpcErrorCode.InvalidRequest]).toContain(body.error?.code);
    expect(await client.result("ping")).toEqual({});
    await client.close();
  });

  it("answers bad lines on stdio with parse and invalid-request errors, and keeps the session", async () => {
    const child = runDmcp(["gateway", "--stdio", "--nats", nats.url, "--log-level", "warn"], { stdin: "pipe" });
    const lines: Record<string, unknown>[] = [];
    let buffer = "";
    child.process.stdout!.on("data", (chunk: Buffer) => {
      buffer += chunk.toString();
      for (let newline = buffer.indexOf("\n"); newline !== -1; newline = buffer.indexOf("\n")) {
        lines.push(JSON.parse(buffer.slice(0, newline)) as Record<string, unknown>);
        buffer = buffer.slice(newline + 1);
      }
    });
    const write = (line: string) => child.process.stdin!.write(`${line}\n`);
    write("this is not json");
    write(JSON.stringify({ jsonrpc: "1.0", id: 7, method: "ping" }));
    write(JSON.stringify({ jsonrpc: "2.0", id: 8, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "t", version: "1" } } }));
    write(JSON.stringify({ jsonrpc: "2.0", id: 9, method: "tools/call", params: { name: "nothing_here", arguments: {} } }));
    await eventually(() => lines.length >= 4, 30_000);
    // JSON-RPC answers need not keep request order: match them by id.
    const byId = (id: unknown) => lines.find((line) => line.id === id);
    expect(byId(null)).toMatchObject({ error: { code: JsonRpcErrorCode.ParseError } });
    expect(byId(7)).toMatchObject({ error: { code: JsonRpcErrorCode.InvalidRequest } });
    expect(byId(8)).toMatchObject({ result: { protocolVersion: "2025-11-25", serverInfo: { name: "dmcp-gateway" } } });
    expect(byId(9)).toMatchObject({ error: { code: JsonRpcErrorCode.InvalidParams, message: "Unknown tool: nothing_here" } });
    child.process.stdin!.end();
    expect(await child.exited).toBe(0);
  });
});

describe("executors, upstreams and deadlines", () => {
  let world: World;
  let nats: EmbeddedNats;
  let client: RawMcpClient;

  beforeAll(async () => {
    world = await startWorld({ gateway: ["--call-timeout", "20000"] });
    ({ nats, client } = world);
  });

  afterAll(() => world?.dispose());

  it("keeps the gateway's view of the bus alive after heartbeats on subjects it could never build", async () => {
    const nc = await connect({ servers: nats.url });
    nc.publish("dmcp.v1.hb.svc.bad@inst", "{}");
    nc.publish("dmcp.v1.hb.svc.inst", "not json");
    await nc.flush();
    await nc.close();
    const executor = await wrapFixtureStdio(nats.url, "latecomer");
    try {
      await eventually(async () => (await client.toolNames()).includes("whoami"));
    } finally {
      await executor.stop();
    }
    await eventually(async () => !(await client.toolNames()).includes("whoami"));
  });

  it("probes a replica holding calls once per 250 ms however many calls it holds, and not at all when none waits", async () => {
    const executor = await wrapFixtureStdio(nats.url, "probed", ["--max-sessions", "0"]);
    const nc = await connect({ servers: nats.url });
    try {
      await eventually(async () => (await client.toolNames()).includes("sleep"));
      const pings: number[] = [];
      nc.subscribe("dmcp.v1.inst.probed.*.req", {
        callback: (_err, msg) => {
          const decoded = decodeEnvelope(msg.data);
          if (decoded.ok && decoded.envelope.type === "prompt_request" && decoded.envelope.payload.method === "ping") pings.push(Date.now());
        },
      });
      await nc.flush();
      const started = Date.now();
      const calls = await Promise.all(Array.from({ length: 20 }, () => client.request("tools/call", { name: "sleep", arguments: { ms: 1500 } })));
      const busyMs = Date.now() - started;
      for (const call of calls) expect(call.result).toMatchObject({ content: [{ text: "slept 1500" }] });
      // 20 calls on one replica: one probe per interval, not one per call (that would be 20 per interval).
      expect(pings.length).toBeGreaterThan(0);
      expect(pings.length).toBeLessThanOrEqual(Math.ceil(busyMs / 250) + 1);
      // A probe sent just before the last answer came back may still be on its way to this
      // subscriber: let one interval and more pass before counting.
      await sleep(500);
      const afterCalls = pings.length;
      // A quiet second, then the count again: no event can say that nothing was sent.
      await sleep(1000);
      expect(pings.length).toBe(afterCalls);
    } finally {
      await nc.close();
      await executor.stop();
    }
  });

  it("fails a call at once with NO_RESPONDERS when the service's only executor was just killed", async () => {
    const executor = await wrapFixtureStdio(nats.url, "doomed");
    await eventually(async () => (await client.toolNames()).includes("whoami"));
    executor.kill("SIGKILL");
    await executor.exited;
    const started = Date.now();
    const response = await client.request("tools/call", { name: "whoami", arguments: {} });
    expect(errorData(response).dmcp_code).toBe(ErrorCode.NoResponders);
    expect(response.error?.code).toBe(JsonRpcErrorCode.NoResponders);
    expect(Date.now() - started).toBeLessThan(20_000);
    // ...and the dead service's tools then leave the list.
    await eventually(async () => !(await client.toolNames()).includes("whoami"), 15_000);
  });

  it("fails a call with EXECUTOR_LOST within a second or so, long before its heartbeats expire, when the executor running it is killed", async () => {
    // No client sessions: an ordinary direct call (a session's call would get SESSION_LOST). The
    // default heartbeat (2 s): missed heartbeats would evict the killed executor only after 6 s.
    const executor = await wrapFixtureStdio(nats.url, "fragile", ["--max-sessions", "0", "--heartbeat", "2000"]);
    await eventually(async () => (await client.toolNames()).includes("sleep"));
    // The executor's receipt naming its instance (sent 20 ms after it took the call) tells the gateway
    // which instance to watch: kill the executor once the receipt is on the bus, not before.
    const watcher = await connect({ servers: nats.url });
    const receipts = watcher.subscribe(">");
    const receipted = (async () => {
      for await (const message of receipts) if (message.string().includes(ACCEPTED_METHOD)) return;
    })();
    const pending = client.request("tools/call", { name: "sleep", arguments: { ms: 60_000 } }, 60_000);
    await receipted;
    await watcher.close();
    executor.kill("SIGKILL");
    const killedAt = Date.now();
    const response = await pending;
    // A loose bound: the machine is noisy.
    expect(Date.now() - killedAt).toBeLessThan(3_000);
    expect(errorData(response).dmcp_code).toBe(ErrorCode.ExecutorLost);
    expect(response.error?.message).toMatch(/left the bus/);
  });

  it("reports an upstream that dies mid-call, restarts it, and serves again", async () => {
    const executor = await wrapFixtureStdio(nats.url, "phoenix");
    try {
      await eventually(async () => (await client.toolNames()).includes("crash"));
      const crashed = await client.request("tools/call", { name: "crash", arguments: {} });
      expect(errorData(crashed).dmcp_code).toBe(ErrorCode.UpstreamClosed);
      // While the child restarts, calls get UPSTREAM_UNAVAILABLE or succeed: never a hang.
      const result = await eventually(async () => {
        const response = await client.request("tools/call", { name: "echo", arguments: { text: "back" } });
        const outcome = response.error ? errorData(response).dmcp_code : "a result";
        expect([ErrorCode.UpstreamUnavailable, ErrorCode.UpstreamClosed, "a result"]).toContain(outcome);
        return response.result;
      }, 15_000);
      expect(result).toMatchObject({ content: [{ text: "back" }] });
    } finally {
      await executor.stop();
    }
  });

  it("ends a call that outlives its deadline with DEADLINE_EXCEEDED", async () => {
    const shortGateway = await startGatewayHttp(nats.url, ["--call-timeout", "1000"]);
    const executor = await wrapFixtureStdio(nats.url, "slowpoke");
    const shortClient = await RawMcpClient.connect(gatewayTransport("http", { natsUrl: nats.url, httpUrl: shortGateway.url }));
    try {
      await eventually(async () => (await shortClient.toolNames()).includes("sleep"));
      const response = await shortClient.request("tools/call", { name: "sleep", arguments: { ms: 10_000 } });
      expect(errorData(response).dmcp_code).toBe(ErrorCode.DeadlineExceeded);
      expect(response.error?.code).toBe(JsonRpcErrorCode.DeadlineExceeded);
      // The executor gave up upstream too, so it serves the next call at once.
      const next = await shortClient.request("tools/call", { name: "echo", arguments: { text: "next" } });
      expect(next.result).toMatchObject({ content: [{ text: "next" }] });
    } finally {
      await shortClient.close();
      await Promise.allSettled([executor.stop(), shortGateway.stop()]);
    }
  });
});

describe("a nats-server that is down at start or goes away", () => {
  it("makes `dmcp wrap` and `dmcp gateway` exit with a clear error when no server answers", async () => {
    const nats = await startTestNats();
    const url = nats.url;
    await nats.stop();
    for (const args of [
      ["gateway", "--http", "0", "--nats", url],
      ["wrap", "--name", "x", "--nats", url, "--", "node", "-e", "0"],
    ]) {
      const child = runDmcp(args);
      expect(await child.exited).toBe(1);
      await eventually(() => child.stderr.some((line) => /cannot connect to NATS/.test(line)), 5000);
    }
  });

  it("keeps an executor that waits for a gateway's streams waiting while the server is gone, and serves once a gateway made them", async () => {
    const nats = await startTestNats();
    const executor = await wrapFixtureStdio(nats.url, "patient");
    let gateway: Awaited<ReturnType<typeof startGatewayHttp>> | undefined;
    try {
      await executor.waitFor(/waits for a gateway/, 30_000);
      // Its polls fail while the server is away (timeouts, no responders): none of that is a reason to give up.
      nats.kill("SIGKILL");
      await sleep(8_000);
      expect(executor.process.exitCode).toBeNull();
      await nats.restart();
      gateway = await startGatewayHttp(nats.url);
      const client = await RawMcpClient.connect(gatewayTransport("http", { natsUrl: nats.url, httpUrl: gateway.url }));
      try {
        await eventually(async () => (await client.toolNames()).includes("echo"), 30_000);
        expect(await client.result("tools/call", { name: "echo", arguments: { text: "waited" } })).toMatchObject({ content: [{ text: "waited" }] });
      } finally {
        await client.close();
      }
      expect(executor.process.exitCode).toBeNull();
    } finally {
      await Promise.allSettled([gateway?.stop(), executor.stop()]);
      await nats.stop();
    }
  }, 90_000);

  it("answers calls with BUS_UNAVAILABLE while the server is gone and recovers when it returns", async () => {
    const nats = await startTestNats();
    const executor = await wrapFixtureStdio(nats.url, "survivor");
    const gateway = await startGatewayHttp(nats.url);
    const client = await RawMcpClient.connect(gatewayTransport("http", { natsUrl: nats.url, httpUrl: gateway.url }));
    try {
      await eventually(async () => (await client.toolNames()).includes("echo"));
      nats.kill("SIGKILL");
      const during = await eventually(async () => {
        const response = await client.request("tools/call", { name: "echo", arguments: { text: "x" } });
        return errorData(response).dmcp_code === ErrorCode.BusUnavailable ? response : undefined;
      }, 10_000);
      expect(during.error?.code).toBe(JsonRpcErrorCode.BusUnavailable);
      const readyz = gateway.url.replace(/\/mcp$/, "/readyz");
      expect((await fetch(readyz)).status).toBe(503);
      await nats.restart();
      const after = await eventually(async () => (await client.request("tools/call", { name: "echo", arguments: { text: "again" } })).result, 20_000);
      expect(after).toMatchObject({ content: [{ text: "again" }] });
      expect((await fetch(readyz)).status).toBe(200);
      expect(gateway.process.exitCode).toBeNull();
      expect(executor.process.exitCode).toBeNull();
    } finally {
      await client.close();
      await Promise.allSettled([gateway.stop(), executor.stop()]);
      await nats.stop();
    }
  });
});

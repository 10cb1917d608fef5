/**
 * Failover mid-call (issue 15, item 3): a gateway SIGKILLed with calls in flight. Its client resumes
 * each call's stream (GET + Last-Event-ID) through a round-robin balancer, so on the other gateway,
 * which finds each call's answer on the bus (PROTOCOL.md §19.4): a durable call's in the result store,
 * a direct call's at the executor that ran it. Each call runs once. The client's cancellation of such
 * a call, posted to the other gateway, reaches its executor and the upstream; a call sealed by the
 * dead gateway with a key of its own fails at once. Real nats-server, gateways, executors and the MCP SDK's client.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectRawNats, startTestNats, type EmbeddedNats } from "../support/nats.js";
import { callsOnAKilledGateway as killedWithCalls } from "../support/failover.js";
import { DMCP_BIN, eventually, runDmcp, startGatewayHttp, wrapFixtureStdio, type Child } from "../support/processes.js";
import { startRoundRobinProxy, type RoundRobinProxy } from "../support/round-robin.js";
import { parseEvents } from "../support/sse.js";
import { openSession } from "../support/sse.js";

type Gateway = Child & { url: string };

/** A bus with two gateways behind the round-robin proxy, a direct executor (`legacy`) and a durable one (`queued`). */
interface World {
  nats: EmbeddedNats;
  gateways: Gateway[];
  direct: Child;
  durable: Child;
  proxy: RoundRobinProxy;
  close(): Promise<void>;
}

/** Starts a World; `executorArgs` go to both executors (e.g. their seal keys), `gatewayArgs` to both gateways. */
async function startWorld(executorArgs: string[] = [], gatewayArgs: string[] = []): Promise<World> {
  const nats = await startTestNats();
  const direct = await wrapFixtureStdio(nats.url, "legacy", ["--log-level", "debug", ...executorArgs]);
  // One after the other: the first creates the streams.
  const gateways = [await startGatewayHttp(nats.url, ["--log-level", "debug", ...gatewayArgs]), await startGatewayHttp(nats.url, ["--log-level", "debug", ...gatewayArgs])];
  // After a gateway: durable executors wait for the streams it creates.
  const durable = await wrapFixtureStdio(nats.url, "queued", ["--delivery", "durable", "--ack-wait", "5s", "--log-level", "debug", ...executorArgs]);
  await Promise.all(gateways.map((gateway) => openSession(gateway.url, undefined, '"queued__sleep"')));
  const proxy = await startRoundRobinProxy(gateways.map((gateway) => new URL(gateway.url).origin));
  return {
    nats,
    gateways,
    direct,
    durable,
    proxy,
    async close() {
      await proxy.close();
      await Promise.allSettled([...gateways.map((gateway) => gateway.stop()), direct.stop(), durable.stop()]);
      await nats.stop();
    },
  };
}

/** A World whose calls travel sealed, and the directory of its keys. */
interface SealedWorld {
  world: World;
  dir: string;
  close(): Promise<void>;
}

/**
 * A World whose two services open sealed requests (one curve key for both, as replicas of a service
 * share one) and whose gateways seal every call to them: each with a key of its own, or with one they
 * share (`--caller-seal-key`).
 */
async function startSealedWorld(options: { shareCallerKey: boolean; gatewayArgs?: string[] }): Promise<SealedWorld> {
  const dir = mkdtempSync(join(tmpdir(), "dmcp-failover-seal-"));
  const keygen = (name: string) => execFileSync(process.execPath, [DMCP_BIN, "keygen", "--curve", "--out", join(dir, name)], { encoding: "utf8" }).trim();
  const sealPublic = keygen("services.xkey");
  if (options.shareCallerKey) keygen("gateways.xkey");
  const shared = options.shareCallerKey ? ["--caller-seal-key", join(dir, "gateways.xkey")] : [];
  const gatewayArgs = ["--seal-to", `legacy=${sealPublic}`, "--seal-to", `queued=${sealPublic}`, ...shared, ...(options.gatewayArgs ?? [])];
  const world = await startWorld(["--seal-key", join(dir, "services.xkey")], gatewayArgs);
  return {
    world,
    dir,
    async close() {
      await world.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A direct call (`legacy__sleep`) and a durable one (`queued__sleep`) in flight on one gateway, which is SIGKILLed. */
async function callsOnAKilledGateway(
  world: World,
  client: Client,
  ms: { direct: number; durable: number },
  signals: { direct?: AbortSignal; durable?: AbortSignal } = {},
): Promise<{ directCall: Promise<unknown>; durableCall: Promise<unknown>; survivor: number }> {
  const { answers, survivor } = await killedWithCalls(world.proxy, world.gateways, client, [
    { tool: "legacy__sleep", ms: ms.direct, executor: world.direct, ...(signals.direct ? { signal: signals.direct } : {}) },
    { tool: "queued__sleep", ms: ms.durable, executor: world.durable, ...(signals.durable ? { signal: signals.durable } : {}) },
  ]);
  return { directCall: answers[0]!, durableCall: answers[1]!, survivor };
}

describe("calls in flight on a gateway that dies are answered through another", () => {
  let world: World;
  let gateways: Gateway[] = [];
  let direct: Child;
  let durable: Child;
  let proxy: RoundRobinProxy;

  beforeAll(async () => {
    world = await startWorld();
    ({ gateways, direct, durable, proxy } = world);
  }, 120_000);

  afterAll(async () => {
    await world?.close();
  });

  it("answers a slow plain call with a resumable stream: a priming event, then the answer with an event id", async () => {
    const headers = await openSession(gateways[0]!.url, undefined, '"queued__sleep"');
    const call = (id: number, ms: number) => ({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "legacy__sleep", arguments: { ms } } });
    const slow = await fetch(gateways[0]!.url, { method: "POST", headers: headers(), body: JSON.stringify(call(3, 400)) });
    expect(slow.headers.get("content-type")).toContain("text/event-stream");
    const [priming, answer] = parseEvents(await slow.text());
    expect(priming).toMatchObject({ id: expect.any(String), data: "" });
    expect(answer?.id).toEqual(expect.any(String));
    expect(JSON.parse(answer!.data)).toMatchObject({ id: 3, result: { content: [{ text: "slept 400" }] } });
  });

  it("resumes on the same gateway the stream of a slow call whose connection dropped, and gets its answer", async () => {
    const url = gateways[0]!.url;
    const headers = await openSession(url, undefined, '"queued__sleep"');
    const call = { jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "legacy__sleep", arguments: { ms: 1500 } } };
    const dropped = new AbortController();
    const response = await fetch(url, { method: "POST", headers: headers(), body: JSON.stringify(call), signal: dropped.signal });
    const reader = response.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    const primingId = parseEvents(first)[0]!.id!;
    dropped.abort();
    const resumed = await fetch(url, { method: "GET", headers: { ...headers(), accept: "text/event-stream", "last-event-id": primingId } });
    expect(resumed.status).toBe(200);
    const events = parseEvents(await resumed.text()).filter((event) => event.data !== "");
    expect(JSON.parse(events.at(-1)!.data)).toMatchObject({ id: 2, result: { content: [{ text: "slept 1500" }] } });
  });

  it("answers through B the direct and the durable call in flight on A when A is SIGKILLed, and runs each once", async () => {
    const client = new Client({ name: "failover", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(proxy.url)));
    try {
      const { directCall, durableCall, survivor } = await callsOnAKilledGateway(world, client, { direct: 3001, durable: 3002 });
      const [directAnswer, durableAnswer] = await Promise.all([directCall, durableCall]);
      expect(directAnswer).toMatchObject({ content: [{ type: "text", text: "slept 3001" }] });
      expect(durableAnswer).toMatchObject({ content: [{ type: "text", text: "slept 3002" }] });
      // The survivor found both answers on the bus, for streams the killed gateway had sent.
      const recovered = gateways[survivor]!.stderr.filter((line) => line.includes("looking for the answer of a call another gateway sent"));
      expect(recovered.map((line) => (JSON.parse(line) as { delivery: string }).delivery).sort()).toEqual(["direct", "durable"]);
      // Nothing ran twice: one run of each call upstream.
      expect(direct.stderr.filter((line) => line.includes("sleep: running 3001"))).toHaveLength(1);
      expect(durable.stderr.filter((line) => line.includes("sleep: running 3002"))).toHaveLength(1);
    } finally {
      await client.close().catch(() => undefined);
    }
  }, 60_000);
});

describe("a client's cancellation of a call whose gateway died", () => {
  let world: World;

  beforeAll(async () => {
    world = await startWorld();
  }, 120_000);

  afterAll(async () => {
    await world?.close();
  });

  it("reaches the executor and the upstream through the gateway that follows the call's stream, direct and durable", async () => {
    const client = new Client({ name: "failover-cancel", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(world.proxy.url)));
    try {
      const cancelDirect = new AbortController();
      const cancelDurable = new AbortController();
      const { directCall, durableCall, survivor } = await callsOnAKilledGateway(
        world,
        client,
        { direct: 20_001, durable: 20_002 },
        { direct: cancelDirect.signal, durable: cancelDurable.signal },
      );
      const follower = world.gateways[survivor]!;
      // The client resumed both streams on the survivor, which looks for both answers ...
      await eventually(() => follower.stderr.filter((line) => line.includes("looking for the answer of a call another gateway sent")).length === 2, 30_000);
      // ... when the client cancels them: its notifications/cancelled go to the survivor (the other is dead).
      cancelDirect.abort("stop the direct one");
      cancelDurable.abort("stop the durable one");
      await expect(directCall).rejects.toThrow();
      await expect(durableCall).rejects.toThrow();
      // Each upstream got the cancellation of its call, with the client's reason, long before the call would end.
      await world.direct.waitFor(/cancelled: .*stop the direct one/, 15_000);
      await world.durable.waitFor(/cancelled: .*stop the durable one/, 15_000);
      // The gateway's log comes through its own pipe, which may lag behind the executors'.
      const cancelled = await eventually(() => {
        const lines = follower.stderr.filter((line) => line.includes("the client cancelled a call another gateway sent"));
        return lines.length === 2 ? lines : undefined;
      }, 15_000);
      expect(cancelled.map((line) => (JSON.parse(line) as { delivery: string }).delivery).sort()).toEqual(["direct", "durable"]);
      // The durable call is not delivered again: its CANCELLED answer is in the result store.
      expect(world.durable.stderr.filter((line) => line.includes("sleep: running 20002"))).toHaveLength(1);
      expect(world.direct.stderr.filter((line) => line.includes("sleep: running 20001"))).toHaveLength(1);
    } finally {
      await client.close().catch(() => undefined);
    }
  }, 90_000);
});

describe("a client's cancellation posted to a gateway that does not hold the call", () => {
  let world: World;
  /** A third gateway, outside the balancer: the client posts its cancellations there. */
  let third: Gateway;

  beforeAll(async () => {
    world = await startWorld();
    third = await startGatewayHttp(world.nats.url, ["--log-level", "debug"]);
  }, 120_000);

  afterAll(async () => {
    await third?.stop();
    await world?.close();
  });

  /** Posts the client's cancellation of request `id` to `url`. */
  const cancel = async (url: string, headers: () => Record<string, string>, id: number, reason: string) => {
    const body = { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: id, reason } };
    const posted = await fetch(url, { method: "POST", headers: headers(), body: JSON.stringify(body) });
    expect(posted.status).toBe(202);
  };

  it("reaches the gateway holding the call in flight, which cancels it (dmcp.v1.gw.cancel)", async () => {
    const [holder, other] = world.gateways as [Gateway, Gateway];
    const headers = await openSession(holder.url, undefined, '"queued__sleep"');
    const call = { jsonrpc: "2.0", id: 5, method: "tools/call", params: { name: "legacy__sleep", arguments: { ms: 20_005 } } };
    const left = new AbortController();
    const sent = fetch(holder.url, { method: "POST", headers: headers(), body: JSON.stringify(call), signal: left.signal });
    sent.catch(() => undefined);
    await world.direct.waitFor(/sleep: running 20005/, 15_000);
    await cancel(other.url, headers, 5, "cancelled through the other gateway");
    await world.direct.waitFor(/cancelled: .*cancelled through the other gateway/, 15_000);
    left.abort();
  }, 60_000);

  it("reaches the gateway that follows the call's stream after the call's gateway was SIGKILLed", async () => {
    const [sender, follower] = world.gateways as [Gateway, Gateway];
    const headers = await openSession(sender.url, undefined, '"queued__sleep"');
    const call = { jsonrpc: "2.0", id: 6, method: "tools/call", params: { name: "legacy__sleep", arguments: { ms: 20_006 } } };
    const sent = await fetch(sender.url, { method: "POST", headers: headers(), body: JSON.stringify(call) });
    const reader = sent.body!.getReader();
    const primingId = parseEvents(new TextDecoder().decode((await reader.read()).value))[0]!.id!;
    await world.direct.waitFor(/sleep: running 20006/, 15_000);
    sender.kill("SIGKILL");
    await sender.exited;
    await reader.cancel().catch(() => undefined);
    // The client resumes the call's stream on the follower, and posts its cancellation to the third gateway.
    const resumed = new AbortController();
    const stream = fetch(follower.url, { method: "GET", headers: { ...headers(), accept: "text/event-stream", "last-event-id": primingId }, signal: resumed.signal });
    expect((await stream).status).toBe(200);
    await follower.waitFor(/looking for the answer of a call another gateway sent/, 15_000);
    await cancel(third.url, headers, 6, "cancelled through a third gateway");
    await world.direct.waitFor(/cancelled: .*cancelled through a third gateway/, 15_000);
    await follower.waitFor(/the client cancelled a call another gateway sent/, 15_000);
    resumed.abort();
  }, 60_000);

  it("drops and counts what is not a cancellation on dmcp.v1.gw.cancel, and goes on serving", async () => {
    const raw = await connectRawNats(world.nats.url);
    try {
      for (const junk of [
        "not json",
        "[]",
        "null",
        '{"gateway":"x","session_id":"s"}',
        '{"gateway":"x","session_id":"s","request_id":{},"reason":"r"}',
        '{"gateway":"x","session_id":"s","request_id":1,"reason":7}',
      ]) {
        raw.publish("dmcp.v1.gw.cancel", junk);
      }
      // One for a session no gateway holds: ignored.
      raw.publish("dmcp.v1.gw.cancel", JSON.stringify({ gateway: "x", session_id: "no-such-session", request_id: 1 }));
      await raw.flush();
      const dropped = async () => {
        const metrics = await (await fetch(third.url.replace(/\/mcp$/, "/metrics"))).text();
        return Number(/dmcp_bus_messages_dropped_total\{subject="session",reason="invalid_message"\} (\d+)/.exec(metrics)?.[1] ?? 0);
      };
      await eventually(async () => (await dropped()) === 6, 10_000);
      const headers = await openSession(third.url, undefined, '"queued__sleep"');
      const pinged = await fetch(third.url, { method: "POST", headers: headers(), body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }) });
      expect(await pinged.json()).toMatchObject({ id: 1, result: {} });
    } finally {
      await raw.close();
    }
  }, 60_000);
});

describe("an answer sealed to the gateway that died", () => {
  let sealed: SealedWorld;
  let world: World;

  beforeAll(async () => {
    // Calls wait far longer than this test may take: an answer that came only at the deadline would fail it.
    sealed = await startSealedWorld({ shareCallerKey: false, gatewayArgs: ["--call-timeout", "300000"] });
    world = sealed.world;
  }, 120_000);

  afterAll(async () => {
    await sealed?.close();
  });

  it("fails the direct and the durable call at once with DECRYPTION_FAILED, saying why, instead of waiting for the deadline", async () => {
    const client = new Client({ name: "failover-sealed", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(world.proxy.url)));
    try {
      const { directCall, durableCall, survivor } = await callsOnAKilledGateway(world, client, { direct: 2001, durable: 2002 });
      const failures = await Promise.allSettled([directCall, durableCall]);
      for (const failure of failures) {
        expect(failure.status).toBe("rejected");
        const error = (failure as PromiseRejectedResult).reason as { code?: number; message: string };
        expect(error.code).toBe(-32044);
        // The call's stream names the key its events and answer are sealed to, which the survivor does not hold (PROTOCOL.md §19.3).
        expect(error.message).toMatch(/are sealed to X[A-Z2-7]{55}, the key of the gateway that sent it, which this gateway does not hold/);
      }
      // The survivor did not look for answers it could not open: nothing ran again either.
      const recovered = world.gateways[survivor]!.stderr.filter((line) => line.includes("looking for the answer of a call another gateway sent"));
      expect(recovered).toHaveLength(0);
      expect(world.direct.stderr.filter((line) => line.includes("sleep: running 2001"))).toHaveLength(1);
      expect(world.durable.stderr.filter((line) => line.includes("sleep: running 2002"))).toHaveLength(1);
    } finally {
      await client.close().catch(() => undefined);
    }
  }, 90_000);
});

describe("answers sealed to a caller seal key the gateways share", () => {
  let sealed: SealedWorld;
  let world: World;

  beforeAll(async () => {
    sealed = await startSealedWorld({ shareCallerKey: true });
    world = sealed.world;
  }, 120_000);

  afterAll(async () => {
    await sealed?.close();
  });

  it("answers the sealed direct and durable calls in flight on a SIGKILLed gateway through the other", async () => {
    const client = new Client({ name: "failover-shared-seal", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(world.proxy.url)));
    try {
      const { directCall, durableCall, survivor } = await callsOnAKilledGateway(world, client, { direct: 3201, durable: 3202 });
      expect(await directCall).toMatchObject({ content: [{ type: "text", text: "slept 3201" }] });
      expect(await durableCall).toMatchObject({ content: [{ type: "text", text: "slept 3202" }] });
      const recovered = world.gateways[survivor]!.stderr.filter((line) => line.includes("looking for the answer of a call another gateway sent"));
      expect(recovered).toHaveLength(2);
    } finally {
      await client.close().catch(() => undefined);
    }
  }, 90_000);

  it("refuses a caller seal key file that holds no curve seed, saying so", async () => {
    const bad = join(sealed.dir, "not-a-curve.seed");
    execFileSync(process.execPath, [DMCP_BIN, "keygen", "--out", bad]);
    const gateway = runDmcp(["gateway", "--nats", world.nats.url, "--http", "0", "--caller-seal-key", bad]);
    expect(await gateway.exited).toBe(2);
    expect(gateway.stderr.join("\n")).toMatch(/curve/);
  }, 30_000);
});

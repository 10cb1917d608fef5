/**
 * Failover mid-call (issue 15, item 3): a gateway SIGKILLed with calls in flight. Its client resumes
 * each call's stream (GET + Last-Event-ID) through a round-robin balancer, so on the other gateway,
 * which finds each call's answer on the bus (PROTOCOL.md §19.4): a durable call's in the result store,
 * a direct call's at the executor that ran it. Each call runs once. Real nats-server, gateways,
 * executors and the MCP SDK's client.
 */
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually, startGatewayHttp, wrapFixtureStdio, type Child } from "../support/processes.js";
import { startRoundRobinProxy, type RoundRobinProxy } from "../support/round-robin.js";
import { parseEvents } from "../support/sse.js";
import { openSession } from "../support/sse.js";

type Gateway = Child & { url: string };

describe("calls in flight on a gateway that dies are answered through another", () => {
  let nats: EmbeddedNats;
  let gateways: Gateway[] = [];
  let direct: Child;
  let durable: Child;
  let proxy: RoundRobinProxy;

  beforeAll(async () => {
    nats = await startTestNats();
    direct = await wrapFixtureStdio(nats.url, "legacy");
    // One after the other: the first creates the streams.
    gateways = [await startGatewayHttp(nats.url, ["--log-level", "debug"]), await startGatewayHttp(nats.url, ["--log-level", "debug"])];
    // After a gateway: durable executors wait for the streams it creates.
    durable = await wrapFixtureStdio(nats.url, "queued", ["--delivery", "durable", "--ack-wait", "5s"]);
    await Promise.all(gateways.map((gateway) => openSession(gateway.url, undefined, '"queued__sleep"')));
    proxy = await startRoundRobinProxy(gateways.map((gateway) => new URL(gateway.url).origin));
  }, 120_000);

  afterAll(async () => {
    await proxy?.close();
    await Promise.allSettled([...gateways.map((gateway) => gateway.stop()), direct?.stop(), durable?.stop()]);
    await nats?.stop();
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
      await eventually(async () => (await client.listTools()).tools.some((tool) => tool.name === "queued__sleep"), 30_000);
      // Both calls go to the same gateway: the one the first went to (a ping steers the balancer's turn).
      const sent = proxy.routed.length;
      const directCall = client.callTool({ name: "legacy__sleep", arguments: { ms: 3001 } }, { timeout: 30_000 });
      await eventually(() => proxy.routed.length > sent);
      const victim = proxy.routed[sent]!;
      if (proxy.routed.length % 2 !== victim) await client.ping();
      const before = proxy.routed.length;
      const durableCall = client.callTool({ name: "queued__sleep", arguments: { ms: 3002 } }, { timeout: 30_000 });
      await eventually(() => proxy.routed.length > before);
      expect(proxy.routed[before]).toBe(victim);
      await Promise.all([direct.waitFor(/sleep: running 3001/, 15_000), durable.waitFor(/sleep: running 3002/, 15_000)]);

      const killed = gateways[victim]!;
      killed.kill("SIGKILL");
      await killed.exited;
      const [directAnswer, durableAnswer] = await Promise.all([directCall, durableCall]);
      expect(directAnswer).toMatchObject({ content: [{ type: "text", text: "slept 3001" }] });
      expect(durableAnswer).toMatchObject({ content: [{ type: "text", text: "slept 3002" }] });
      // The survivor found both answers on the bus, for streams the killed gateway had sent.
      const recovered = gateways[1 - victim]!.stderr.filter((line) => line.includes("looking for the answer of a call another gateway sent"));
      expect(recovered.map((line) => (JSON.parse(line) as { delivery: string }).delivery).sort()).toEqual(["direct", "durable"]);
      // Nothing ran twice: one run of each call upstream.
      expect(direct.stderr.filter((line) => line.includes("sleep: running 3001"))).toHaveLength(1);
      expect(durable.stderr.filter((line) => line.includes("sleep: running 3002"))).toHaveLength(1);
    } finally {
      await client.close().catch(() => undefined);
    }
  }, 60_000);
});

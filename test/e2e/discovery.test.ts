/** Executors and agents answer the NATS services protocol, as standard NATS tooling asks it. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Svcm } from "@nats-io/services";
import { connect, NoRespondersError, type NatsConnection } from "@nats-io/transport-node";
import * as z from "zod";
import { Agent } from "../../src/agent/index.js";
import { connectBus, Requester, type Bus } from "../../src/bus/index.js";
import { silentLogger } from "../../src/util/logger.js";
import { provisionTestStreams, startTestNats, type EmbeddedNats } from "../support/nats.js";
import { runDmcp, wrapFixtureStdio, type Child } from "../support/processes.js";

async function collect<T>(iterator: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterator) out.push(item);
  return out;
}

describe("NATS services protocol", () => {
  let nats: EmbeddedNats;
  let executor: Child;
  let bus: Bus;
  let agent: Agent;
  let nc: NatsConnection;

  beforeAll(async () => {
    nats = await startTestNats();
    // The streams a gateway creates (none runs here): executors and agents wait for them.
    await provisionTestStreams(nats.url);
    executor = await wrapFixtureStdio(nats.url, "discoverable");
    bus = await connectBus({ servers: nats.url, name: "discovery-test", logger: silentLogger() });
    agent = new Agent({ bus, name: "finder", version: "2.1.0", description: "finds things", logger: silentLogger() });
    agent.tool("find", { description: "finds", input: z.object({ what: z.string() }) }, ({ what }) => `found ${what}`);
    await agent.start();
    nc = await connect({ servers: nats.url });
  });

  afterAll(async () => {
    await nc?.close();
    await agent?.stop();
    await bus?.drain();
    await executor?.stop();
    await nats?.stop();
  });

  it("answers PING and INFO for executors and agents, with their request subject and queue group", async () => {
    const client = new Svcm(nc).client({ maxWait: 1000 });
    const pings = await collect(await client.ping());
    expect(pings.map((p) => p.name).sort()).toEqual(["discoverable", "finder"]);
    const [info] = await collect(await client.info("finder"));
    expect(info).toMatchObject({
      name: "finder",
      version: "2.1.0",
      description: "finds things",
      metadata: { kind: "agent" },
      endpoints: [{ subject: "dmcp.v1.req.finder", queue_group: "dmcp-finder" }],
    });
    const [executorInfo] = await collect(await client.info("discoverable"));
    expect(executorInfo?.metadata).toMatchObject({ kind: "executor" });
  });

  it("reports request counts, errors and processing time in STATS", async () => {
    const caller = new Requester(bus, "discovery-test");
    await caller.call("finder", "tools/call", { name: "find", arguments: { what: "keys" } }, { timeoutMs: 5000 });
    // An unknown tool is an error_notification (bad arguments would be a tool result with isError).
    await caller.call("finder", "tools/call", { name: "nothing_here", arguments: {} }, { timeoutMs: 5000 }).catch(() => undefined);
    caller.close();
    const client = new Svcm(nc).client({ maxWait: 1000 });
    const [stats] = await collect(await client.stats("finder", agent.instance));
    const endpoint = stats!.endpoints![0]!;
    expect(endpoint.num_requests).toBe(2);
    expect(endpoint.num_errors).toBe(1);
    expect(endpoint.last_error).toMatch(/UNKNOWN_TARGET/);
    expect(endpoint.processing_time).toBeGreaterThan(0);
  });

  it("stops answering once stopped", async () => {
    const leaving = new Agent({ bus, name: "ephemeral", version: "1.0.0", logger: silentLogger() });
    await leaving.start();
    const client = new Svcm(nc).client({ maxWait: 500 });
    expect((await collect(await client.ping("ephemeral"))).length).toBe(1);
    await leaving.stop();
    // Nobody answers for it any more: the request fails with no responders.
    await expect(client.ping("ephemeral").then(collect)).rejects.toBeInstanceOf(NoRespondersError);
  });

  it("shows up in dmcp status with its kind and, for agents, the profile", async () => {
    const status = runDmcp(["status", "--nats", nats.url, "--json", "--wait", "600"]);
    let stdout = "";
    status.process.stdout!.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    expect(await status.exited).toBe(0);
    const services = (JSON.parse(stdout) as { services: Record<string, { replicas: { kind: string; profile: Record<string, unknown> | null }[] }> }).services;
    expect(services.finder!.replicas[0]).toMatchObject({ kind: "agent", profile: { name: "finder", version: "2.1.0", description: "finds things" } });
    expect(services.discoverable!.replicas[0]).toMatchObject({ kind: "executor", profile: null });
  });
});

/**
 * Three gateways share their sessions as two do (issue 15; shared-sessions.long.test.ts has the
 * details): a client behind a round-robin balancer over three `dmcp gateway` processes has every
 * request served, its tasks read anywhere, its session deleted on any one of them and gone on all,
 * the loss of one gateway survived by the other two, and one rate limit spent across all three.
 * Real nats-server, gateways and executor, the MCP SDK's client transport.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RawMcpClient } from "../support/mcp-client.js";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually, startGatewayHttp, wrapFixtureStdio, type Child } from "../support/processes.js";
import { startRoundRobinProxy } from "../support/round-robin.js";
import { openSession } from "../support/sse.js";

const ALICE = "Bearer alice-token";
type Gateway = Child & { url: string };

const echo = (id: number, text: string) => JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "echo", arguments: { text } } });

/** The status of a POST of `body` with a session's headers. */
async function postStatus(url: string, headers: Record<string, string>, body: string): Promise<number> {
  const response = await fetch(url, { method: "POST", headers, body });
  await response.body?.cancel();
  return response.status;
}

/** A nats-server, the fixture wrapped as `legacy`, and three gateways with one tokens file. */
function threeGateways(extraFlags: string[] = []) {
  const world = {} as { nats: EmbeddedNats; gateways: Gateway[]; executor: Child; dir: string };
  beforeAll(async () => {
    world.nats = await startTestNats();
    world.dir = mkdtempSync(join(tmpdir(), "dmcp-three-gateways-"));
    writeFileSync(join(world.dir, "tokens"), "alice:alice-token\ncarol:carol-token\n");
    world.executor = await wrapFixtureStdio(world.nats.url, "legacy");
    world.gateways = [];
    // One after the other, as the two-gateway suite does: the first creates the streams.
    for (let i = 0; i < 3; i++) world.gateways.push(await startGatewayHttp(world.nats.url, ["--auth-tokens", join(world.dir, "tokens"), ...extraFlags]));
  }, 120_000);
  afterAll(async () => {
    await Promise.allSettled([...(world.gateways ?? []).map((gateway) => gateway.stop()), world.executor?.stop()]);
    await world.nats?.stop();
    if (world.dir) rmSync(world.dir, { recursive: true, force: true });
  });
  return world;
}

describe("three gateways on one nats-server share their sessions", () => {
  const world = threeGateways();
  const origins = () => world.gateways.map((gateway) => new URL(gateway.url).origin);

  it("serves a client behind a round-robin balancer over all three: calls and a task created on one, read on the others", async () => {
    const proxy = await startRoundRobinProxy(origins());
    const client = await RawMcpClient.connect(new StreamableHTTPClientTransport(new URL(proxy.url), { requestInit: { headers: { authorization: ALICE } } }));
    try {
      await eventually(async () => ((await client.result("tools/list")).tools as { name: string }[]).some((tool) => tool.name === "sleep"), 30_000);
      for (let i = 0; i < 9; i++) expect(await client.result("tools/call", { name: "echo", arguments: { text: `m${i}` } })).toMatchObject({ content: [{ text: `m${i}` }] });
      expect(new Set(proxy.served)).toEqual(new Set([0, 1, 2]));
      const created = await client.result("tools/call", { name: "sleep", arguments: { ms: 300 }, task: { ttl: 600_000 } });
      const taskId = (created.task as { taskId: string }).taskId;
      // Three reads in a row: each on another gateway.
      for (let i = 0; i < 3; i++) expect(await client.result("tasks/get", { taskId })).toMatchObject({ taskId });
      expect(await client.result("tasks/result", { taskId })).toMatchObject({ content: expect.any(Array) });
    } finally {
      await client.close();
      await proxy.close();
    }
  });

  it("ends on every gateway a session deleted on the third", async () => {
    const [a, b, c] = world.gateways as [Gateway, Gateway, Gateway];
    const headers = await openSession(a.url, ALICE, '"echo"');
    expect(await postStatus(b.url, headers(), echo(2, "on B"))).toBe(200);
    expect(await postStatus(c.url, headers(), echo(3, "on C"))).toBe(200);
    expect((await fetch(c.url, { method: "DELETE", headers: headers() })).status).toBe(200);
    await eventually(async () => (await postStatus(a.url, headers(), echo(4, "gone"))) === 404 && (await postStatus(b.url, headers(), echo(5, "gone"))) === 404, 10_000);
  });

  it("goes on through the other two once the gateway that initialized a session is SIGKILLed", async () => {
    const [a, b, c] = world.gateways as [Gateway, Gateway, Gateway];
    const headers = await openSession(a.url, ALICE, '"echo"');
    expect(await postStatus(b.url, headers(), echo(2, "before"))).toBe(200);
    a.kill("SIGKILL");
    await a.exited;
    expect(await postStatus(b.url, headers(), echo(3, "after, on B"))).toBe(200);
    expect(await postStatus(c.url, headers(), echo(4, "after, on C"))).toBe(200);
  }, 60_000);
});

describe("three gateways share each client's rate limit", () => {
  // Three requests at once, then one a second, per client: on all gateways together.
  const world = threeGateways(["--rate-limit", "1/s,burst=3"]);
  const ping = (url: string, authorization: string) => fetch(url, { method: "GET", headers: { authorization, accept: "text/event-stream" } }).then((r) => r.status);

  it("refuses everywhere a client that spent its burst one request on each gateway", async () => {
    const CAROL = "Bearer carol-token";
    // Answered 400 (no session id): what counts is that each got past its gateway's limiter.
    for (const gateway of world.gateways) expect(await ping(gateway.url, CAROL)).toBe(400);
    // Once each gateway has told the others (every 100 ms), none serves her; alone, each would serve her twice more.
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (const gateway of world.gateways) expect(await ping(gateway.url, CAROL)).toBe(429);
    expect(await ping(world.gateways[0]!.url, ALICE)).toBe(400);
  });
});

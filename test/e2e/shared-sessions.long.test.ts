/**
 * Any gateway serves any 2025-11-25 HTTP session (issue 15): two `dmcp gateway` processes on one
 * nats-server (and on a 3-node cluster) share their sessions through the `dmcp_sessions` bucket. A
 * session initialized on A is used, streamed and deleted on B, stays bound to its identity, outlives
 * A, and an MCP client behind a round-robin balancer (per request) works as with one gateway,
 * tasks included. Real nats-server, real gateways and executors, the MCP SDK's client transport.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { connect } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serverGenerations, startTestCluster, type TestCluster } from "../support/cluster.js";
import { RawMcpClient } from "../support/mcp-client.js";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually, REPO_ROOT, runDmcp, startGatewayHttp, wrapFixtureStdio, type Child } from "../support/processes.js";
import { startRoundRobinProxy, type RoundRobinProxy } from "../support/round-robin.js";
import { eventReader, openSession as openAnySession, parseEvents, readStreamUntil, type SseEvent } from "../support/sse.js";

const CONFORMANCE_BIN = `${REPO_ROOT}dist/test/support/fixtures/conformance-server.js`;
const ALICE = "Bearer alice-token";
const BOB = "Bearer bob-token";

type Gateway = Child & { url: string };

/** POSTs one JSON-RPC message with `headers`; the status and the JSON-RPC answer (from JSON or from the SSE stream). */
async function post(url: string, headers: Record<string, string>, message: Record<string, unknown>): Promise<{ status: number; answer?: Record<string, unknown> }> {
  const response = await fetch(url, { method: "POST", headers, body: JSON.stringify(message) });
  const text = await response.text();
  if (!text) return { status: response.status };
  if (!response.headers.get("content-type")?.includes("text/event-stream")) return { status: response.status, answer: JSON.parse(text) as Record<string, unknown> };
  const answers = parseEvents(text)
    .filter((event) => event.data !== "")
    .map((event) => JSON.parse(event.data) as Record<string, unknown>)
    .filter((m) => "result" in m || "error" in m);
  return { status: response.status, ...(answers.length > 0 ? { answer: answers.at(-1)! } : {}) };
}

/** A session on the gateway at `url`, once it lists the tools of both fixture services (named by service: their names collide). */
const openSession = (url: string, authorization?: string, listed = '"queued__sleep"', capabilities: Record<string, unknown> = {}) =>
  openAnySession(url, authorization, listed, capabilities);

const echo = (id: number, message: string) => ({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "legacy__echo", arguments: { text: message } } });

/** A nats-server or a cluster, the fixture wrapped as `legacy`, and two gateways with a tokens file: alice and bob. */
function twoGateways(start: () => Promise<{ seeds: string; stop: () => Promise<void> }>, extraFlags: string[] = []) {
  const world = {} as { a: Gateway; b: Gateway; executor: Child; durable: Child; conformance: Child; dir: string; stop: () => Promise<void>; seeds: string };
  beforeAll(async () => {
    const nats = await start();
    world.stop = nats.stop;
    world.seeds = nats.seeds;
    world.dir = mkdtempSync(join(tmpdir(), "dmcp-shared-sessions-"));
    writeFileSync(join(world.dir, "tokens"), "alice:alice-token\nbob:bob-token\ncarol:carol-token\n");
    const flags = ["--auth-tokens", join(world.dir, "tokens"), "--log-level", "debug", ...extraFlags];
    world.executor = await wrapFixtureStdio(nats.seeds, "legacy");
    // The conformance fixture's tools ask the client for sampling and elicitation (server-to-client requests).
    world.conformance = runDmcp(["wrap", "--name", "conf", "--nats", nats.seeds, "--heartbeat", "500", "--", process.execPath, CONFORMANCE_BIN, "--stdio"]);
    await world.conformance.waitFor(/executor serving/, 30_000);
    // One after the other: two gateways creating the streams at once on a fresh 2.9 cluster can time out.
    world.a = await startGatewayHttp(nats.seeds, flags);
    world.b = await startGatewayHttp(nats.seeds, flags);
    // After a gateway: durable executors wait for the streams it creates.
    world.durable = await wrapFixtureStdio(nats.seeds, "queued", ["--delivery", "durable", "--ack-wait", "5s"]);
    // Each gateway lists the fixture's tools before the tests start (openSession waits for them).
    await Promise.all([openSession(world.a.url, ALICE), openSession(world.b.url, ALICE)]);
  }, 120_000);
  afterAll(async () => {
    await Promise.allSettled([world.a?.stop(), world.b?.stop(), world.executor?.stop(), world.durable?.stop(), world.conformance?.stop()]);
    await world.stop?.();
    if (world.dir) rmSync(world.dir, { recursive: true, force: true });
  });
  return world;
}

describe("two gateways on one nats-server share their sessions", () => {
  let nats: EmbeddedNats;
  const world = twoGateways(async () => {
    nats = await startTestNats();
    return { seeds: nats.url, stop: () => nats.stop() };
  });

  it("serves on B a session initialized on A: calls, its GET stream, and a DELETE on B that ends it on A too", async () => {
    const { a, b } = world;
    const headers = await openSession(a.url, ALICE);
    const called = await post(b.url, headers(), echo(2, "via B"));
    expect(called.status).toBe(200);
    expect(called.answer).toMatchObject({ id: 2, result: { content: [{ type: "text", text: "via B" }] } });
    expect(b.stderr.some((line) => line.includes("serving a session another gateway initialized"))).toBe(true);

    // Its standalone GET stream opens on either gateway.
    const stream = await fetch(b.url, { method: "GET", headers: { ...headers(), accept: "text/event-stream" } });
    expect(stream.status).toBe(200);
    expect(stream.headers.get("content-type")).toContain("text/event-stream");
    await stream.body?.cancel();

    expect((await fetch(b.url, { method: "DELETE", headers: headers() })).status).toBe(200);
    expect((await post(b.url, headers(), echo(3, "gone"))).status).toBe(404);
    // A hears of the delete through the bucket's watch.
    await eventually(async () => (await post(a.url, headers(), echo(4, "gone"))).status === 404, 10_000);
  });

  it("resumes on B, with Last-Event-ID, a call's stream that A sent, and only for the session that owns it", async () => {
    const { a, b } = world;
    const headers = await openSession(a.url, ALICE);
    const call = { jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "legacy__progress", arguments: { steps: 2 }, _meta: { progressToken: "t" } } };
    const response = await fetch(a.url, { method: "POST", headers: headers(), body: JSON.stringify(call) });
    const [priming, ...sent] = parseEvents(await response.text());
    expect(sent.at(-1)?.data).toContain('"result"');
    // The client lost the stream right after the priming event, and its balancer sends the resumption to B.
    const resumed = await fetch(b.url, { method: "GET", headers: { ...headers(), accept: "text/event-stream", "last-event-id": priming!.id! } });
    expect(resumed.status).toBe(200);
    const replayed = (await readStreamUntil(resumed, '"result"')).filter((event) => event.data !== "");
    expect(replayed.map((event) => event.id)).toEqual(sent.map((event) => event.id));
    expect(JSON.parse(replayed.at(-1)!.data)).toMatchObject({ id: 2, result: { content: expect.any(Array) } });
    // Another session of the same identity, on B, cannot replay it.
    const other = await openSession(b.url, ALICE);
    const refused = await fetch(b.url, { method: "GET", headers: { ...other(), accept: "text/event-stream", "last-event-id": priming!.id! } });
    expect(refused.status).toBe(400);
    await refused.body?.cancel();
    // Ids that name nothing the bus keeps for this session, however they look, get 400 too.
    for (const id of ["nonsense", "0a0a0a0a-1/_GET_stream:1", "0a0a0a0a-1/a.b.>:2", `x/${"y".repeat(300)}:3`]) {
      const unknown = await fetch(b.url, { method: "GET", headers: { ...headers(), accept: "text/event-stream", "last-event-id": id } });
      expect([id, unknown.status]).toEqual([id, 400]);
      await unknown.body?.cancel();
    }
  });

  it("goes on live on B with a call's stream that A sent and the client lost mid-call, up to the call's answer", async () => {
    const { a, b } = world;
    const headers = await openSession(a.url, ALICE);
    const call = { jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "legacy__sleep", arguments: { ms: 2000 }, _meta: { progressToken: "t" } } };
    const response = await fetch(a.url, { method: "POST", headers: headers(), body: JSON.stringify(call) });
    // The client loses the stream after its priming event, long before the answer, and resumes on B.
    const [priming] = await readStreamUntil(response, "\n\n");
    const resumed = await fetch(b.url, { method: "GET", headers: { ...headers(), accept: "text/event-stream", "last-event-id": priming!.id! } });
    expect(resumed.status).toBe(200);
    // B had nothing to replay: the answer A sends later reaches the client through B, and the stream ends with it.
    const events = parseEvents(await resumed.text()).filter((event) => event.data !== "");
    expect(events.map((event) => JSON.parse(event.data))).toEqual([
      expect.objectContaining({ id: 2, result: expect.objectContaining({ content: [{ type: "text", text: "slept 2000" }] }) }),
    ]);
  });

  it("sends a call's request to the client on its stream resumed on B, and the answer posted to B completes the call on A", async () => {
    const { a, b } = world;
    const headers = await openSession(a.url, ALICE, '"test_sampling"', { sampling: {} });
    const call = { jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "test_sampling", arguments: { prompt: "across?" }, _meta: { progressToken: "t" } } };
    const response = await fetch(a.url, { method: "POST", headers: headers(), body: JSON.stringify(call) });
    const [priming] = await readStreamUntil(response, "sampling/createMessage");
    // Lost before the client could answer: B replays the request from the bus, then follows the stream.
    const resumed = await fetch(b.url, { method: "GET", headers: { ...headers(), accept: "text/event-stream", "last-event-id": priming!.id! } });
    const reader = eventReader(resumed);
    const request = JSON.parse((await reader.until("sampling/createMessage")).at(-1)!.data) as { id: string };
    const answer = { jsonrpc: "2.0", id: request.id, result: { role: "assistant", content: { type: "text", text: "sampled through B" }, model: "m" } };
    expect((await fetch(b.url, { method: "POST", headers: headers(), body: JSON.stringify(answer) })).status).toBe(202);
    const result = JSON.parse((await reader.until('"result"')).at(-1)!.data) as Record<string, unknown>;
    expect(result).toMatchObject({ id: 2, result: { content: [{ type: "text", text: expect.stringContaining("sampled through B") }] } });
    await reader.cancel();
  });

  it("sends what A sends outside any call on the GET stream the client holds on B: a session notification, and a request whose answer posted to B reaches the upstream", async () => {
    const { a, b } = world;
    const headers = await openSession(a.url, ALICE, '"legacy__ask_client"', { roots: { listChanged: true } });
    const listening = await fetch(b.url, { method: "GET", headers: { ...headers(), accept: "text/event-stream" } });
    expect(listening.status).toBe(200);
    const reader = eventReader(listening);
    const callOnA = (id: number, name: string, args: Record<string, unknown>) =>
      post(a.url, headers(), { jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } });
    await callOnA(2, "legacy__elicitation_complete", { id: "e-7" });
    expect(JSON.parse((await reader.until("elicitation/complete")).at(-1)!.data)).toMatchObject({ method: "notifications/elicitation/complete", params: { elicitationId: "e-7" } });
    await callOnA(3, "legacy__ask_client", { method: "roots/list", ms: 100 });
    const request = JSON.parse((await reader.until("roots/list")).at(-1)!.data) as { id: string; method: string };
    expect(request.id).toMatch(/^dmcp-\d+@/);
    const roots = { roots: [{ uri: "file:///through-b", name: "b" }] };
    expect((await fetch(b.url, { method: "POST", headers: headers(), body: JSON.stringify({ jsonrpc: "2.0", id: request.id, result: roots }) })).status).toBe(202);
    await eventually(async () => JSON.stringify((await callOnA(4, "legacy__client_answers", {})).answer).includes("file:///through-b"), 10_000);
    await reader.cancel();
  });

  it("sends a list change that both gateways holding a session see once, from the gateway holding its GET stream", async () => {
    const { a, b } = world;
    const headers = await openSession(a.url, ALICE);
    // Both gateways hold the session (its calls went to both); its GET stream opens on B.
    await post(b.url, headers(), echo(2, "on B"));
    const listening = await fetch(b.url, { method: "GET", headers: { ...headers(), accept: "text/event-stream" } });
    const reader = eventReader(listening);
    const late = await wrapFixtureStdio(world.seeds, "late");
    try {
      await reader.until("notifications/tools/list_changed");
      // Once A lists the new service it has sent whatever it would send; then a message only A sends marks the end.
      await eventually(async () => JSON.stringify((await post(a.url, headers(), { jsonrpc: "2.0", id: 3, method: "tools/list" })).answer).includes("late__echo"), 30_000);
      await post(a.url, headers(), { jsonrpc: "2.0", id: 4, method: "tools/call", params: { name: "legacy__elicitation_complete", arguments: { id: "marker" } } });
      const events = await reader.until('"marker"');
      const origin = (event: SseEvent) => event.id!.slice(0, event.id!.indexOf("-"));
      const fromA = origin(events.at(-1)!);
      expect(events.filter((event) => event.data.includes("list_changed")).map(origin)).not.toContain(fromA);
    } finally {
      await reader.cancel();
      await late.stop();
    }
  });

  it("keeps a session bound to the identity that opened it, on every gateway", async () => {
    const { a, b } = world;
    const headers = await openSession(a.url, ALICE);
    const asBob = { ...headers(), authorization: BOB };
    // Bob with alice's session id: refused on the gateway that does not hold it yet, as on the one that does.
    expect((await post(b.url, asBob, echo(2, "bob"))).status).toBe(403);
    expect((await post(a.url, asBob, echo(3, "bob"))).status).toBe(403);
    expect((await fetch(b.url, { method: "DELETE", headers: asBob })).status).toBe(403);
    expect((await post(b.url, headers(), echo(4, "alice"))).answer).toMatchObject({ id: 4, result: { content: [{ text: "alice" }] } });
  });

  it("answers 404 to session ids no gateway issued, whatever they look like, and to a record it cannot read", async () => {
    const { b } = world;
    const headers = await openSession(b.url, ALICE);
    for (const id of ["0f8b1c1e-0000-4000-8000-000000000000", "../../etc/passwd", "a.b.>", "*", "x".repeat(300)]) {
      expect((await post(b.url, { ...headers(), "mcp-session-id": id }, echo(2, "x"))).status).toBe(404);
    }
    // A record that is not a session's (written by hand): refused like an unknown id, and the gateway goes on.
    const nc = await connect({ servers: world.seeds });
    try {
      const kv = await new Kvm(nc).open("dmcp_sessions");
      await kv.put("garbled", new TextEncoder().encode('{"v":1,"owner":"nobody"}'));
    } finally {
      await nc.close();
    }
    expect((await post(world.a.url, { ...headers(), "mcp-session-id": "garbled" }, echo(3, "x"))).status).toBe(404);
    expect((await post(b.url, headers(), echo(4, "still here"))).answer).toMatchObject({ result: { content: [{ text: "still here" }] } });
  });

  it("serves an MCP client behind a round-robin balancer (per request) as one gateway would: calls, tasks across gateways", async () => {
    const proxy = await startRoundRobinProxy([new URL(world.a.url).origin, new URL(world.b.url).origin]);
    const client = await RawMcpClient.connect(new StreamableHTTPClientTransport(new URL(proxy.url), { requestInit: { headers: { authorization: ALICE } } }));
    try {
      for (let i = 0; i < 10; i++)
        expect(await client.result("tools/call", { name: "legacy__echo", arguments: { text: `m${i}` } })).toMatchObject({ content: [{ text: `m${i}` }] });
      expect(new Set(proxy.served)).toEqual(new Set([0, 1]));
      expect(await client.result("logging/setLevel", { level: "error" })).toEqual({});

      // A task created through one gateway is read, listed and its result taken through the others.
      const created = await client.result("tools/call", { name: "legacy__sleep", arguments: { ms: 300 }, task: { ttl: 600_000 } });
      const taskId = (created.task as { taskId: string }).taskId;
      expect(await client.result("tasks/get", { taskId })).toMatchObject({ taskId });
      expect(((await client.result("tasks/list")).tasks as { taskId: string }[]).map((t) => t.taskId)).toContain(taskId);
      expect(await client.result("tasks/result", { taskId })).toMatchObject({ content: expect.any(Array) });
      const cancelled = await client.result("tools/call", { name: "legacy__sleep", arguments: { ms: 60_000 }, task: { ttl: 600_000 } });
      const longId = (cancelled.task as { taskId: string }).taskId;
      expect(await client.result("tasks/cancel", { taskId: longId })).toMatchObject({ status: "cancelled" });
      expect(await client.result("tasks/get", { taskId: longId })).toMatchObject({ status: "cancelled" });
    } finally {
      await client.close();
      await proxy.close();
    }
  });

  it("routes a client's answers to sampling and elicitation requests back to the gateway that asked, whichever gateway it posts them to", async () => {
    const proxy = await startRoundRobinProxy([new URL(world.a.url).origin, new URL(world.b.url).origin]);
    const sdk = new Client({ name: "s2c", version: "1.0.0" }, { capabilities: { sampling: {}, elicitation: { form: {} } } });
    sdk.setRequestHandler("sampling/createMessage", () => ({ role: "assistant", content: { type: "text", text: "sampled by the client" }, model: "test-model" }));
    sdk.setRequestHandler("elicitation/create", () => ({ action: "accept", content: { username: "across", email: "across@example.com" } }));
    await sdk.connect(new StreamableHTTPClientTransport(new URL(proxy.url), { requestInit: { headers: { authorization: ALICE } } }));
    try {
      await eventually(async () => (await sdk.listTools()).tools.some((tool) => tool.name === "test_sampling"));
      const routed = () => world.a.stderr.concat(world.b.stderr).filter((line) => line.includes('"unknown_request"')).length;
      // Each call's POST and the client's answer to its request go to different gateways (strict alternation), in either order.
      for (let i = 0; i < 2; i++) {
        const sampled = await sdk.callTool({ name: "test_sampling", arguments: { prompt: `p${i}` } }, { timeout: 20_000 });
        expect(JSON.stringify(sampled.content)).toContain("sampled by the client");
        const elicited = await sdk.callTool({ name: "test_elicitation", arguments: { message: "who?" } }, { timeout: 20_000 });
        expect(JSON.stringify(elicited.content)).toContain("across");
      }
      expect(routed()).toBe(0);
      // At least one answer reached the gateway that did not ask (it would have hung there before).
      expect(world.a.stderr.concat(world.b.stderr).some((line) => line.includes("passing a client's answer on to the gateway that asked"))).toBe(true);
    } finally {
      await sdk.close();
      await proxy.close();
    }
  });

  it("gives a client session one upstream session per service, whichever gateway sends its calls: the replica its first call reached, through A and B alike", async () => {
    // Two replicas of a stdio service: each client session gets a server process of its own on one of them.
    const replicas = [await wrapFixtureStdio(world.seeds, "stateful", ["--log-level", "info"]), await wrapFixtureStdio(world.seeds, "stateful", ["--log-level", "info"])];
    const opened = () => replicas.flatMap((replica) => replica.stderr).filter((line) => line.includes("upstream session opened for a client session")).length;
    try {
      await Promise.all([openSession(world.a.url, ALICE, '"stateful__whoami"'), openSession(world.b.url, ALICE, '"stateful__whoami"')]);
      const before = opened();
      const sessions = 4;
      for (let n = 0; n < sessions; n++) {
        const headers = await openSession(world.a.url, ALICE, '"stateful__whoami"');
        const whoami = async (url: string, id: number) => {
          const { answer } = await post(url, headers(), { jsonrpc: "2.0", id, method: "tools/call", params: { name: "stateful__whoami", arguments: {} } });
          return JSON.stringify(answer?.result);
        };
        const first = await whoami(world.a.url, 2);
        expect(first).toContain("stateful:");
        // The upstream's process id: the same server process answers every call of the session.
        for (let call = 3; call < 9; call++) expect(await whoami(call % 2 === 0 ? world.a.url : world.b.url, call)).toBe(first);
        await fetch(world.b.url, { method: "DELETE", headers: headers() });
      }
      // One upstream session per client session, over both replicas and both gateways.
      expect(opened() - before).toBe(sessions);
    } finally {
      await Promise.allSettled(replicas.map((replica) => replica.stop()));
    }
  }, 90_000);

  it("serves an MCP client behind the balancer whose call's stream is cut mid-call: it resumes on the other gateway, which follows it to the answer; requests outside calls reach its GET stream", async () => {
    const proxy = await startRoundRobinProxy([new URL(world.a.url).origin, new URL(world.b.url).origin]);
    const sdk = new Client({ name: "live", version: "1.0.0" }, { capabilities: { roots: { listChanged: true } } });
    let asked = 0;
    sdk.setRequestHandler("roots/list", () => {
      asked++;
      return { roots: [{ uri: "file:///from-the-client", name: "client" }] };
    });
    await sdk.connect(new StreamableHTTPClientTransport(new URL(proxy.url), { requestInit: { headers: { authorization: ALICE } } }));
    try {
      // A progress token asks for a resumable stream (a plain call is answered with JSON).
      const answer = sdk.callTool({ name: "legacy__sleep", arguments: { ms: 2500 } }, { onprogress: () => undefined, timeout: 30_000 });
      await eventually(async () => proxy.streaming("POST") > 0, 10_000);
      const before = proxy.requests.length;
      const postedTo = proxy.requests.filter((request) => request.method === "POST").at(-1)!.backend;
      proxy.cut("POST");
      expect(await answer).toMatchObject({ content: [{ type: "text", text: "slept 2500" }] });
      // One resumption, on the other gateway, which followed the stream to its answer (no second resumption).
      expect(proxy.requests.slice(before)).toEqual([{ method: "GET", backend: 1 - postedTo }]);

      // A request the upstream makes outside any call goes out on the GET stream, whichever gateway holds it.
      await sdk.callTool({ name: "legacy__ask_client", arguments: { method: "roots/list", ms: 100 } });
      await eventually(async () => asked === 1, 10_000);
      // The answer reached the upstream session of the gateway the call went through (read it there: calls alternate).
      await eventually(async () => JSON.stringify(await sdk.callTool({ name: "legacy__client_answers", arguments: {} })).includes("file:///from-the-client"), 10_000);
    } finally {
      await sdk.close();
      await proxy.close();
    }
  });

  it("goes on serving a session through B once A, which initialized it, is SIGKILLed; a durable call's task started through A is answered through B", async () => {
    const headers = await openSession(world.a.url, ALICE);
    const task = { jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "queued__sleep", arguments: { ms: 1500 }, task: { ttl: 600_000 } } };
    const created = await post(world.a.url, headers(), task);
    expect(created.answer).toMatchObject({ result: { task: { status: "working" } } });
    const taskId = (created.answer!.result as { task: { taskId: string } }).task.taskId;
    const whoami = { jsonrpc: "2.0", id: 5, method: "tools/call", params: { name: "legacy__whoami", arguments: {} } };
    const upstreamBefore = JSON.stringify((await post(world.a.url, headers(), whoami)).answer?.result);
    world.a.kill("SIGKILL");
    await world.a.exited;
    expect((await post(world.b.url, headers(), echo(3, "after A"))).answer).toMatchObject({ id: 3, result: { content: [{ text: "after A" }] } });
    // B adopts the task once A's lease ran out (PROTOCOL.md §17.2) and gives its stored answer.
    const result = await post(world.b.url, headers(), { jsonrpc: "2.0", id: 4, method: "tasks/result", params: { taskId } });
    expect(result.answer).toMatchObject({ id: 4, result: { content: [{ text: "slept 1500" }] } });
    // The session's upstream session outlives the gateway that opened it.
    expect(JSON.stringify((await post(world.b.url, headers(), { ...whoami, id: 6 })).answer?.result)).toBe(upstreamBefore);
  }, 60_000);
});

describe("two gateways share each client's rate limit", () => {
  let nats: EmbeddedNats;
  // Three requests at once, then one a second, per client: on all gateways together.
  const world = twoGateways(async () => {
    nats = await startTestNats();
    return { seeds: nats.url, stop: () => nats.stop() };
  }, ["--rate-limit", "1/s,burst=3"]);
  const ping = (url: string, authorization: string) => fetch(url, { method: "GET", headers: { authorization, accept: "text/event-stream" } }).then((r) => r.status);

  it("refuses on B a client that spent its burst on A, and serves another client there", async () => {
    const CAROL = "Bearer carol-token";
    // Carol's burst on A (each request answered 400: no session id; what counts is that it got past the limiter).
    for (let i = 0; i < 3; i++) expect(await ping(world.a.url, CAROL)).toBe(400);
    expect(await ping(world.a.url, CAROL)).toBe(429);
    // Once A has told B (every 100 ms), B refuses her too; one gateway per process would serve her 3 more.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await ping(world.b.url, CAROL)).toBe(429);
    expect(await ping(world.b.url, BOB)).toBe(400);
  });
});

describe.each(serverGenerations())("two gateways on a 3-node cluster ($label) share their sessions", ({ binary }) => {
  let cluster: TestCluster;
  let proxy: RoundRobinProxy;
  const world = twoGateways(async () => {
    cluster = await startTestCluster({ binary });
    return { seeds: cluster.seeds, stop: () => cluster.stop() };
  });
  afterAll(() => proxy?.close());

  it("serves a client through a round-robin balancer, and a session initialized on A through B", async () => {
    proxy = await startRoundRobinProxy([new URL(world.a.url).origin, new URL(world.b.url).origin]);
    const client = await RawMcpClient.connect(new StreamableHTTPClientTransport(new URL(proxy.url), { requestInit: { headers: { authorization: ALICE } } }));
    try {
      for (let i = 0; i < 6; i++) expect(await client.result("tools/call", { name: "legacy__echo", arguments: { text: `c${i}` } })).toMatchObject({ content: [{ text: `c${i}` }] });
      expect(new Set(proxy.served)).toEqual(new Set([0, 1]));
    } finally {
      await client.close();
    }
    const headers = await openSession(world.a.url, ALICE);
    expect((await post(world.b.url, headers(), echo(2, "on B"))).answer).toMatchObject({ result: { content: [{ text: "on B" }] } });
    expect((await fetch(world.a.url, { method: "DELETE", headers: headers() })).status).toBe(200);
    await eventually(async () => (await post(world.b.url, headers(), echo(3, "gone"))).status === 404, 10_000);
  });
});

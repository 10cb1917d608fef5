/**
 * MCP Tasks run by the gateway, with real processes: a nats-server, `dmcp wrap` executors of the raw
 * fixture (which knows nothing of tasks), and `dmcp gateway` processes. Task state lives in the
 * `dmcp_tasks` KV bucket, so a second gateway, or a gateway started after the first was killed, sees
 * the same tasks; a task belongs to the identity that created it.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { RawMcpClient, gatewayTransport } from "../support/mcp-client.js";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually, startGatewayHttp, wrapFixtureStdio, type Child } from "../support/processes.js";

const EXTENSION = "io.modelcontextprotocol/tasks";
type Task = { taskId: string; status: string; ttl?: number; pollInterval?: number; statusMessage?: string };

let nats: EmbeddedNats;
let direct: Child;
let durable: Child;
let dir: string;
const gateways: Child[] = [];
const clients: RawMcpClient[] = [];

async function gateway(): Promise<Child & { url: string }> {
  const child = await startGatewayHttp(nats.url, ["--auth-tokens", join(dir, "tokens"), "--log-level", "info"]);
  gateways.push(child);
  return child;
}

async function client(url: string, token: string): Promise<RawMcpClient> {
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${token}` } } });
  const connected = await RawMcpClient.connect(transport);
  clients.push(connected);
  return connected;
}

async function startTask(mcp: RawMcpClient, name: string, args: Record<string, unknown>): Promise<Task> {
  const created = await mcp.result("tools/call", { name, arguments: args, task: { ttl: 600_000 } });
  return created.task as Task;
}

async function status(mcp: RawMcpClient, taskId: string): Promise<Task> {
  return (await mcp.result("tasks/get", { taskId })) as unknown as Task;
}

beforeAll(async () => {
  nats = await startTestNats();
  dir = mkdtempSync(join(tmpdir(), "dmcp-tasks-"));
  writeFileSync(join(dir, "tokens"), "alice:alice-token\nbob:bob-token\n");
  direct = await wrapFixtureStdio(nats.url, "plain");
  durable = await wrapFixtureStdio(nats.url, "queued", ["--delivery", "durable", "--ack-wait", "5s"]);
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(clients.map((c) => c.close()));
  await Promise.allSettled([...gateways, direct, durable].map((child) => child?.stop()));
  await nats?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("2025-11-25 tasks at the gateway", () => {
  it("offers tasks for every tool, runs a task-augmented call, reports it and notifies its status (stdio)", async () => {
    const mcp = new RawMcpClient(gatewayTransport("stdio", { natsUrl: nats.url }));
    await mcp.transport.start();
    clients.push(mcp);
    const init = await mcp.result("initialize", { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "t", version: "1" } });
    expect(init.capabilities).toMatchObject({ tasks: { list: {}, cancel: {}, requests: { tools: { call: {} } } } });
    await mcp.notify("notifications/initialized");
    const tools = await eventually(async () => {
      const list = (await mcp.result("tools/list")).tools as { name: string; execution?: { taskSupport?: string } }[];
      return list.some((tool) => tool.name === "plain__sleep") ? list : undefined;
    });
    expect(tools.every((tool) => tool.execution?.taskSupport === "optional")).toBe(true);
    const sleepTool = "plain__sleep";

    const task = await startTask(mcp, sleepTool, { ms: 1500 });
    expect(task).toMatchObject({ status: "working", ttl: 600_000 });
    expect(typeof task.pollInterval).toBe("number");
    expect((await status(mcp, task.taskId)).taskId).toBe(task.taskId);

    const result = await mcp.result("tasks/result", { taskId: task.taskId });
    expect(result.content).toEqual([{ type: "text", text: "slept 1500" }]);
    expect(result._meta).toMatchObject({ "io.modelcontextprotocol/related-task": { taskId: task.taskId } });
    expect(await status(mcp, task.taskId)).toMatchObject({ status: "completed" });
    await mcp.waitForNotification("notifications/tasks/status");
    expect(mcp.notifications.find((n) => n.method === "notifications/tasks/status")?.params).toMatchObject({ taskId: task.taskId, status: "completed" });

    const listed = (await mcp.result("tasks/list")).tasks as Task[];
    expect(listed.map((t) => t.taskId)).toContain(task.taskId);
  }, 60_000);

  it("records a tool error as completed with isError, and an unknown tool's task as failed", async () => {
    const gw = await gateway();
    const mcp = await client(gw.url, "alice-token");
    const failed = await startTask(mcp, "plain__fail", {});
    const outcome = await mcp.result("tasks/result", { taskId: failed.taskId });
    expect(outcome.isError).toBe(true);
    expect(await status(mcp, failed.taskId)).toMatchObject({ status: "completed" });

    const unknown = await startTask(mcp, "no_such_tool", {});
    const answer = await mcp.request("tasks/result", { taskId: unknown.taskId });
    expect(answer.error?.code).toBe(-32602);
    expect(await status(mcp, unknown.taskId)).toMatchObject({ status: "failed" });
  }, 60_000);

  it("is polled from a second gateway, and is invisible to another identity", async () => {
    const [first, second] = [await gateway(), await gateway()];
    const alice = await client(first.url, "alice-token");
    const sleepTool = "plain__sleep";
    const task = await startTask(alice, sleepTool, { ms: 1000 });

    const aliceElsewhere = await client(second.url, "alice-token");
    expect((await status(aliceElsewhere, task.taskId)).taskId).toBe(task.taskId);
    const result = await aliceElsewhere.result("tasks/result", { taskId: task.taskId });
    expect(result.content).toEqual([{ type: "text", text: "slept 1000" }]);

    const bob = await client(second.url, "bob-token");
    for (const method of ["tasks/get", "tasks/result", "tasks/cancel"]) {
      const refused = await bob.request(method, { taskId: task.taskId });
      expect(refused.error?.code, method).toBe(-32602);
    }
    expect(((await bob.result("tasks/list")).tasks as Task[]).map((t) => t.taskId)).not.toContain(task.taskId);
  }, 60_000);

  it("cancels a running task: status cancelled, tasks/result an error, a second cancel refused", async () => {
    const gw = await gateway();
    const mcp = await client(gw.url, "alice-token");
    const sleepTool = "plain__sleep";
    const task = await startTask(mcp, sleepTool, { ms: 60_000 });
    const cancelled = await mcp.result("tasks/cancel", { taskId: task.taskId });
    expect(cancelled).toMatchObject({ taskId: task.taskId, status: "cancelled" });
    expect(await status(mcp, task.taskId)).toMatchObject({ status: "cancelled" });
    expect((await mcp.request("tasks/result", { taskId: task.taskId })).error).toBeDefined();
    expect((await mcp.request("tasks/cancel", { taskId: task.taskId })).error?.code).toBe(-32602);
  }, 60_000);
});

describe("a gateway killed with tasks in flight", () => {
  /**
   * Starts a 3 s task on a gateway, kills that gateway, and polls the task from a new one until it
   * ends; says how long after the dead gateway's lease lapsed the end was seen.
   */
  async function killedMidTask(tool: string): Promise<{ task: Task; done: Task; restarted: Child; again: RawMcpClient; endedAfterLeaseMs: number }> {
    const nc = await connect({ servers: nats.url });
    try {
      const doomed = await gateway();
      // A durable call is killed once it is queued (a direct one has no queue to wait for).
      const queued = tool.startsWith("queued__") ? firstMessage(nc, "dmcp.v1.work.queued.>") : Promise.resolve();
      await nc.flush();
      const task = await startTask(await client(doomed.url, "alice-token"), tool, { ms: 3000 });
      await queued;
      doomed.kill("SIGKILL");
      await doomed.exited;
      const entry = await (await new Kvm(nc).open("dmcp_tasks")).get(task.taskId);
      const leaseLapses = Date.parse((entry!.json() as { runner: { leaseUntil: string } }).runner.leaseUntil);
      const restarted = await gateway();
      const again = await client(restarted.url, "alice-token");
      const done = await eventually(
        async () => {
          const current = await status(again, task.taskId);
          return current.status === "working" ? undefined : current;
        },
        60_000,
        500,
      );
      return { task, done, restarted, again, endedAfterLeaseMs: Date.now() - leaseLapses };
    } finally {
      await nc.close();
    }
  }

  function firstMessage(nc: NatsConnection, subject: string): Promise<void> {
    return new Promise((resolve) => nc.subscribe(subject, { max: 1, callback: () => resolve() }));
  }

  it("a durable service's task completes once adopted, with the answer its call stored; another gateway (or the restarted one) returns the result", async () => {
    const { task, done, restarted, again, endedAfterLeaseMs } = await killedMidTask("queued__sleep");
    expect(done.status).toBe("completed");
    // The call was queued before the kill and answered 3 s into the task, before the lease lapsed: the
    // adopting gateway reads that answer at once (the bound leaves slack for a noisy machine; waiting
    // for the result store's periodic sweep took 5-10 s more).
    expect(endedAfterLeaseMs).toBeLessThan(4_000);
    const result = await again.result("tasks/result", { taskId: task.taskId });
    expect(result.content).toEqual([{ type: "text", text: "slept 3000" }]);
    expect(restarted.stderr.some((line) => line.includes("adopting a task whose gateway stopped"))).toBe(true);
  }, 90_000);

  it("a direct service's task is reported failed: the call is not resumed", async () => {
    const { done } = await killedMidTask("plain__sleep");
    expect(done.status).toBe("failed");
    expect(done.statusMessage).toMatch(/not resumed/);
  }, 90_000);
});

describe("the 2026-07-28 tasks extension", () => {
  const meta = (extensions: Record<string, unknown>) => ({
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": { name: "t", version: "1" },
    "io.modelcontextprotocol/clientCapabilities": { extensions },
  });

  it("advertises the extension, makes a task of a slow call, answers a fast one directly, gates tasks/get", async () => {
    const mcp = new RawMcpClient(gatewayTransport("stdio", { natsUrl: nats.url }));
    await mcp.transport.start();
    clients.push(mcp);
    const discovered = await mcp.result("server/discover", { _meta: meta({}) });
    expect((discovered.capabilities as { extensions?: Record<string, unknown> }).extensions).toHaveProperty([EXTENSION]);
    const with_ = meta({ [EXTENSION]: {} });
    const sleepTool = "plain__sleep";

    const fast = await mcp.result("tools/call", { name: sleepTool, arguments: { ms: 0 }, _meta: with_ });
    expect(fast).toMatchObject({ resultType: "complete", content: [{ type: "text", text: "slept 0" }] });

    const created = await mcp.result("tools/call", { name: sleepTool, arguments: { ms: 1500 }, _meta: with_ });
    expect(created).toMatchObject({ resultType: "task", status: "working" });
    expect(Number.isInteger(created.ttlMs)).toBe(true);
    expect(created).not.toHaveProperty("ttl");
    const done = await eventually(
      async () => {
        const current = await mcp.result("tasks/get", { taskId: created.taskId, _meta: with_ });
        return current.status === "completed" ? current : undefined;
      },
      30_000,
      200,
    );
    expect(done.result).toMatchObject({ content: [{ type: "text", text: "slept 1500" }] });

    const gated = await mcp.request("tasks/get", { taskId: created.taskId, _meta: meta({}) });
    expect(gated.error?.code).toBe(-32021);
    expect((await mcp.request("tasks/list", { _meta: with_ })).error?.code).toBe(-32601);
    const withoutExtension = await mcp.result("tools/call", { name: sleepTool, arguments: { ms: 1000 }, _meta: meta({}) });
    expect(withoutExtension).toMatchObject({ resultType: "complete", content: [{ type: "text", text: "slept 1000" }] });
  }, 60_000);
});

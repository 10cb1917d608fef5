/**
 * MCP Tasks of upstreams that keep their own (the `io.modelcontextprotocol/tasks` extension), passed
 * through by the gateway: real nats-server, `dmcp gateway` processes, a `dmcp wrap` executor of the
 * conformance fixture over HTTP (which declares the extension to 2026-07-28 requests) and one of the raw
 * fixture over stdio (which knows nothing of tasks, so the gateway runs those itself). Raw HTTP
 * 2026-07-28 requests on the client side, each authenticated by a static token.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually, REPO_ROOT, spawnNode, startGatewayHttp, wrapFixtureStdio, wrapUrl, type Child } from "../support/processes.js";
import { statelessPost } from "../support/stateless-client.js";

const FIXTURE = `${REPO_ROOT}dist/test/support/fixtures/conformance-server.js`;
const EXTENSION = "io.modelcontextprotocol/tasks";
const WITH_TASKS = { "io.modelcontextprotocol/clientCapabilities": { elicitation: { form: {} }, extensions: { [EXTENSION]: {} } } };
const FORBIDDEN = -32019;
const INVALID_PARAMS = -32602;

describe("tasks of upstreams that keep their own", () => {
  let nats: EmbeddedNats;
  let dir: string;
  let fixture: Child & { url: string };
  const children: Child[] = [];
  let remote: Child;
  /** Two replicas: tasks created through the first are polled through the second. */
  let first: Child & { url: string };
  let second: Child & { url: string };

  const post = (url: string, token: string, method: string, params: Record<string, unknown> = {}) =>
    statelessPost(url, method, params, { headers: { authorization: `Bearer ${token}` }, meta: WITH_TASKS });
  const result = async (url: string, token: string, method: string, params: Record<string, unknown> = {}) => {
    const { body } = await post(url, token, method, params);
    if (!body.result) throw new Error(`${method}: ${JSON.stringify(body.error)}`);
    return body.result as Record<string, any>;
  };
  const settled = (url: string, token: string, taskId: string, status: string) =>
    eventually(
      async () => {
        const task = await result(url, token, "tasks/get", { taskId });
        return task.status === status ? task : undefined;
      },
      20_000,
      100,
    );

  beforeAll(async () => {
    nats = await startTestNats();
    dir = mkdtempSync(join(tmpdir(), "dmcp-upstream-tasks-"));
    writeFileSync(join(dir, "tokens"), "alice:alice-token\nbob:bob-token\ncarol:carol-token\n");
    // carol may use the fixture's tools but not slow_compute: her tasks of it are refused at every method.
    writeFileSync(join(dir, "policy.json"), JSON.stringify({ default: "allow", rules: [{ match: { subjects: ["carol"] }, deny: { tools: ["remote/slow_compute"] } }] }));
    fixture = spawnNode([FIXTURE, "--http", "0"]) as Child & { url: string };
    children.push(fixture);
    const [, port] = await fixture.waitFor(/LISTENING (\d+)/);
    fixture.url = `http://127.0.0.1:${port}/mcp`;
    remote = await wrapUrl(nats.url, "remote", fixture.url);
    children.push(remote);
    children.push(await wrapFixtureStdio(nats.url, "plain"));
    const auth = ["--auth-tokens", join(dir, "tokens")];
    first = await startGatewayHttp(nats.url, auth);
    second = await startGatewayHttp(nats.url, [...auth, "--policy", join(dir, "policy.json")]);
    children.push(first, second);
    for (const gateway of [first, second]) {
      await eventually(async () => {
        const tools: { name: string }[] = (await post(gateway.url, "alice-token", "tools/list")).body.result?.tools ?? [];
        return ["slow_compute", "sleep"].every((name) => tools.some((tool) => tool.name === name));
      }, 30_000);
    }
  }, 90_000);

  afterAll(async () => {
    await Promise.allSettled(children.map((child) => child.stop()));
    await nats?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("passes task creation up, under an id of the gateway's, and serves tasks/get from another replica", async () => {
    const created = await result(first.url, "alice-token", "tools/call", { name: "slow_compute", arguments: { seconds: 1, label: "pi" } });
    expect(created).toMatchObject({ resultType: "task", status: "working" });
    // The upstream does not know the id the client got: it was mapped.
    const upstream = await statelessPost(fixture.url, "tasks/get", { taskId: created.taskId }, { meta: WITH_TASKS, headers: { "mcp-name": created.taskId } });
    expect(upstream.body.error?.code).toBe(INVALID_PARAMS);
    const done = await settled(second.url, "alice-token", created.taskId, "completed");
    expect(done.taskId).toBe(created.taskId);
    expect(done.result).toMatchObject({ content: [{ type: "text", text: "Computed pi in 1s" }] });
  }, 30_000);

  it("reports the upstream's protocol error as a failed task with the error inlined", async () => {
    const created = await result(first.url, "alice-token", "tools/call", { name: "protocol_error_job", arguments: {} });
    expect(created.resultType).toBe("task");
    const failed = await settled(first.url, "alice-token", created.taskId, "failed");
    expect(failed.error).toMatchObject({ message: expect.stringContaining("The job crashed") });
    expect(failed).not.toHaveProperty("result");
  }, 30_000);

  it("relays input_required and tasks/update, and the MRTR round before a task", async () => {
    const created = await result(first.url, "alice-token", "tools/call", { name: "confirm_delete", arguments: { filename: "notes.txt" } });
    const asking = await settled(second.url, "alice-token", created.taskId, "input_required");
    expect(Object.keys(asking.inputRequests ?? {})).toEqual(["confirm"]);
    const updated = await result(second.url, "alice-token", "tasks/update", {
      taskId: created.taskId,
      inputResponses: { confirm: { action: "accept", content: { confirm: true } } },
    });
    expect(updated).toMatchObject({ resultType: "complete" });
    const done = await settled(first.url, "alice-token", created.taskId, "completed");
    expect(done.result).toMatchObject({ content: [{ type: "text", text: "Deleted notes.txt" }] });

    // Multi round-trip first (a plain input_required result), then the retried call becomes a task.
    const round1 = await result(first.url, "alice-token", "tools/call", { name: "test_tool_with_task", arguments: {} });
    expect(round1.resultType).toBe("input_required");
    const round2 = await result(first.url, "alice-token", "tools/call", {
      name: "test_tool_with_task",
      arguments: {},
      inputResponses: { user_name: { action: "accept", content: { name: "Ada" } } },
    });
    expect(round2.resultType).toBe("task");
    const greeted = await settled(second.url, "alice-token", round2.taskId, "completed");
    expect(greeted.result).toMatchObject({ content: [{ type: "text", text: "Hello, Ada! (from a task)" }] });
  }, 40_000);

  it("cancels the upstream's task", async () => {
    const created = await result(first.url, "alice-token", "tools/call", { name: "slow_compute", arguments: { seconds: 30 } });
    expect(await result(second.url, "alice-token", "tasks/cancel", { taskId: created.taskId })).toMatchObject({ resultType: "complete" });
    expect(await result(first.url, "alice-token", "tasks/get", { taskId: created.taskId })).toMatchObject({ status: "cancelled" });
  }, 30_000);

  it("refuses forged ids: another identity's task, the upstream's own id, and a tool the policy now denies", async () => {
    const created = await result(first.url, "alice-token", "tools/call", { name: "slow_compute", arguments: { seconds: 5 } });
    for (const method of ["tasks/get", "tasks/update", "tasks/cancel"]) {
      const refused = await post(second.url, "bob-token", method, { taskId: created.taskId, inputResponses: {} });
      expect(refused.body.error?.code, method).toBe(INVALID_PARAMS);
    }
    // A task the upstream knows by its own id (created there directly) is unknown to the gateway.
    const direct = await statelessPost(fixture.url, "tools/call", { name: "slow_compute", arguments: { seconds: 5 } }, { meta: WITH_TASKS });
    expect(direct.body.result?.resultType).toBe("task");
    const upstreamId = direct.body.result.taskId as string;
    const forged = await post(first.url, "alice-token", "tasks/get", { taskId: upstreamId });
    expect(forged.body.error?.code).toBe(INVALID_PARAMS);
    expect(forged.body.error?.message).toContain("Unknown task");

    // Policy is applied at every task method: carol's task of slow_compute, created where no policy
    // applies, is refused where one denies her that tool.
    const carols = await result(first.url, "carol-token", "tools/call", { name: "slow_compute", arguments: { seconds: 5 } });
    expect((await post(first.url, "carol-token", "tasks/get", { taskId: carols.taskId })).body.result?.status).toBe("working");
    const denied = await post(second.url, "carol-token", "tasks/get", { taskId: carols.taskId });
    expect(denied.body.error?.code).toBe(FORBIDDEN);
  }, 30_000);

  it("runs the task itself for an upstream without tasks: an upstream JSON-RPC error ends it failed, inlined", async () => {
    const created = await result(first.url, "alice-token", "tools/call", { name: "sleep", arguments: { ms: 800, error: "disk on fire" } });
    expect(created.resultType).toBe("task");
    const failed = await settled(second.url, "alice-token", created.taskId, "failed");
    expect(failed.error).toMatchObject({ code: -32603, message: expect.stringContaining("disk on fire") });
    expect(failed).not.toHaveProperty("result");
  }, 30_000);

  it("reaches an HTTP upstream's task through another replica once the instance that created it left", async () => {
    const created = await result(first.url, "alice-token", "tools/call", { name: "slow_compute", arguments: { seconds: 1, label: "e" } });
    const replica = await wrapUrl(nats.url, "remote", fixture.url);
    children.push(replica);
    await remote.stop();
    const done = await settled(second.url, "alice-token", created.taskId, "completed");
    expect(done.result).toMatchObject({ content: [{ type: "text", text: "Computed e in 1s" }] });
  }, 30_000);
});

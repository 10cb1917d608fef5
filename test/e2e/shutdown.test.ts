/** Graceful shutdown on SIGTERM, with calls in flight, for the gateway and for executors. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, JsonRpcErrorCode } from "../../src/protocol/index.js";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { gatewayTransport, RawMcpClient } from "../support/mcp-client.js";
import { eventually, startGatewayHttp, wrapFixtureStdio, type Child } from "../support/processes.js";

describe("graceful shutdown", () => {
  let nats: EmbeddedNats;
  let executor: Child;

  beforeAll(async () => {
    nats = await startTestNats();
    executor = await wrapFixtureStdio(nats.url, "steady");
  });

  afterAll(async () => {
    await executor?.stop();
    await nats?.stop();
  });

  async function connect(gateway: Child & { url: string }): Promise<RawMcpClient> {
    const client = await RawMcpClient.connect(gatewayTransport("http", { natsUrl: nats.url, httpUrl: gateway.url }));
    await eventually(async () => (await client.toolNames()).includes("sleep"));
    return client;
  }

  /** Sends a `sleep` call and resolves once the upstream runs it, with its answer still to come. */
  async function callUntilRunning(client: RawMcpClient, ms: number) {
    const since = executor.stderr.length;
    const inflight = client.request("tools/call", { name: "sleep", arguments: { ms } });
    await executor.waitFor(new RegExp(`sleep: running ${ms}\\b`), 10_000, since);
    // In an object: an async function returning the promise itself would wait for the answer.
    return { inflight };
  }

  it("lets the gateway finish calls in flight, refuse new ones, and exit 0", async () => {
    const gateway = await startGatewayHttp(nats.url);
    const client = await connect(gateway);
    const { inflight } = await callUntilRunning(client, 1500);
    const stderrBefore = gateway.stderr.length;
    gateway.kill("SIGTERM");
    await gateway.waitFor(/shutting down/, 5000, stderrBefore);
    const refused = await client.request("tools/call", { name: "echo", arguments: { text: "too late" } }, 5000).then(
      (response) => (response.error?.data as { dmcp_code?: string } | undefined)?.dmcp_code ?? "a result",
      () => "refused by the transport",
    );
    // Either the session answers SHUTTING_DOWN or the transport is already refusing: never a result.
    expect([ErrorCode.ShuttingDown, "refused by the transport"]).toContain(refused);
    const finished = await inflight;
    expect(finished.result).toMatchObject({ content: [{ text: "slept 1500" }] });
    expect(await gateway.exited).toBe(0);
    await client.close().catch(() => undefined);
  });

  it("answers calls that outlast the grace period with SHUTTING_DOWN, and still exits 0", async () => {
    const gateway = await startGatewayHttp(nats.url, ["--shutdown-grace", "300"]);
    const client = await connect(gateway);
    const { inflight } = await callUntilRunning(client, 5000);
    gateway.kill("SIGTERM");
    const response = await inflight;
    expect(response.error?.code).toBe(JsonRpcErrorCode.ShuttingDown);
    expect(await gateway.exited).toBe(0);
    await client.close().catch(() => undefined);
  });

  it("lets an executor finish the call it holds, leave the registry at once, and exit 0", async () => {
    const gateway = await startGatewayHttp(nats.url);
    const leaving = await wrapFixtureStdio(nats.url, "leaving");
    const client = await RawMcpClient.connect(gatewayTransport("http", { natsUrl: nats.url, httpUrl: gateway.url }));
    try {
      await eventually(async () => (await client.toolNames()).includes("leaving__sleep"));
      const running = leaving.stderr.length;
      const inflight = client.request("tools/call", { name: "leaving__sleep", arguments: { ms: 1500 } });
      await leaving.waitFor(/sleep: running 1500/, 10_000, running);
      leaving.kill("SIGTERM");
      await eventually(async () => !(await client.toolNames()).includes("leaving__sleep"), 5000, 50);
      expect((await inflight).result).toMatchObject({ content: [{ text: "slept 1500" }] });
      // It left in order (a "stopping" heartbeat and the registry key deleted), not by missing heartbeats.
      const metrics = await (await fetch(gateway.url.replace(/\/mcp$/, "/metrics"))).text();
      expect(metrics).not.toMatch(/dmcp_registry_heartbeats_missed_total\{service="leaving"\}/);
      expect(await leaving.exited).toBe(0);
    } finally {
      await client.close();
      await gateway.stop();
    }
  });
});

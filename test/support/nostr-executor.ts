/**
 * Test helper: a Nostr server (ContextVM or DVMCP, with the fixture tools of nostr-fixture-tools.ts)
 * on a real relay, wrapped by `dmcp wrap --nostr` with a fixed key, a gateway on HTTP and an MCP
 * client of it that sees the server's tools; and the cases every such executor must pass.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateSecretKey, getPublicKey } from "nostr-tools";
import { expect, it } from "vitest";
import { gatewayTransport, RawMcpClient } from "./mcp-client.js";
import type { FixtureToolEvents } from "./nostr-fixture-tools.js";
import { startTestNats, type EmbeddedNats } from "./nats.js";
import { startTestRelay, type TestRelay } from "./nostr-relay.js";
import { eventually, runDmcp, startGatewayHttp, type Child } from "./processes.js";

export interface NostrExecutorWorld<S> {
  nats: EmbeddedNats;
  relay: TestRelay;
  server: S;
  gateway: Child & { url: string };
  executor: Child;
  client: RawMcpClient;
  /** A temporary folder holding executor.key, the executor's secret key. */
  dir: string;
  executorPubkey: string;
  stop(): Promise<void>;
}

export async function startNostrExecutor<S extends { pubkey: string; stop(): Promise<void> }>(
  service: string,
  startServer: (relayUrl: string) => Promise<S>,
  extraWrapArgs: string[] = [],
): Promise<NostrExecutorWorld<S>> {
  const secret = generateSecretKey();
  const dir = mkdtempSync(join(tmpdir(), "dmcp-nostr-"));
  writeFileSync(join(dir, "executor.key"), `${Buffer.from(secret).toString("hex")}\n`);
  const [nats, relay] = await Promise.all([startTestNats(), startTestRelay()]);
  const server = await startServer(relay.url);
  const gateway = await startGatewayHttp(nats.url);
  const wrapArgs = ["--name", service, "--nats", nats.url, "--heartbeat", "500", "--nostr", server.pubkey, "--relay", relay.url, "--nostr-key", join(dir, "executor.key")];
  const executor = runDmcp(["wrap", ...wrapArgs, ...extraWrapArgs]);
  await executor.waitFor(/executor serving/);
  const client = await RawMcpClient.connect(gatewayTransport("http", { natsUrl: nats.url, httpUrl: gateway.url }));
  await eventually(async () => (await client.toolNames()).includes("echo"));
  return {
    nats,
    relay,
    server,
    gateway,
    executor,
    client,
    dir,
    executorPubkey: getPublicKey(secret),
    async stop() {
      await client.close();
      await gateway.stop();
      await executor.stop();
      await server.stop();
      await relay.stop();
      await nats.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function itPassesProgressErrorsAndCancellation(context: () => { client: RawMcpClient; server: FixtureToolEvents }, progressTitle = "passes progress"): void {
  it("puts the server's tools in the catalog", async () => {
    expect(await context().client.toolNames()).toEqual(expect.arrayContaining(["count", "echo", "fail", "wait"]));
  });

  it(progressTitle, async () => {
    const { client } = context();
    const since = client.notifications.length;
    const result = await client.result("tools/call", { name: "count", arguments: { n: 3 }, _meta: { progressToken: "count-3" } });
    expect(result.content).toEqual([{ type: "text", text: "counted to 3" }]);
    const progress = client.notifications.slice(since).filter((n) => n.method === "notifications/progress");
    expect(progress.map((n) => n.params)).toEqual([1, 2, 3].map((progress) => ({ progressToken: "count-3", progress, total: 3 })));
  });

  it("passes a tool's error", async () => {
    const result = await context().client.result("tools/call", { name: "fail", arguments: {} });
    expect(result).toMatchObject({ isError: true, content: [{ type: "text", text: "the fixture failed on purpose" }] });
  });

  it("passes a cancellation to the server", async () => {
    const { client, server } = context();
    const pending = client.request("tools/call", { name: "wait", arguments: {} });
    const id = client.lastRequestId;
    await server.waiting;
    await client.notify("notifications/cancelled", { requestId: id, reason: "user pressed stop" });
    expect(await server.cancelled).toBe("user pressed stop");
    // A cancelled request gets no answer (MCP): nothing to wait for.
    pending.catch(() => undefined);
  });
}

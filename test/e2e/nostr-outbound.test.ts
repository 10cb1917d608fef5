/**
 * `dmcp wrap --nostr`: a ContextVM server (the ContextVM SDK's own server transport, encryption
 * required) on a real relay becomes an executor; an MCP client of the gateway calls it through the bus.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EncryptionMode } from "@contextvm/sdk/core";
import { finalizeEvent, generateSecretKey, getPublicKey, nip44 } from "nostr-tools";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startContextVmServer, type ContextVmServer } from "../support/contextvm-server.js";
import { gatewayTransport, RawMcpClient } from "../support/mcp-client.js";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { startTestRelay, type TestRelay } from "../support/nostr-relay.js";
import { eventually, runDmcp, startGatewayHttp, type Child } from "../support/processes.js";

describe("dmcp wrap --nostr: a ContextVM server as an executor", () => {
  let nats: EmbeddedNats;
  let relay: TestRelay;
  let server: ContextVmServer;
  let executor: Child;
  let gateway: Child & { url: string };
  let client: RawMcpClient;
  let dir: string;
  const executorSecret = generateSecretKey();
  const executorPubkey = getPublicKey(executorSecret);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dmcp-nostr-"));
    writeFileSync(join(dir, "executor.key"), `${Buffer.from(executorSecret).toString("hex")}\n`);
    [nats, relay] = await Promise.all([startTestNats(), startTestRelay()]);
    server = await startContextVmServer(relay.url, { encryption: EncryptionMode.REQUIRED });
    gateway = await startGatewayHttp(nats.url);
    executor = runDmcp([
      "wrap",
      "--name",
      "cvm",
      "--nats",
      nats.url,
      "--heartbeat",
      "500",
      "--nostr",
      server.pubkey,
      "--relay",
      relay.url,
      "--nostr-key",
      join(dir, "executor.key"),
    ]);
    await executor.waitFor(/executor serving/);
    client = await RawMcpClient.connect(gatewayTransport("http", { natsUrl: nats.url, httpUrl: gateway.url }));
    await eventually(async () => (await client.toolNames()).includes("echo"));
  });

  afterAll(async () => {
    await client?.close();
    await gateway?.stop();
    await executor?.stop();
    await server?.stop();
    await relay?.stop();
    await nats?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("signs with the key of --nostr-key", async () => {
    const [, pubkey] = await executor.waitFor(/"pubkey":"([0-9a-f]{64})".*Nostr identity/);
    expect(pubkey).toBe(executorPubkey);
  });

  it("puts the server's tools in the catalog", async () => {
    expect(await client.toolNames()).toEqual(expect.arrayContaining(["count", "echo", "fail", "wait"]));
  });

  it("passes a call and its answer (gift-wrapped: the server requires encryption)", async () => {
    const result = await client.result("tools/call", { name: "echo", arguments: { text: "over nostr" } });
    expect(result.content).toEqual([{ type: "text", text: "echo: over nostr" }]);
  });

  it("passes progress", async () => {
    const since = client.notifications.length;
    const result = await client.result("tools/call", { name: "count", arguments: { n: 3 }, _meta: { progressToken: "count-3" } });
    expect(result.content).toEqual([{ type: "text", text: "counted to 3" }]);
    const progress = client.notifications.slice(since).filter((n) => n.method === "notifications/progress");
    expect(progress.map((n) => n.params)).toEqual([1, 2, 3].map((progress) => ({ progressToken: "count-3", progress, total: 3 })));
  });

  it("passes a tool's error", async () => {
    const result = await client.result("tools/call", { name: "fail", arguments: {} });
    expect(result).toMatchObject({ isError: true, content: [{ type: "text", text: "the fixture failed on purpose" }] });
  });

  it("passes a cancellation to the server", async () => {
    const pending = client.request("tools/call", { name: "wait", arguments: {} });
    const id = client.lastRequestId;
    await server.waiting;
    await client.notify("notifications/cancelled", { requestId: id, reason: "user pressed stop" });
    expect(await server.cancelled).toBe("user pressed stop");
    // A cancelled request gets no answer (MCP): nothing to wait for.
    pending.catch(() => undefined);
  });

  describe("bad events addressed to the executor", () => {
    const stranger = generateSecretKey();
    const message = (content: string, kind = 25910, signer = stranger) =>
      finalizeEvent({ kind, created_at: Math.floor(Date.now() / 1000), tags: [["p", executorPubkey]], content }, signer);
    const wrap = (inner: object) => {
      const oneTime = generateSecretKey();
      const key = nip44.v2.utils.getConversationKey(oneTime, executorPubkey);
      return finalizeEvent(
        { kind: 1059, created_at: Math.floor(Date.now() / 1000), tags: [["p", executorPubkey]], content: nip44.v2.encrypt(JSON.stringify(inner), key) },
        oneTime,
      );
    };
    const answer = JSON.stringify({ jsonrpc: "2.0", id: 1, result: {} });

    it.each([
      ["a forged signature", () => ({ ...message(answer), content: JSON.stringify({ jsonrpc: "2.0", id: 2, result: {} }) }), /forged/],
      ["a stranger's message", () => message(answer), /not by the expected/],
      ["a wrong outer kind", () => message(answer, 4), /kind 4 is not a message kind/],
      ["a wrong inner kind", () => wrap(message(answer, 1)), /holds an event of kind 1/],
      ["malformed content", () => wrap(message("{not json", 25910, server.secretKey)), /content is not JSON/],
      ["content that is no JSON-RPC message", () => message("[1, 2]", 25910, server.secretKey), /not a JSON-RPC message/],
      ["an oversized event", () => message(JSON.stringify({ jsonrpc: "2.0", method: "x", params: { pad: "x".repeat(600_000) } })), /larger than/],
      ["a malformed event", () => ({ kind: 25910, id: "nope", tags: [["p", executorPubkey]] }), /not a well-formed event/],
    ])("drops %s with a log line", async (_name, event, reason) => {
      relay.pushToEverySubscription(event());
      const [line] = await executor.waitFor(new RegExp(`${reason.source}.*dropped a Nostr event|dropped a Nostr event.*${reason.source}`));
      expect(line).toContain("dropped a Nostr event");
    });

    it("drops a replayed event with a log line, and keeps serving", async () => {
      const event = wrap(message(JSON.stringify({ jsonrpc: "2.0", method: "notifications/message", params: { level: "info", data: "once" } }), 25910, server.secretKey));
      relay.pushToEverySubscription(event);
      relay.pushToEverySubscription(event);
      await executor.waitFor(/replayed/);
      const result = await client.result("tools/call", { name: "echo", arguments: { text: "still here" } });
      expect(result.content).toEqual([{ type: "text", text: "echo: still here" }]);
    });
  });

  // Last: its tools share names with those of `cvm`, so the gateway names both by service from then on.
  it("makes a ContextVM server of dmcp up's config an executor", async () => {
    writeFileSync(
      join(dir, "dmcp.config.json"),
      JSON.stringify({ gateway: { http: false }, servers: { "cvm-up": { nostr: server.pubkey, relays: [relay.url], nostrKey: "executor.key" } } }),
    );
    const up = runDmcp(["up", "--config", join(dir, "dmcp.config.json"), "--nats", nats.url]);
    try {
      await up.waitFor(/executor serving/);
      await eventually(async () => (await client.toolNames()).includes("cvm-up__echo"));
      const result = await client.result("tools/call", { name: "cvm-up__echo", arguments: { text: "through dmcp up" } });
      expect(result.content).toEqual([{ type: "text", text: "echo: through dmcp up" }]);
    } finally {
      await up.stop();
    }
  });
});

/**
 * `dmcp wrap --nostr`: a ContextVM server (the ContextVM SDK's own server transport, encryption
 * required) on a real relay becomes an executor; an MCP client of the gateway calls it through the bus.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { EncryptionMode } from "@contextvm/sdk/core";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { finalizeEvent, generateSecretKey, nip19, nip44 } from "nostr-tools";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startContextVmServer, type ContextVmServer } from "../support/contextvm-server.js";
import { itPassesProgressErrorsAndCancellation, type NostrExecutorWorld, startNostrExecutor } from "../support/nostr-executor.js";
import { type Child, DMCP_BIN, eventually, runDmcp } from "../support/processes.js";

describe("dmcp wrap --nostr: a ContextVM server as an executor", () => {
  let world: NostrExecutorWorld<ContextVmServer>;
  let executorPubkey: string;

  beforeAll(async () => {
    world = await startNostrExecutor("cvm", (relayUrl) => startContextVmServer(relayUrl, { encryption: EncryptionMode.REQUIRED }));
    executorPubkey = world.executorPubkey;
    // A deadline, not a timing assert: several processes start here, slowly on a loaded machine.
  }, 180_000);

  afterAll(async () => {
    await world?.stop();
  });

  it("signs with the key of --nostr-key", async () => {
    const [, pubkey] = await world.executor.waitFor(/"pubkey":"([0-9a-f]{64})".*Nostr identity/);
    expect(pubkey).toBe(executorPubkey);
  });

  it("passes a call and its answer (gift-wrapped: the server requires encryption)", async () => {
    const result = await world.client.result("tools/call", { name: "echo", arguments: { text: "over nostr" } });
    expect(result.content).toEqual([{ type: "text", text: "echo: over nostr" }]);
  });

  itPassesProgressErrorsAndCancellation(() => world);

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
      ["malformed content", () => wrap(message("{not json", 25910, world.server.secretKey)), /content is not JSON/],
      ["content that is no JSON-RPC message", () => message("[1, 2]", 25910, world.server.secretKey), /not a JSON-RPC message/],
      ["an oversized event", () => message(JSON.stringify({ jsonrpc: "2.0", method: "x", params: { pad: "x".repeat(600_000) } })), /larger than/],
      ["a malformed event", () => ({ kind: 25910, id: "nope", tags: [["p", executorPubkey]] }), /not a well-formed event/],
    ])("drops %s with a log line", async (_name, event, reason) => {
      world.relay.pushToEverySubscription(event());
      const [line] = await world.executor.waitFor(new RegExp(`${reason.source}.*dropped a Nostr event|dropped a Nostr event.*${reason.source}`));
      expect(line).toContain("dropped a Nostr event");
    });

    it("drops a replayed event with a log line, and keeps serving", async () => {
      const event = wrap(message(JSON.stringify({ jsonrpc: "2.0", method: "notifications/message", params: { level: "info", data: "once" } }), 25910, world.server.secretKey));
      world.relay.pushToEverySubscription(event);
      world.relay.pushToEverySubscription(event);
      await world.executor.waitFor(/replayed/);
      const result = await world.client.result("tools/call", { name: "echo", arguments: { text: "still here" } });
      expect(result.content).toEqual([{ type: "text", text: "echo: still here" }]);
    });
  });

  it("serves a Nostr-only server to Claude Desktop as docs/nostr.md shows: dmcp up --stdio with the config, and a dmcp wrap --nostr started by hand joins it", async () => {
    const dir = join(world.dir, "claude");
    mkdirSync(dir);
    writeFileSync(join(dir, "nostr.key"), Buffer.from(generateSecretKey()).toString("hex"));
    // The page's config, with this test's relay and server (as npub, as the page writes it).
    const config = join(dir, "dmcp.config.json");
    writeFileSync(config, JSON.stringify({ servers: { weather: { nostr: nip19.npubEncode(world.server.pubkey), relays: [world.relay.url], nostrKey: "nostr.key" } } }));
    // Claude Desktop's "mcpServers" entry: node main.js up --stdio --no-http --config FILE; its own bus and data directory.
    const env = { ...(process.env as Record<string, string>), XDG_STATE_HOME: join(dir, "state"), DMCP_NATS_URL: "" };
    const claude = new Client({ name: "claude-desktop", version: "1.0.0" });
    await claude.connect(new StdioClientTransport({ command: process.execPath, args: [DMCP_BIN, "up", "--stdio", "--no-http", "--config", config], env, stderr: "ignore" }));
    let byHand: Child | undefined;
    try {
      await eventually(async () => (await claude.listTools()).tools.some((tool) => tool.name === "echo"), 60_000);
      expect(await claude.callTool({ name: "echo", arguments: { text: "from claude" } })).toMatchObject({ content: [{ type: "text", text: "echo: from claude" }] });
      // No --nats: it finds the bus of that dmcp up through the data directory.
      byHand = runDmcp(["wrap", "--name", "weather2", "--nostr", world.server.pubkey, "--relay", world.relay.url], {
        env: { XDG_STATE_HOME: join(dir, "state"), DMCP_NATS_URL: "" },
      });
      await eventually(async () => (await claude.listTools()).tools.some((tool) => tool.name === "weather2__echo"), 60_000);
      expect(await claude.callTool({ name: "weather2__echo", arguments: { text: "by hand" } })).toMatchObject({ content: [{ type: "text", text: "echo: by hand" }] });
    } finally {
      await byHand?.stop();
      await claude.close();
    }
  });

  // Last: its tools share names with those of `cvm`, so the gateway names both by service from then on.
  it("makes a ContextVM server of dmcp up's config an executor", async () => {
    writeFileSync(
      join(world.dir, "dmcp.config.json"),
      JSON.stringify({ gateway: { http: false }, servers: { "cvm-up": { nostr: world.server.pubkey, relays: [world.relay.url], nostrKey: "executor.key" } } }),
    );
    const up = runDmcp(["up", "--config", join(world.dir, "dmcp.config.json"), "--nats", world.nats.url]);
    try {
      await up.waitFor(/executor serving/);
      await eventually(async () => (await world.client.toolNames()).includes("cvm-up__echo"));
      const result = await world.client.result("tools/call", { name: "cvm-up__echo", arguments: { text: "through dmcp up" } });
      expect(result.content).toEqual([{ type: "text", text: "echo: through dmcp up" }]);
    } finally {
      await up.stop();
    }
  });

  it("takes a server without announcements (a private one) for a ContextVM server with --nostr-dialect auto", async () => {
    const auto = runDmcp(["wrap", "--name", "cvm-auto", "--nats", world.nats.url, "--nostr", world.server.pubkey, "--relay", world.relay.url, "--nostr-dialect", "auto"]);
    try {
      const [line] = await auto.waitFor(/.*executor serving.*/);
      expect(line).toContain(`"upstream":"nostr: ${world.server.pubkey}`);
      await eventually(async () => (await world.client.toolNames()).includes("cvm-auto__echo"));
      const result = await world.client.result("tools/call", { name: "cvm-auto__echo", arguments: { text: "private" } });
      expect(result.content).toEqual([{ type: "text", text: "echo: private" }]);
    } finally {
      await auto.stop();
    }
  });
});

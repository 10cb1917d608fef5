/**
 * `dmcp gateway --nostr`: the bus's services served to Nostr clients. The ContextVM SDK's own client
 * calls a wrapped stdio server through the gateway; a plain Nostr subscription sees the catalog's
 * announcements follow services as they come and go; the access policy applies per public key;
 * bad events are dropped with a log line while the gateway keeps serving.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { CreateMessageRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { finalizeEvent, generateSecretKey, getPublicKey, nip44, type NostrEvent } from "nostr-tools";
import { Relay, useWebSocketImplementation } from "nostr-tools/relay";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import * as z from "zod";
import { Agent } from "../../src/agent/index.js";
import { connectBus, type Bus } from "../../src/bus/index.js";
import { silentLogger } from "../../src/util/logger.js";
import { contextVmClient } from "../support/contextvm-client.js";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { startTestRelay, type TestRelay } from "../support/nostr-relay.js";
import { eventually, REPO_ROOT, runDmcp, wrapFixtureStdio, type Child } from "../support/processes.js";

const CONFORMANCE_BIN = `${REPO_ROOT}dist/test/support/fixtures/conformance-server.js`;

useWebSocketImplementation(WebSocket);

/** The newest event of `kind` by `author` on the relay, asked as any Nostr client would. */
async function latest(relayUrl: string, author: string, kind: number): Promise<NostrEvent | undefined> {
  const relay = await Relay.connect(relayUrl);
  try {
    const events: NostrEvent[] = [];
    await new Promise<void>((resolve) => {
      const sub = relay.subscribe([{ kinds: [kind], authors: [author] }], {
        onevent: (event) => events.push(event),
        oneose: () => {
          sub.close();
          resolve();
        },
      });
    });
    return events.sort((a, b) => b.created_at - a.created_at)[0];
  } finally {
    relay.close();
  }
}

const toolNamesIn = (event: NostrEvent | undefined) => ((JSON.parse(event?.content ?? "{}") as { tools?: { name: string }[] }).tools ?? []).map((tool) => tool.name);

describe("dmcp gateway --nostr: the bus served to Nostr clients", () => {
  let nats: EmbeddedNats;
  let relay: TestRelay;
  let executor: Child;
  let asking: Child;
  let gateway: Child;
  let client: Client;
  let dir: string;
  const gatewaySecret = generateSecretKey();
  const gatewayPubkey = getPublicKey(gatewaySecret);
  const blocked = generateSecretKey();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dmcp-nostr-gw-"));
    writeFileSync(join(dir, "gateway.key"), Buffer.from(gatewaySecret).toString("hex"));
    writeFileSync(
      join(dir, "policy.json"),
      JSON.stringify({
        default: "allow",
        rules: [
          { match: { kinds: ["nostr"], subjects: [getPublicKey(blocked)] }, deny: { tools: ["*"] } },
          // No Nostr client may crash the fixture: the tool is not announced.
          { match: { kinds: ["nostr"] }, deny: { tools: ["crash"] } },
        ],
      }),
    );
    [nats, relay] = await Promise.all([startTestNats(), startTestRelay()]);
    // An upstream whose tools ask the client (sampling, elicitation, roots), next to the fixture.
    asking = runDmcp(["wrap", "--name", "asking", "--nats", nats.url, "--", process.execPath, CONFORMANCE_BIN, "--stdio"]);
    [executor] = await Promise.all([wrapFixtureStdio(nats.url, "fixture"), asking.waitFor(/executor serving/)]);
    gateway = runDmcp(["gateway", "--nats", nats.url, "--nostr", "--relay", relay.url, "--nostr-key", join(dir, "gateway.key"), "--policy", join(dir, "policy.json")]);
    // The gateway subscribes before it says so: a request sent earlier would be lost.
    await gateway.waitFor(/serving MCP on Nostr/);
    client = await contextVmClient(relay.url, gatewayPubkey);
    // A deadline, not a timing assert: four processes start here, slowly on a loaded machine.
  }, 180_000);

  afterAll(async () => {
    await client?.close();
    await gateway?.stop();
    await executor?.stop();
    await asking?.stop();
    await relay?.stop();
    await nats?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("answers a ContextVM client's call from a wrapped stdio server", async () => {
    const tools = await client.listTools();
    expect(tools.tools.map((tool) => tool.name)).toContain("echo");
    const result = await client.callTool({ name: "echo", arguments: { text: "from nostr" } });
    expect(result.content).toMatchObject([{ type: "text", text: expect.stringContaining("from nostr") }]);
  });

  it("passes a call's progress to the client that made it", async () => {
    const progress: number[] = [];
    const result = await client.callTool({ name: "progress", arguments: { steps: 3 } }, undefined, { onprogress: (p) => progress.push(p.progress) });
    expect(progress).toEqual([1, 2, 3]);
    expect(result.isError).toBeFalsy();
  });

  it("announces the server and its catalog (kinds 11316 and 11317) to a plain Nostr subscription", async () => {
    const server = await eventually(() => latest(relay.url, gatewayPubkey, 11316));
    expect(JSON.parse(server.content)).toMatchObject({ serverInfo: expect.objectContaining({ name: expect.any(String) }) });
    expect(server.tags).toContainEqual(["name", "dmcp-gateway"]);
    const tools = await eventually(async () => {
      const event = await latest(relay.url, gatewayPubkey, 11317);
      return toolNamesIn(event).includes("echo") ? event : undefined;
    });
    expect(toolNamesIn(tools)).toContain("echo");
    const lists = await Promise.all([11318, 11319, 11320].map((kind) => eventually(() => latest(relay.url, gatewayPubkey, kind))));
    expect(lists.map((event) => Object.keys(JSON.parse(event.content)))).toEqual([["resources"], ["resourceTemplates"], ["prompts"]]);
  });

  it("announces the DVMCP kinds too: the server (31316) and its lists (31317-31319), addressable by their d tags", async () => {
    const server = await eventually(() => latest(relay.url, gatewayPubkey, 31316));
    expect(server.tags).toEqual(
      expect.arrayContaining([
        ["d", "dmcp-gateway"],
        ["k", "25910"],
        ["name", "dmcp-gateway"],
      ]),
    );
    expect(JSON.parse(server.content)).toMatchObject({ serverInfo: expect.objectContaining({ name: expect.any(String) }) });
    const tools = await eventually(async () => {
      const event = await latest(relay.url, gatewayPubkey, 31317);
      return toolNamesIn(event).includes("echo") ? event : undefined;
    });
    expect(tools.tags).toEqual(
      expect.arrayContaining([
        ["d", "dmcp-gateway/tools/list"],
        ["s", "dmcp-gateway"],
        ["cap", "echo"],
      ]),
    );
    const lists = await Promise.all([31318, 31319].map((kind) => eventually(() => latest(relay.url, gatewayPubkey, kind))));
    expect(lists.map((event) => event.tags.find((tag) => tag[0] === "d"))).toEqual([
      ["d", "dmcp-gateway/resources/list"],
      ["d", "dmcp-gateway/prompts/list"],
    ]);
    expect(lists.map((event) => Object.keys(JSON.parse(event.content)))).toEqual([["resources"], ["prompts"]]);
  });

  it("announces only what the access policy lets any Nostr client use", async () => {
    for (const kind of [11317, 31317]) {
      const event = await eventually(async () => {
        const latestTools = await latest(relay.url, gatewayPubkey, kind);
        return toolNamesIn(latestTools).includes("echo") ? latestTools : undefined;
      });
      expect(toolNamesIn(event)).not.toContain("crash");
      expect(event.tags).not.toContainEqual(["cap", "crash"]);
    }
    expect((await client.listTools()).tools.map((tool) => tool.name)).not.toContain("crash");
    await expect(client.callTool({ name: "crash", arguments: {} })).rejects.toThrow(/Forbidden: nostr ".*" may not use tool crash/);
  });

  it("announces the catalog again as services come and go", async () => {
    const bus: Bus = await connectBus({ servers: nats.url, name: "nostr-agent", logger: silentLogger() });
    const agent = new Agent({ bus, name: "latecomer", version: "1.0.0", logger: silentLogger() });
    agent.tool("late_tool", { description: "joins after the gateway started", input: z.object({}) }, () => "here");
    try {
      await agent.start();
      const joined = await eventually(async () => toolNamesIn(await latest(relay.url, gatewayPubkey, 11317)).includes("late_tool") || undefined, 20_000);
      expect(joined).toBe(true);
      await agent.stop();
      const left = await eventually(async () => !toolNamesIn(await latest(relay.url, gatewayPubkey, 11317)).includes("late_tool") || undefined, 30_000);
      expect(left).toBe(true);
    } finally {
      await agent.stop();
      await bus.drain();
    }
  });

  it("passes a client's cancellation to the call", async () => {
    const bus: Bus = await connectBus({ servers: nats.url, name: "nostr-patient", logger: silentLogger() });
    const agent = new Agent({ bus, name: "patient", version: "1.0.0", logger: silentLogger() });
    let markStarted!: () => void;
    const started = new Promise<void>((resolve) => (markStarted = resolve));
    let markAborted!: (reason: unknown) => void;
    const aborted = new Promise<unknown>((resolve) => (markAborted = resolve));
    agent.tool("wait_for_abort", { description: "waits until cancelled", input: z.object({}) }, (_args, ctx) => {
      markStarted();
      return new Promise((resolve) => {
        ctx.signal.addEventListener("abort", () => {
          markAborted(ctx.signal.reason);
          resolve("stopped");
        });
      });
    });
    try {
      await agent.start();
      await eventually(async () => (await client.listTools()).tools.some((tool) => tool.name === "wait_for_abort"));
      const controller = new AbortController();
      const call = client.callTool({ name: "wait_for_abort", arguments: {} }, undefined, { signal: controller.signal });
      await started;
      controller.abort("user pressed stop");
      await expect(call).rejects.toThrow();
      expect(String(await aborted)).toContain("user pressed stop");
    } finally {
      await agent.stop();
      await bus.drain();
    }
  });

  it("answers an upstream's request to a Nostr client (sampling) with a clear error: ContextVM clients take none", async () => {
    const asked: unknown[] = [];
    const sampler = await contextVmClient(relay.url, gatewayPubkey, generateSecretKey(), { sampling: {} });
    sampler.setRequestHandler(CreateMessageRequestSchema, (request) => {
      asked.push(request);
      return { role: "assistant", model: "test", content: { type: "text", text: "never asked" } };
    });
    try {
      await eventually(async () => (await sampler.listTools()).tools.some((tool) => tool.name === "test_sampling"));
      const result = await sampler.callTool({ name: "test_sampling", arguments: { prompt: "hello?" } });
      expect(result.isError).toBe(true);
      expect(JSON.stringify(result.content)).toContain("sampling/createMessage cannot reach a Nostr client");
      expect(asked).toEqual([]);
    } finally {
      await sampler.close();
    }
  });

  it("applies the access policy to the client's public key", async () => {
    const refused = await contextVmClient(relay.url, gatewayPubkey, blocked);
    try {
      expect((await refused.listTools()).tools).toEqual([]);
      await expect(refused.callTool({ name: "echo", arguments: { text: "let me in" } })).rejects.toThrow(`Forbidden: nostr "${getPublicKey(blocked)}" may not use tool echo`);
    } finally {
      await refused.close();
    }
  });

  describe("a DVMCP client (spec 2025-03-26)", () => {
    /** A request as DVMCP's spec writes one; resolves with the answer (kind 26910) and the notifications (21316) tied to it. */
    async function dvmcpCall(secret: Uint8Array, method: string, params: object, serverId?: string) {
      const relayConnection = await Relay.connect(relay.url);
      const request = finalizeEvent(
        {
          kind: 25910,
          created_at: Math.floor(Date.now() / 1000),
          tags: [["p", gatewayPubkey], ["method", method], ...(serverId ? [["s", serverId]] : [])],
          content: JSON.stringify({ method, params }),
        },
        secret,
      );
      const notifications: unknown[] = [];
      try {
        const answer = await new Promise<NostrEvent>((resolve) => {
          relayConnection.subscribe([{ kinds: [26910, 21316], authors: [gatewayPubkey], "#p": [getPublicKey(secret)] }], {
            onevent: (event) => {
              if (!event.tags.some((tag) => tag[0] === "e" && tag[1] === request.id)) return;
              if (event.kind === 21316) notifications.push(JSON.parse(event.content));
              else resolve(event);
            },
            oneose: () => void relayConnection.publish(request),
          });
        });
        return { answer, content: JSON.parse(answer.content) as Record<string, unknown>, notifications };
      } finally {
        relayConnection.close();
      }
    }

    it("answers a client that found it by its announcement and calls at once (no initialize)", async () => {
      const announcement = await eventually(() => latest(relay.url, gatewayPubkey, 31316));
      const serverId = announcement.tags.find((tag) => tag[0] === "d")?.[1];
      const secret = generateSecretKey();
      const { answer, content } = await dvmcpCall(secret, "tools/call", { name: "echo", arguments: { text: "from dvmcp" } }, serverId);
      expect(answer.tags).toContainEqual(["p", getPublicKey(secret)]);
      expect(content).toMatchObject({ content: [{ type: "text", text: expect.stringContaining("from dvmcp") }] });
    });

    it("answers initialize with the server's d tag, and sends a call's progress as notifications tied to it", async () => {
      const secret = generateSecretKey();
      const initialized = await dvmcpCall(secret, "initialize", { protocolVersion: "2025-03-26", capabilities: {}, clientInfo: { name: "dvmcp-test", version: "1" } });
      expect(initialized.answer.tags).toContainEqual(["d", "dmcp-gateway"]);
      expect(initialized.content).toMatchObject({ serverInfo: expect.objectContaining({ name: expect.any(String) }) });
      const call = await dvmcpCall(secret, "tools/call", { name: "progress", arguments: { steps: 3 }, _meta: { progressToken: "dv-1" } }, "dmcp-gateway");
      expect(call.content.isError).toBeFalsy();
      expect(call.notifications).toEqual([1, 2, 3].map((progress) => ({ method: "notifications/progress", params: expect.objectContaining({ progressToken: "dv-1", progress }) })));
    });

    it("applies the access policy to its key, and answers a refused call with { error }", async () => {
      const { content } = await dvmcpCall(blocked, "tools/call", { name: "echo", arguments: { text: "let me in" } }, "dmcp-gateway");
      expect(content).toEqual({ error: expect.objectContaining({ message: `Forbidden: nostr "${getPublicKey(blocked)}" may not use tool echo` }) });
    });
  });

  describe("bad events addressed to the gateway", () => {
    const stranger = generateSecretKey();
    const now = () => Math.floor(Date.now() / 1000);
    const request = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" });
    const message = (content: string, kind = 25910) => finalizeEvent({ kind, created_at: now(), tags: [["p", gatewayPubkey]], content }, stranger);
    const wrap = (inner: object) => {
      const oneTime = generateSecretKey();
      const key = nip44.v2.utils.getConversationKey(oneTime, gatewayPubkey);
      return finalizeEvent({ kind: 1059, created_at: now(), tags: [["p", gatewayPubkey]], content: nip44.v2.encrypt(JSON.stringify(inner), key) }, oneTime);
    };

    it.each([
      ["a forged signature", () => ({ ...message(request), content: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" }) }), /forged/],
      ["a wrong outer kind", () => message(request, 1), /kind 1 is not a message kind/],
      ["a wrong inner kind", () => wrap(message(request, 4)), /holds an event of kind 4/],
      [
        "a gift wrap that cannot be opened",
        () => finalizeEvent({ kind: 1059, created_at: now(), tags: [["p", gatewayPubkey]], content: "bm90IGVuY3J5cHRlZA==" }, stranger),
        /cannot be opened/,
      ],
      ["malformed content", () => message("{not json"), /content is not JSON/],
      ["an oversized event", () => message(JSON.stringify({ jsonrpc: "2.0", id: 3, method: "tools/list", params: { pad: "x".repeat(600_000) } })), /larger than/],
      ["a malformed event", () => ({ kind: 25910, tags: [["p", gatewayPubkey]], content: 5 }), /not a well-formed event/],
    ])("drops %s with a log line", async (_name, event, reason) => {
      relay.pushToEverySubscription(event());
      const [line] = await gateway.waitFor(new RegExp(`${reason.source}.*dropped a Nostr event|dropped a Nostr event.*${reason.source}`));
      expect(line).toContain("dropped a Nostr event");
    });

    it("drops a replayed request with a log line, and keeps serving", async () => {
      const event = wrap(message(JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" })));
      relay.pushToEverySubscription(event);
      relay.pushToEverySubscription(event);
      await gateway.waitFor(/replayed/);
      const result = await client.callTool({ name: "echo", arguments: { text: "still serving" } });
      expect(result.content).toMatchObject([{ type: "text", text: expect.stringContaining("still serving") }]);
    });
  });
});

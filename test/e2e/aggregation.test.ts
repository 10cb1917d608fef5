/**
 * Several services behind one gateway: the namespacing rule (a name offered by one service is exposed
 * unchanged, a colliding name once per service as `<service>__<name>`), services joining and leaving
 * (in order and by dying), replicas of one service sharing the load, and a restarted gateway reading
 * the registry. Real processes throughout: nats-server, `dmcp gateway`, `dmcp wrap`, MCP servers.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import type { EmbeddedNats } from "../support/nats.js";
import { RawMcpClient } from "../support/mcp-client.js";
import { eventually, REPO_ROOT, runDmcp, startGatewayHttp, wrapFixtureStdio, type Child } from "../support/processes.js";
import { startWorld, type World } from "../support/world.js";

const EVERYTHING_BIN = `${REPO_ROOT}node_modules/@modelcontextprotocol/server-everything/dist/index.js`;
/** The gateway's own tools (context topics), listed next to every service's. */
const GATEWAY_TOOLS = ["dmcp_context_history", "dmcp_publish_context"];
const FIXTURE_TOOLS = [
  ...[
    "add",
    "add_tool",
    "ask_client",
    "big",
    "cancelled",
    "client_answers",
    "client_notifications",
    "crash",
    "echo",
    "elicitation_complete",
    "fail",
    "log",
    "meta",
    "progress",
    "sleep",
    "whoami",
  ],
  ...GATEWAY_TOOLS,
].sort();

async function wrapEverything(natsUrl: string): Promise<Child> {
  const child = runDmcp(["wrap", "--name", "everything", "--nats", natsUrl, "--heartbeat", "500", "--", process.execPath, EVERYTHING_BIN, "stdio"]);
  await child.waitFor(/executor serving/);
  return child;
}

function connectHttp(url: string): Promise<RawMcpClient> {
  return RawMcpClient.connect(new StreamableHTTPClientTransport(new URL(url)));
}

function text(result: Record<string, unknown>): string {
  return (result.content as { type: string; text: string }[]).map((c) => c.text).join("");
}

describe("several services behind one gateway", () => {
  let world: World;
  let nats: EmbeddedNats;
  let alpha: Child;
  let everything: Child | undefined;
  let gateway: Child & { url: string };
  let client: RawMcpClient;
  const betas: Child[] = [];

  beforeAll(async () => {
    world = await startWorld({ services: { alpha: [] }, client: false });
    ({ nats, gateway } = world);
    alpha = world.executors.alpha!;
    client = await connectHttp(gateway.url);
  });

  afterAll(async () => {
    await client?.close().catch(() => undefined);
    await Promise.allSettled([everything?.stop(), ...betas.map((b) => b.stop())]);
    await world?.dispose();
  });

  it("exposes the tool names of a single service unchanged", async () => {
    const names = await eventually(async () => {
      const tools = await client.toolNames();
      return tools.includes("echo") ? tools : undefined;
    });
    expect(names).toEqual(FIXTURE_TOOLS);
  });

  it("qualifies colliding names per service when a second service joins, and routes each to its owner", async () => {
    const since = client.notifications.length;
    everything = await wrapEverything(nats.url);
    await client.waitForNotification("notifications/tools/list_changed", 15_000, since);
    const names = await eventually(async () => {
      const tools = await client.toolNames();
      return tools.includes("everything__echo") ? tools : undefined;
    });

    expect(names).toEqual(expect.arrayContaining(["alpha__echo", "everything__echo", "add", "get-sum", "whoami"]));
    expect(names).not.toContain("echo");
    expect(names).not.toContain("alpha__add"); // the qualified form is accepted, but only listed on collision
    expect(names.filter((n) => n.endsWith("__echo"))).toHaveLength(2);

    const fromAlpha = await client.result("tools/call", { name: "alpha__echo", arguments: { text: "to alpha" } });
    expect(fromAlpha).toEqual({
      content: [{ type: "text", text: "to alpha" }],
      "x-unknown-result-field": { nested: [1, 2, 3] },
      _meta: { "fixture/echo": true },
    });
    const fromEverything = await client.result("tools/call", { name: "everything__echo", arguments: { message: "to everything" } });
    expect(text(fromEverything)).toBe("Echo: to everything");

    const plain = await client.request("tools/call", { name: "echo", arguments: { text: "ambiguous" } });
    expect(plain.error?.code).toBe(-32602);

    const qualifiedAdd = await client.result("tools/call", { name: "alpha__add", arguments: { a: 20, b: 22 } });
    expect(qualifiedAdd.structuredContent).toEqual({ sum: 42 });
    const sum = await client.result("tools/call", { name: "get-sum", arguments: { a: 1, b: 2 } });
    expect(text(sum)).toContain("3");
    const who = await client.result("tools/call", { name: "whoami", arguments: {} });
    expect(text(who)).toMatch(/^alpha:\d+$/);
  });

  it("lists the prompts and resources of both services", async () => {
    const { prompts } = (await client.result("prompts/list")) as { prompts: { name: string }[] };
    const promptNames = prompts.map((p) => p.name);
    expect(promptNames).toContain("greet");
    expect(promptNames).toContain("simple-prompt");
    const greeting = (await client.result("prompts/get", { name: "greet", arguments: { who: "Ada" } })) as {
      messages: { content: { text: string } }[];
    };
    expect(greeting.messages[0]!.content.text).toBe("Hello, Ada, from alpha");

    const { resources } = (await client.result("resources/list")) as { resources: { uri: string }[] };
    const uris = resources.map((r) => r.uri);
    expect(uris).toEqual(expect.arrayContaining(["fixture://alpha/static", "fixture://shared/readme"]));
    expect(uris.some((uri) => !uri.startsWith("fixture://"))).toBe(true);

    const { resourceTemplates } = (await client.result("resources/templates/list")) as { resourceTemplates: { uriTemplate: string }[] };
    const templates = resourceTemplates.map((t) => t.uriTemplate);
    expect(templates).toContain("fixture://alpha/items/{id}");
    expect(templates.some((t) => !t.startsWith("fixture://"))).toBe(true);
  });

  it("lists every service right away in a restarted gateway (read from the registry)", async () => {
    await client.close();
    expect(await gateway.stop()).toBe(0);
    gateway = await startGatewayHttp(nats.url);
    client = await connectHttp(gateway.url);
    // The first list after connecting, no waiting loop: the registry holds the announcements.
    const names = await client.toolNames();
    expect(names).toEqual(expect.arrayContaining(["alpha__echo", "everything__echo", "add", "get-sum"]));
    expect(names).not.toContain("echo");
    const result = await client.result("tools/call", { name: "everything__echo", arguments: { message: "after restart" } });
    expect(text(result)).toBe("Echo: after restart");
  });

  it("drops a service stopped with SIGTERM at once and exposes the former collision plainly again", async () => {
    const since = client.notifications.length;
    expect(await everything!.stop()).toBe(0);
    everything = undefined;
    await client.waitForNotification("notifications/tools/list_changed", 10_000, since);
    const names = await eventually(async () => {
      const tools = await client.toolNames();
      return tools.includes("echo") ? tools : undefined;
    }, 10_000);
    expect(names).toEqual(FIXTURE_TOOLS);
    const result = await client.result("tools/call", { name: "echo", arguments: { text: "plain again" } });
    expect(text(result)).toBe("plain again");
  });

  it("drops a service killed with SIGKILL once it misses its heartbeats", async () => {
    const since = client.notifications.length;
    alpha.kill("SIGKILL");
    await alpha.exited;
    await client.waitForNotification("notifications/tools/list_changed", 10_000, since);
    // Only the gateway's own tools are left.
    expect(await client.toolNames()).toEqual(GATEWAY_TOOLS);
  });

  it("shares the load of one service among its replicas (calls outside upstream sessions: a client session's calls stay on one replica)", async () => {
    betas.push(...(await Promise.all([0, 1].map(() => wrapFixtureStdio(nats.url, "beta", ["--max-sessions", "0"])))));
    await eventually(async () => (await client.toolNames()).includes("whoami"));
    const answers: string[] = [];
    for (let batch = 0; batch < 5; batch++) {
      const results = await Promise.all(Array.from({ length: 8 }, () => client.result("tools/call", { name: "whoami", arguments: {} })));
      answers.push(...results.map(text));
    }
    expect(answers).toHaveLength(40);
    for (const answer of answers) expect(answer).toMatch(/^beta:\d+$/);
    expect(new Set(answers).size).toBe(2);
  }, 120_000);
});

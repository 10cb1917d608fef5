/**
 * Per-client upstream sessions through gateway + NATS + `dmcp wrap`: server-to-client requests
 * (sampling, elicitation, roots) reach the client that made the call and its answer the upstream; log
 * messages and resource updates reach that client only; a session stays pinned to one executor
 * replica, and loses it with a clear SESSION_LOST error when that replica dies.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio";
import { ErrorCode, JsonRpcErrorCode } from "../../src/protocol/index.js";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { gatewayTransport, RawMcpClient } from "../support/mcp-client.js";
import { DMCP_BIN, eventually, isAlive, REPO_ROOT, runDmcp, spawnNode, startGatewayHttp, wrapFixtureStdio, wrapUrl, type Child } from "../support/processes.js";

const CONFORMANCE_BIN = `${REPO_ROOT}dist/test/support/fixtures/conformance-server.js`;

type Notification = { method: string; params?: Record<string, unknown> };

/** An SDK client that answers sampling, elicitation and roots, and records its notifications. */
async function sdkClient(url: string, name: string) {
  const client = new Client({ name, version: "1.0.0" }, { capabilities: { sampling: {}, elicitation: { form: {} }, roots: { listChanged: true } } });
  const seen: Notification[] = [];
  client.setRequestHandler("sampling/createMessage", (request) => ({
    role: "assistant",
    content: { type: "text", text: `${name} read: ${JSON.stringify(request.params.messages[0]?.content)}` },
    model: "test-model",
  }));
  client.setRequestHandler("elicitation/create", () => ({ action: "accept", content: { username: `${name}-user`, email: `${name}@example.com` } }));
  client.setRequestHandler("roots/list", () => ({ roots: [{ uri: `file:///work/${name}`, name }] }));
  client.setNotificationHandler("notifications/message", (n) => void seen.push(n));
  client.setNotificationHandler("notifications/resources/updated", (n) => void seen.push(n));
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  return { client, seen };
}

function textOf(result: unknown): string {
  return ((result as { content: { text?: string }[] }).content ?? []).map((c) => c.text ?? "").join("");
}

describe("client sessions through the bus (HTTP upstream)", () => {
  let nats: EmbeddedNats;
  let upstream: Child;
  let executors: Child[] = [];
  let gateway: Child & { url: string };

  beforeAll(async () => {
    nats = await startTestNats();
    upstream = spawnNode([CONFORMANCE_BIN, "--http", "0"]);
    const [, port] = await upstream.waitFor(/LISTENING (\d+)/);
    const url = `http://127.0.0.1:${port}/mcp`;
    executors = [await wrapUrl(nats.url, "conf", url), await wrapUrl(nats.url, "conf", url)];
    gateway = await startGatewayHttp(nats.url);
  });

  afterAll(async () => {
    await Promise.allSettled([gateway?.stop(), ...executors.map((e) => e.stop()), upstream?.stop()]);
    await nats?.stop();
  });

  async function connected(name: string) {
    const session = await sdkClient(gateway.url, name);
    await eventually(async () => (await session.client.listTools()).tools.some((t) => t.name === "test_sampling"));
    return session;
  }

  it("relays sampling to the client that made the call and its answer to the upstream", async () => {
    const { client } = await connected("alice");
    try {
      const result = await client.callTool({ name: "test_sampling", arguments: { prompt: "hello?" } });
      expect(textOf(result)).toContain("alice read:");
      expect(textOf(result)).toContain("hello?");
    } finally {
      await client.close();
    }
  });

  it("relays form elicitation and roots/list", async () => {
    const { client } = await connected("bob");
    try {
      const elicited = await client.callTool({ name: "test_elicitation", arguments: { message: "who are you?" } });
      expect(textOf(elicited)).toContain("bob-user");
      const roots = await client.callTool({ name: "test_input_required_result_list_roots", arguments: {} });
      expect(textOf(roots)).toContain("file:///work/bob");
    } finally {
      await client.close();
    }
  });

  it("sends the upstream's log messages to the calling client only", async () => {
    const [a, b] = await Promise.all([connected("carol"), connected("dave")]);
    try {
      await a.client.setLoggingLevel("debug");
      await a.client.callTool({ name: "test_tool_with_logging", arguments: {} });
      expect(a.seen.filter((n) => n.method === "notifications/message").length).toBeGreaterThanOrEqual(3);
      // b made no call: whatever it sees by the time a second call of a's ends, it saw no log message.
      await a.client.callTool({ name: "test_simple_text", arguments: {} });
      expect(b.seen.filter((n) => n.method === "notifications/message")).toEqual([]);
    } finally {
      await Promise.all([a.client.close(), b.client.close()]);
    }
  });

  it("subscribes to an upstream resource for one client and tells only that client of updates", async () => {
    const [a, b] = await Promise.all([connected("erin"), connected("frank")]);
    try {
      const resources = (await a.client.listResources()).resources;
      const watched = resources.find((r) => r.name === "watched-resource")!;
      expect(watched).toBeDefined();
      await a.client.subscribeResource({ uri: watched.uri });
      await eventually(() => a.seen.find((n) => n.method === "notifications/resources/updated"));
      expect(a.seen.find((n) => n.method === "notifications/resources/updated")?.params).toMatchObject({ uri: watched.uri });
      await a.client.unsubscribeResource({ uri: watched.uri });
      expect(b.seen.filter((n) => n.method === "notifications/resources/updated")).toEqual([]);
    } finally {
      await Promise.all([a.client.close(), b.client.close()]);
    }
  });
});

describe("session pinning across two executor replicas (stdio upstreams)", () => {
  let nats: EmbeddedNats;
  let replicas: Child[] = [];
  let gateway: Child & { url: string };

  beforeAll(async () => {
    nats = await startTestNats();
    replicas = [await wrapFixtureStdio(nats.url, "pinned"), await wrapFixtureStdio(nats.url, "pinned")];
    gateway = await startGatewayHttp(nats.url);
  });

  afterAll(async () => {
    await Promise.allSettled([gateway?.stop(), ...replicas.map((r) => r.stop())]);
    await nats?.stop();
  });

  async function connect(): Promise<RawMcpClient> {
    const client = await RawMcpClient.connect(gatewayTransport("http", { natsUrl: nats.url, httpUrl: gateway.url }));
    await eventually(async () => (await client.toolNames()).includes("whoami"));
    return client;
  }

  /** The pid of the upstream process serving this client session (the fixture answers `<name>:<pid>`). */
  async function upstreamPid(client: RawMcpClient): Promise<number> {
    const result = await client.result("tools/call", { name: "whoami", arguments: {} });
    return Number(textOf(result).split(":")[1]);
  }

  /** The replica whose child the upstream process is. */
  function replicaOf(pid: number): Child {
    const ppid = Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
    const replica = replicas.find((r) => r.process.pid === ppid);
    if (!replica) throw new Error(`upstream ${pid} belongs to no replica (parent ${ppid})`);
    return replica;
  }

  it("serves every call of a session in the same upstream session, and other sessions in their own", async () => {
    const [a, b] = await Promise.all([connect(), connect()]);
    try {
      const pidsA = new Set<number>();
      for (let i = 0; i < 6; i++) pidsA.add(await upstreamPid(a));
      expect(pidsA.size).toBe(1);
      const pidB = await upstreamPid(b);
      expect(pidsA.has(pidB)).toBe(false);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it("keeps progress in order and cancels in the session's own upstream", async () => {
    const client = await connect();
    try {
      const since = client.notifications.length;
      const response = await client.request("tools/call", { name: "progress", arguments: { steps: 4 }, _meta: { progressToken: "p" } });
      expect(response.result).toMatchObject({ content: [{ text: "done after 4 steps" }] });
      const steps = client.notifications
        .slice(since)
        .filter((n) => n.method === "notifications/progress")
        .map((n) => n.params?.progress);
      expect(steps).toEqual([1, 2, 3, 4]);
      const logged = replicas.map((r) => r.stderr.length);
      const pending = client.request("tools/call", { name: "sleep", arguments: { ms: 30_000 } }, 60_000);
      // As in cancellation.test.ts: let the call reach the upstream before cancelling it.
      await Promise.any(replicas.map((r, i) => r.waitFor(/sleep: running 30000/, 15_000, logged[i])));
      await client.notify("notifications/cancelled", { requestId: client.lastRequestId, reason: "stop" });
      void pending.catch(() => undefined);
      // The cancellation reached the very upstream process that ran the sleep: the one this session is pinned to.
      const cancellations = await eventually(async () => {
        const result = (await client.result("tools/call", { name: "cancelled", arguments: {} })) as { structuredContent: { cancellations: unknown[] } };
        return result.structuredContent.cancellations.length > 0 ? result.structuredContent.cancellations : undefined;
      });
      expect(cancellations.length).toBe(1);
    } finally {
      await client.close();
    }
  });

  it("answers SESSION_LOST, not a hang, when the replica holding the session is killed mid-call and after", async () => {
    const client = await connect();
    try {
      const replica = replicaOf(await upstreamPid(client));
      const pending = client.request("tools/call", { name: "sleep", arguments: { ms: 60_000 } }, 60_000);
      // Killed at once: the call fails whether or not its receipt came (the gateway knows the pinned replica).
      replica.kill("SIGKILL");
      const midCall = await pending;
      expect(midCall.error?.code).toBe(JsonRpcErrorCode.SessionLost);
      expect((midCall.error?.data as { dmcp_code?: string } | undefined)?.dmcp_code).toBe(ErrorCode.SessionLost);
      // The next call starts a new upstream session on the replica left.
      const next = await client.result("tools/call", { name: "echo", arguments: { text: "again" } });
      expect(textOf(next)).toBe("again");
    } finally {
      await client.close();
    }
  });
});

describe("session pinning under concurrency, three replicas at the default heartbeat", () => {
  let nats: EmbeddedNats;
  let replicas: Child[] = [];
  let gateway: Child & { url: string };
  const clients: Client[] = [];

  beforeAll(async () => {
    nats = await startTestNats();
    // The default heartbeat (2 s): a killed replica is evicted only after 6 s.
    replicas = await Promise.all([1, 2, 3].map(() => wrapFixtureStdio(nats.url, "trio", ["--heartbeat", "2000"])));
    gateway = await startGatewayHttp(nats.url);
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled(clients.map((client) => client.close()));
    await Promise.allSettled([gateway?.stop(), ...replicas.map((r) => r.stop())]);
    await nats?.stop();
  });

  /** An SDK client of the HTTP gateway, or of a `dmcp gateway --stdio` of its own, that sees the service. */
  async function sdkSession(kind: "http" | "stdio", name: string): Promise<Client> {
    const client = new Client({ name, version: "1.0.0" });
    clients.push(client);
    const transport =
      kind === "http"
        ? new StreamableHTTPClientTransport(new URL(gateway.url))
        : new StdioClientTransport({ command: process.execPath, args: [DMCP_BIN, "gateway", "--stdio", "--nats", nats.url, "--log-level", "warn"], stderr: "ignore" });
    await client.connect(transport);
    await eventually(async () => (await client.listTools()).tools.some((tool) => tool.name === "whoami"));
    return client;
  }

  /** The pid of the upstream process that answered (each upstream session is a process of its own). */
  async function upstreamPid(client: Client): Promise<number> {
    return Number(textOf(await client.callTool({ name: "whoami", arguments: {} })).split(":")[1]);
  }

  it("runs every call of a session in one upstream session when its first calls are sent all at once", async () => {
    const sessions = await Promise.all([...[1, 2, 3, 4].map((n) => sdkSession("http", `http-${n}`)), ...[1, 2].map((n) => sdkSession("stdio", `stdio-${n}`))]);
    // Every session's first calls to the service leave together, before any has answered.
    const pids = await Promise.all(sessions.map((client) => Promise.all(Array.from({ length: 8 }, () => upstreamPid(client)))));
    for (const [index, sessionPids] of pids.entries()) expect({ session: index, pids: [...new Set(sessionPids)] }).toEqual({ session: index, pids: [sessionPids[0]] });
  }, 90_000);

  it("fails a call in flight with SESSION_LOST within a second or so when its replica is killed, long before the heartbeats expire", async () => {
    const client = await sdkSession("http", "doomed-session");
    const pid = await upstreamPid(client);
    const ppid = Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
    const replica = replicas.find((r) => r.process.pid === ppid)!;
    const since = replica.stderr.length;
    const pending = client.callTool({ name: "sleep", arguments: { ms: 60_000 } }).then(
      () => undefined,
      (err: unknown) => err as { code?: number },
    );
    // The call has reached the upstream (its receipt is long sent) before the replica dies.
    await replica.waitFor(/sleep: running 60000/, 15_000, since);
    replica.kill("SIGKILL");
    const killedAt = Date.now();
    const error = await pending;
    // Heartbeat expiry would take 6 s; the machine is noisy, so the bound is loose.
    expect(Date.now() - killedAt).toBeLessThan(3_000);
    expect(error?.code).toBe(JsonRpcErrorCode.SessionLost);
    // The next call opens a new upstream session on a replica that is left.
    expect(await upstreamPid(client)).not.toBe(pid);
  }, 60_000);
});

describe("server-to-client requests with signatures required", () => {
  let nats: EmbeddedNats;
  let dir: string;
  let executor: Child;
  let gateway: Child & { url: string };

  /** `dmcp keygen`: writes the seed, prints the public key. */
  function keygen(name: string): string {
    return execFileSync(process.execPath, [DMCP_BIN, "keygen", "--out", join(dir, name)], { encoding: "utf8" }).trim();
  }

  beforeAll(async () => {
    nats = await startTestNats();
    dir = mkdtempSync(join(tmpdir(), "dmcp-session-keys-"));
    const gatewayPublic = keygen("gateway.seed");
    const executorPublic = keygen("conf.seed");
    executor = runDmcp([
      "wrap",
      "--name",
      "conf",
      "--nats",
      nats.url,
      "--heartbeat",
      "500",
      "--sign-key",
      join(dir, "conf.seed"),
      "--trust-key",
      gatewayPublic,
      "--require-signatures",
      "--",
      process.execPath,
      CONFORMANCE_BIN,
      "--stdio",
    ]);
    await executor.waitFor(/executor serving/);
    gateway = await startGatewayHttp(nats.url, ["--sign-key", join(dir, "gateway.seed"), "--trust-key", `conf=${executorPublic}`, "--require-signatures"]);
  });

  afterAll(async () => {
    await Promise.allSettled([gateway?.stop(), executor?.stop()]);
    await nats?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("relays sampling and elicitation as signed envelopes both ways", async () => {
    const { client } = await sdkClient(gateway.url, "grace");
    try {
      await eventually(async () => (await client.listTools()).tools.some((t) => t.name === "test_sampling"));
      const sampled = await client.callTool({ name: "test_sampling", arguments: { prompt: "signed?" } });
      expect(textOf(sampled)).toContain("grace read:");
      const elicited = await client.callTool({ name: "test_elicitation", arguments: { message: "who?" } });
      expect(textOf(elicited)).toContain("grace-user");
    } finally {
      await client.close();
    }
  });
});

describe("upstream session lifetimes (stdio upstream: a process per client session)", () => {
  let nats: EmbeddedNats;
  let executor: Child;
  let gateway: Child & { url: string };

  beforeAll(async () => {
    nats = await startTestNats();
    // Idle long enough that a loaded machine's pause between one test's calls does not end its
    // session (the roots test needs one session throughout), short enough for the idle test to see.
    executor = await wrapFixtureStdio(nats.url, "mortal", ["--session-idle", "5000"]);
    gateway = await startGatewayHttp(nats.url);
  });

  afterAll(async () => {
    await Promise.allSettled([gateway?.stop(), executor?.stop()]);
    await nats?.stop();
  });

  async function sessionPid(client: Client): Promise<number> {
    await eventually(async () => (await client.listTools()).tools.some((t) => t.name === "whoami"));
    return Number(textOf(await client.callTool({ name: "whoami", arguments: {} })).split(":")[1]);
  }

  it("passes the client's roots/list_changed to its upstream session, and the upstream's elicitation/complete to the client", async () => {
    const client = new Client({ name: "roots-changer", version: "1.0.0" }, { capabilities: { roots: { listChanged: true }, elicitation: { form: {}, url: {} } } });
    const completed: unknown[] = [];
    client.setRequestHandler("roots/list", () => ({ roots: [] }));
    client.setNotificationHandler("notifications/elicitation/complete", (n) => void completed.push(n.params));
    await client.connect(new StreamableHTTPClientTransport(new URL(gateway.url)));
    try {
      await sessionPid(client);
      await client.sendRootsListChanged();
      await eventually(async () => textOf(await client.callTool({ name: "client_notifications", arguments: {} })).includes("notifications/roots/list_changed"));
      expect(textOf(await client.callTool({ name: "elicitation_complete", arguments: { id: "e-42" } }))).toBe("completed e-42");
      await eventually(() => completed.length > 0);
      expect(completed).toEqual([{ elicitationId: "e-42" }]);
    } finally {
      await client.close();
    }
  });

  it("ends the upstream session when the client ends its session", async () => {
    const client = new Client({ name: "leaver", version: "1.0.0" });
    const transport = new StreamableHTTPClientTransport(new URL(gateway.url));
    await client.connect(transport);
    const pid = await sessionPid(client);
    expect(isAlive(pid)).toBe(true);
    await transport.terminateSession();
    await client.close();
    await eventually(() => !isAlive(pid));
  });

  it("ends an idle upstream session, and opens a new one on the next call", async () => {
    const client = new Client({ name: "idler", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(gateway.url)));
    try {
      const pid = await sessionPid(client);
      await eventually(() => !isAlive(pid));
      const next = await sessionPid(client);
      expect(next).not.toBe(pid);
    } finally {
      await client.close();
    }
  });
});

/**
 * The HTTP outbound adapter end to end (adapters/outbound/http/http.ts via `dmcp wrap --url`): headers on
 * every request to a server that demands them, the 401 a wrap gets without them, the fallback to the
 * legacy HTTP+SSE transport (server-everything in `sse` mode), and a URL that nobody listens on yet.
 * Every party is a real process: nats-server, `dmcp wrap`, `dmcp gateway --http`, the MCP servers.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { decodeEnvelope, ErrorCode, subjects } from "../../src/protocol/index.js";
import { startRawServerHttp } from "../support/fixtures/raw-server.js";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { gatewayTransport, RawMcpClient } from "../support/mcp-client.js";
import { eventually, FIXTURE_BIN, freePort, REPO_ROOT, runDmcp, spawnNode, startGatewayHttp, wrapUrl, type Child } from "../support/processes.js";

const EVERYTHING_BIN = `${REPO_ROOT}node_modules/@modelcontextprotocol/server-everything/dist/index.js`;
const AUTH = "Authorization: Bearer s3cret";

/** The fixture over HTTP in its own process, with extra CLI flags. */
async function startFixture(name: string, port: number, extra: string[] = []): Promise<Child & { url: string }> {
  const child = spawnNode([FIXTURE_BIN, "--http", String(port), "--name", name, ...extra]);
  const [, listening] = await child.waitFor(/LISTENING (\d+)/);
  return Object.assign(child, { url: `http://127.0.0.1:${listening}/mcp` });
}

interface Replica {
  instance: string;
  status: string;
}

/** `dmcp status --json`, parsed. */
async function status(natsUrl: string): Promise<{ services: Record<string, { replicas: Replica[]; tools: string[] }> }> {
  const child = runDmcp(["status", "--json", "--nats", natsUrl, "--wait", "1200"]);
  let out = "";
  child.process.stdout!.on("data", (chunk: Buffer) => (out += chunk.toString("utf8")));
  const code = await child.exited;
  expect(code, child.stderr.join("\n")).toBe(0);
  return JSON.parse(out);
}

async function replicaStatus(natsUrl: string, service: string): Promise<string | undefined> {
  return (await status(natsUrl)).services[service]?.replicas[0]?.status;
}

/** pino lines of a child's stderr, parsed (plain lines skipped). */
function logLines(child: Child): Record<string, any>[] {
  return child.stderr.flatMap((line) => {
    try {
      return [JSON.parse(line) as Record<string, any>];
    } catch {
      return [];
    }
  });
}

function textOf(result: Record<string, unknown>): string {
  return ((result.content as { type: string; text?: string }[]) ?? []).map((c) => c.text ?? "").join("");
}

describe("the fixture's --require-header option", () => {
  it("answers 401 with a JSON-RPC error unless the exact header value is sent", async () => {
    const server = await startRawServerHttp({ requireHeader: AUTH });
    try {
      const post = (headers: Record<string, string>) =>
        fetch(server.url, {
          method: "POST",
          headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers },
          body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }),
        });
      for (const headers of [{}, { authorization: "Bearer wrong" }] as Record<string, string>[]) {
        const denied = await post(headers);
        expect(denied.status).toBe(401);
        expect(await denied.json()).toMatchObject({ jsonrpc: "2.0", id: null, error: { code: expect.any(Number), message: expect.stringMatching(/Unauthorized/) } });
      }
      const get = await fetch(server.url, { headers: { accept: "text/event-stream" } });
      expect(get.status).toBe(401);
      await get.body?.cancel();
      // With the header the request gets past the check (and fails for its own reason: no session).
      const allowed = await post({ authorization: "Bearer s3cret" });
      expect(allowed.status).toBe(400);
      await allowed.body?.cancel();
    } finally {
      await server.close();
    }
  });
});

describe("dmcp wrap --url --header against a server that requires the header", () => {
  let nats: EmbeddedNats;
  let upstream: Child & { url: string };
  let withHeader: Child;
  let gateway: Child & { url: string };
  let client: RawMcpClient;
  const extra: Child[] = [];

  beforeAll(async () => {
    nats = await startTestNats();
    upstream = await startFixture("guarded", 0, ["--require-header", AUTH]);
    withHeader = await wrapUrl(nats.url, "guarded", upstream.url, ["--header", AUTH]);
    gateway = await startGatewayHttp(nats.url);
    client = await RawMcpClient.connect(gatewayTransport("http", { natsUrl: nats.url, httpUrl: gateway.url }));
    await eventually(async () => (await client.toolNames()).includes("echo"));
  });

  afterAll(async () => {
    await client?.close();
    await Promise.allSettled([gateway?.stop(), withHeader?.stop(), upstream?.stop(), ...extra.map((c) => c.stop())]);
    await nats?.stop();
  });

  it("sends the header on every request: calls, notifications and the GET stream all work", async () => {
    const result = await client.result("tools/call", { name: "echo", arguments: { text: "authorized" } });
    expect(result.content).toEqual([{ type: "text", text: "authorized" }]);
    const sum = await client.result("tools/call", { name: "add", arguments: { a: 40, b: 2 } });
    expect(sum.structuredContent).toEqual({ sum: 42 });

    // A list_changed notification from the upstream reaches the gateway's clients.
    const since = client.notifications.length;
    await client.result("tools/call", { name: "add_tool", arguments: { name: "added_with_auth" } });
    await client.waitForNotification("notifications/tools/list_changed", 15_000, since);
    await eventually(async () => (await client.toolNames()).includes("added_with_auth"));

    expect(await replicaStatus(nats.url, "guarded")).toBe("ready");
    // No request of the wrap was refused (a 401 on any of them would show as a transport error).
    expect(withHeader.stderr.join("\n")).not.toMatch(/"status":401|HTTP 401|Unauthorized/);
  });

  it("reads upstream credentials from the environment, a file or the config, and never shows them", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dmcp-upstream-secrets-"));
    const children: Child[] = [];
    try {
      writeFileSync(join(dir, "token"), "s3cret\n");
      const serving = async (child: Child) => {
        children.push(child);
        await child.waitFor(/executor serving/);
        return child;
      };
      const fromEnv = await serving(
        runDmcp(["wrap", "--name", "from-env", "--nats", nats.url, "--heartbeat", "500", "--url", upstream.url, "--bearer-token-env", "UPSTREAM_TOKEN"], {
          env: { UPSTREAM_TOKEN: "s3cret" },
        }),
      );
      const fromHeaderEnv = await serving(
        runDmcp(["wrap", "--name", "from-header-env", "--nats", nats.url, "--heartbeat", "500", "--url", upstream.url, "--header-env", "Authorization=UPSTREAM_AUTH"], {
          env: { UPSTREAM_AUTH: "Bearer s3cret" },
        }),
      );
      const fromFile = await serving(
        runDmcp(["wrap", "--name", "from-file", "--nats", nats.url, "--heartbeat", "500", "--url", upstream.url, "--bearer-token-file", join(dir, "token")]),
      );
      writeFileSync(join(dir, "dmcp.config.json"), JSON.stringify({ gateway: { http: false }, servers: { "from-config": { url: upstream.url, bearerToken: { file: "token" } } } }));
      const fromConfig = await serving(runDmcp(["up", "--config", join(dir, "dmcp.config.json"), "--nats", nats.url]));
      for (const service of ["from-env", "from-header-env", "from-file", "from-config"]) {
        await eventually(async () => (await client.toolNames()).includes(`${service}__echo`));
        expect(textOf(await client.result("tools/call", { name: `${service}__echo`, arguments: { text: service } }))).toBe(service);
      }
      const announced = JSON.stringify(await status(nats.url));
      expect(announced).not.toContain("s3cret");
      for (const child of [fromEnv, fromHeaderEnv, fromFile, fromConfig]) expect(child.stderr.join("\n")).not.toContain("s3cret");

      // A missing secret is a clear start-up error that names where it was looked for.
      const missing = runDmcp(["wrap", "--name", "missing", "--nats", nats.url, "--url", upstream.url, "--bearer-token-env", "NO_SUCH_TOKEN_VAR"]);
      expect(await missing.exited).toBe(2);
      expect(missing.stderr.join("\n")).toContain("NO_SUCH_TOKEN_VAR is not set");
    } finally {
      await Promise.allSettled(children.map((child) => child.stop()));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("without the header: the wrap fails at once naming the 401, and does not fall back to SSE", async () => {
    const refused = runDmcp(["wrap", "--name", "unauthorized", "--nats", nats.url, "--url", upstream.url]);
    expect(await refused.exited).toBe(1);
    expect(refused.stderr.filter((line) => !line.startsWith("{"))).toEqual([
      expect.stringMatching(/^dmcp wrap: could not start the upstream MCP server \(http: http:\/\/127\.0\.0\.1:\d+\/mcp\): HTTP 401: .*Unauthorized/),
    ]);
    expect(refused.stderr.join("\n")).not.toMatch(/falling back to legacy SSE/);
  });

  it("without the header, with --wait-for-upstream: the wrap starts degraded, logs the 401, keeps retrying and does not fall back to SSE", async () => {
    const denied = await wrapUrl(nats.url, "unauthorized", upstream.url, ["--wait-for-upstream"]);
    extra.push(denied);

    // The log says why: the HTTP status of the refused POST, and the server's own error text.
    const failure = logLines(denied).find((l) => l.msg === "could not start the upstream MCP server");
    expect(failure?.err?.message).toMatch(/Unauthorized/);
    expect(logLines(denied).some((l) => /"status":401|HTTP 401/.test(JSON.stringify(l.err ?? {})))).toBe(true);
    // 401 means "wrong credentials", not "legacy server": no SSE attempt.
    expect(denied.stderr.join("\n")).not.toMatch(/falling back to legacy SSE/);

    // It announces itself as degraded with an empty catalog, next to the healthy service.
    const { services } = await status(nats.url);
    expect(services.unauthorized?.replicas.map((r) => r.status)).toEqual(["degraded"]);
    expect(services.unauthorized?.tools).toEqual([]);
    expect(services.guarded?.replicas.map((r) => r.status)).toEqual(["ready"]);

    // Its tools never reach the gateway: the qualified name is unknown, the healthy service is unaffected.
    expect(await client.toolNames()).not.toContain("unauthorized__echo");
    const unknown = await client.request("tools/call", { name: "unauthorized__echo", arguments: { text: "x" } });
    expect(unknown.error?.code).toBe(-32602);
    expect(unknown.error?.message).toMatch(/unknown tool/i);
    expect(textOf(await client.result("tools/call", { name: "echo", arguments: { text: "still fine" } }))).toBe("still fine");

    // It keeps trying (with backoff) and stays alive.
    await eventually(() => logLines(denied).filter((l) => l.msg === "could not start the upstream MCP server").length >= 3, 10_000);
    expect(denied.process.exitCode).toBeNull();
  });

  // BUG: the caller gets "the upstream MCP server exited or closed before answering initialize (see its
  // log above)": the HTTP 401 is lost, "exited" is wrong for a remote server, and "its log" is not the
  // caller's to see. The supervisor keeps only the outermost message of the wrapped error.
  it("a call that reaches the unauthorized executor over the bus names the 401 in its UPSTREAM_UNAVAILABLE error", async () => {
    const denied = extra[0] ?? (await wrapUrl(nats.url, "unauthorized", upstream.url, ["--wait-for-upstream"]));
    if (!extra.includes(denied)) extra.push(denied);
    await denied.waitFor(/could not start the upstream MCP server/);
    const nc: NatsConnection = await connect({ servers: nats.url });
    try {
      const reply = await nc.request(
        subjects.request("unauthorized"),
        JSON.stringify({
          dMCP_version: "0.1",
          type: "prompt_request",
          id: "c-401",
          correlation_id: "c-401",
          timestamp: new Date().toISOString(),
          sender_id: "test",
          payload: { service: "unauthorized", method: "tools/call", params: { name: "echo", arguments: { text: "x" } } },
        }),
        { timeout: 5000 },
      );
      const decoded = decodeEnvelope(reply.data);
      expect(decoded.ok).toBe(true);
      if (!decoded.ok || decoded.envelope.type !== "error_notification") throw new Error(`expected an error_notification, got ${JSON.stringify(decoded)}`);
      expect(decoded.envelope.payload.code).toBe(ErrorCode.UpstreamUnavailable);
      expect(decoded.envelope.payload.message).toMatch(/401|Unauthorized/);
    } finally {
      await nc.close();
    }
  });
});

describe("legacy HTTP+SSE server (server-everything sse)", () => {
  let nats: EmbeddedNats;
  let everything: Child;
  let sseUrl: string;
  let gateway: Child & { url: string };
  let client: RawMcpClient;
  const wraps: Child[] = [];

  beforeAll(async () => {
    nats = await startTestNats();
    const port = await freePort();
    everything = spawnNode([EVERYTHING_BIN, "sse"], { env: { PORT: String(port) } });
    await everything.waitFor(/running on port/i);
    sseUrl = `http://127.0.0.1:${port}/sse`;
    gateway = await startGatewayHttp(nats.url);
    client = await RawMcpClient.connect(gatewayTransport("http", { natsUrl: nats.url, httpUrl: gateway.url }));
  });

  afterEach(async () => {
    await Promise.allSettled(wraps.splice(0).map((c) => c.stop()));
  });

  afterAll(async () => {
    await client?.close();
    await Promise.allSettled([gateway?.stop(), everything?.stop()]);
    await nats?.stop();
  });

  it("transport auto: the Streamable HTTP POST is refused, the wrap falls back to SSE and serves", async () => {
    const wrap = await wrapUrl(nats.url, "legacy", sseUrl);
    wraps.push(wrap);
    await wrap.waitFor(/falling back to legacy SSE/);
    expect(wrap.stderr.join("\n")).toMatch(/"upstream":"sse: http:\/\/127\.0\.0\.1:\d+\/sse"/);

    await eventually(async () => (await client.toolNames()).includes("echo"));
    const result = await client.result("tools/call", { name: "echo", arguments: { message: "hi" } });
    expect(textOf(result)).toBe("Echo: hi");
    expect(await replicaStatus(nats.url, "legacy")).toBe("ready");
  });

  it("transport sse: connects over SSE straight away", async () => {
    const wrap = await wrapUrl(nats.url, "legacy_sse", sseUrl, ["--transport", "sse"]);
    wraps.push(wrap);
    expect(wrap.stderr.join("\n")).not.toMatch(/falling back/);
    expect(wrap.stderr.join("\n")).toMatch(/upstream MCP server connected/);

    // The qualified name works whether or not another service also offers `echo`.
    await eventually(async () => (await client.toolNames()).some((name) => name === "echo" || name === "legacy_sse__echo"));
    const result = await client.result("tools/call", { name: "legacy_sse__echo", arguments: { message: "hi" } });
    expect(textOf(result)).toBe("Echo: hi");
  });

  it("transport streamable-http: does not fall back; the wrap stays degraded", async () => {
    const wrap = await wrapUrl(nats.url, "legacy_strict", sseUrl, ["--transport", "streamable-http", "--wait-for-upstream"]);
    wraps.push(wrap);
    expect(wrap.stderr.join("\n")).toMatch(/could not start the upstream MCP server/);
    expect(wrap.stderr.join("\n")).not.toMatch(/falling back/);
    expect(await replicaStatus(nats.url, "legacy_strict")).toBe("degraded");
  });
});

// BUG: over legacy SSE the wrap never notices that the server went away. The SDK's EventSource
// reconnects by itself and the SSE transport only reports onerror, never onclose, so the supervisor
// keeps the dead session: the instance stays "ready" and no re-initialize ever happens.
describe("a legacy SSE server that dies and comes back", () => {
  let nats: EmbeddedNats;
  let port: number;
  let everything: Child;
  let gateway: Child & { url: string };
  let wrap: Child;
  let client: RawMcpClient;

  async function startEverything(): Promise<Child> {
    const child = spawnNode([EVERYTHING_BIN, "sse"], { env: { PORT: String(port) } });
    await child.waitFor(/running on port/i);
    return child;
  }

  beforeAll(async () => {
    nats = await startTestNats();
    port = await freePort();
    everything = await startEverything();
    wrap = await wrapUrl(nats.url, "phoenix", `http://127.0.0.1:${port}/sse`, ["--transport", "sse"]);
    gateway = await startGatewayHttp(nats.url);
    client = await RawMcpClient.connect(gatewayTransport("http", { natsUrl: nats.url, httpUrl: gateway.url }));
    await eventually(async () => (await client.toolNames()).includes("echo"));
  });

  afterAll(async () => {
    await client?.close();
    await Promise.allSettled([gateway?.stop(), wrap?.stop(), everything?.stop()]);
    await nats?.stop();
  });

  it("reports the instance degraded while the server is down, and serves again after it restarts", async () => {
    expect(textOf(await client.result("tools/call", { name: "echo", arguments: { message: "before" } }))).toBe("Echo: before");
    everything.kill("SIGKILL");
    await everything.exited;
    await wrap.waitFor(/SSE error/);
    // Soft, so that the test also shows what happens after the restart.
    expect.soft(await eventually(async () => (await replicaStatus(nats.url, "phoenix")) === "degraded", 8_000).catch(() => false)).toBe(true);
    // A call while it is down fails fast (today as "could not send tools/call upstream: fetch failed").
    const whileDown = await client.request("tools/call", { name: "echo", arguments: { message: "down" } }, 10_000);
    expect(whileDown.error).toBeDefined();

    everything = await startEverything();
    const answer = await eventually(
      async () => {
        const response = await client.request("tools/call", { name: "echo", arguments: { message: "after" } }, 5_000);
        return response.result ? textOf(response.result) : undefined;
      },
      20_000,
      500,
    ).catch((err: Error) => `no answer: ${err.message}`);
    expect(answer).toBe("Echo: after");
    // The new server process got a new session, which must be initialized again. (server-everything
    // happens to answer on a session that never saw initialize; a stricter server would not.) The
    // client's calls run in its own upstream session (docs/sessions-and-tasks.md "Client sessions"): that one is reopened.
    expect.soft(logLines(wrap).filter((l) => l.msg === "upstream session opened for a client session").length).toBeGreaterThanOrEqual(2);
  });
});

describe("a Streamable HTTP server that dies and comes back", () => {
  let nats: EmbeddedNats;
  let port: number;
  let upstream: Child;
  let gateway: Child & { url: string };
  let wrap: Child;
  let client: RawMcpClient;

  beforeAll(async () => {
    nats = await startTestNats();
    port = await freePort();
    upstream = await startFixture("lazarus", port);
    wrap = await wrapUrl(nats.url, "lazarus", `http://127.0.0.1:${port}/mcp`);
    gateway = await startGatewayHttp(nats.url);
    client = await RawMcpClient.connect(gatewayTransport("http", { natsUrl: nats.url, httpUrl: gateway.url }));
    await eventually(async () => (await client.toolNames()).includes("echo"));
  });

  afterAll(async () => {
    await client?.close();
    await Promise.allSettled([gateway?.stop(), wrap?.stop(), upstream?.stop()]);
    await nats?.stop();
  });

  it("reports the instance degraded while the server is down, and serves again after it restarts", async () => {
    expect(textOf(await client.result("tools/call", { name: "echo", arguments: { text: "before" } }))).toBe("before");
    upstream.kill("SIGKILL");
    await upstream.exited;
    const whileDown = await client.request("tools/call", { name: "echo", arguments: { text: "down" } }, 10_000);
    expect(whileDown.error).toBeDefined();
    expect.soft(await eventually(async () => (await replicaStatus(nats.url, "lazarus")) === "degraded", 8_000).catch(() => false)).toBe(true);

    // The new process knows nothing of the old session: the wrap must initialize a new one.
    upstream = await startFixture("lazarus", port);
    const answer = await eventually(
      async () => {
        const response = await client.request("tools/call", { name: "echo", arguments: { text: "after" } }, 5_000);
        return response.result ? textOf(response.result) : undefined;
      },
      20_000,
      500,
    ).catch((err: Error) => `no answer: ${err.message}`);
    expect(answer).toBe("after");
  });
});

describe("a URL nobody listens on yet", () => {
  let nats: EmbeddedNats;
  let gateway: Child & { url: string };
  let wrap: Child;
  let upstream: Child | undefined;
  let client: RawMcpClient;

  beforeAll(async () => {
    nats = await startTestNats();
    gateway = await startGatewayHttp(nats.url);
    client = await RawMcpClient.connect(gatewayTransport("http", { natsUrl: nats.url, httpUrl: gateway.url }));
  });

  afterAll(async () => {
    await client?.close();
    await Promise.allSettled([gateway?.stop(), wrap?.stop(), upstream?.stop()]);
    await nats?.stop();
  });

  it("with --wait-for-upstream: starts degraded, keeps retrying without crashing, and serves once the server comes up", async () => {
    const port = await freePort();
    wrap = await wrapUrl(nats.url, "late", `http://127.0.0.1:${port}/mcp`, ["--wait-for-upstream"]);
    expect(await replicaStatus(nats.url, "late")).toBe("degraded");
    await eventually(() => logLines(wrap).filter((l) => l.msg === "could not start the upstream MCP server").length >= 3, 10_000);
    expect(wrap.process.exitCode).toBeNull();
    // A refused connection is no reason to try SSE.
    expect(wrap.stderr.join("\n")).not.toMatch(/falling back/);
    expect(await client.toolNames()).not.toContain("echo");

    upstream = await startFixture("late", port);
    const startedAt = Date.now();
    await wrap.waitFor(/upstream MCP server connected/, 15_000);
    expect(Date.now() - startedAt).toBeLessThan(15_000);
    await eventually(async () => (await client.toolNames()).includes("echo"), 10_000);
    const result = await client.result("tools/call", { name: "echo", arguments: { text: "finally" } });
    expect(textOf(result)).toBe("finally");
    expect(await replicaStatus(nats.url, "late")).toBe("ready");
  });
});

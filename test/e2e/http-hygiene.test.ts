/** The HTTP gateway's guards: per-client rate limits (429 with Retry-After), Host and Origin validation on loopback, CORS only when configured. */
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually, startGatewayHttp, type Child } from "../support/processes.js";

describe("HTTP hygiene", () => {
  let nats: EmbeddedNats;
  let limited: Child & { url: string };

  beforeAll(async () => {
    nats = await startTestNats();
    limited = await startGatewayHttp(nats.url, ["--rate-limit", "2/s,burst=3"]);
  });

  afterAll(async () => {
    await limited?.stop();
    await nats?.stop();
  });

  const initialize = (url: string, headers: Record<string, string> = {}) =>
    fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "t", version: "1" } } }),
    });

  /** Sends initialize until the rate limit lets it through: no event says when the bucket has refilled. */
  const admitted = (url: string, headers: Record<string, string> = {}) =>
    eventually(
      async () => {
        const response = await initialize(url, headers);
        if (response.status !== 429) return response;
        await response.body?.cancel();
        return undefined;
      },
      15_000,
      250,
    );

  it("answers a client over its rate with 429 and Retry-After, and serves it again later", async () => {
    // All at once, so that the bucket (3, refilling at 2/s) cannot refill in between, however slow the machine.
    const responses = await Promise.all(Array.from({ length: 10 }, () => initialize(limited.url)));
    const statuses = responses.map((response) => response.status);
    const limitedResponse = responses.find((response) => response.status === 429);
    expect(statuses.filter((status) => status === 200).length).toBeGreaterThanOrEqual(1);
    expect(limitedResponse).toBeDefined();
    const retryAfter = Number(limitedResponse!.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(await limitedResponse!.json()).toMatchObject({ error: { message: expect.stringMatching(/rate limit/) } });
    await Promise.all(responses.filter((response) => response !== limitedResponse).map((response) => response.body?.cancel()));
    const again = await admitted(limited.url);
    expect(again.status).toBe(200);
    await again.body?.cancel();
  });

  it("refuses a browser page from another origin on a loopback gateway, and accepts a loopback one", async () => {
    // The Origin check comes before the rate limit: a foreign page is refused, whatever the bucket holds.
    const foreign = await initialize(limited.url, { origin: "http://evil.example" });
    expect(foreign.status).toBe(403);
    await foreign.body?.cancel();
    const local = await admitted(limited.url, { origin: "http://localhost:5173" });
    expect(local.status).toBe(200);
    await local.body?.cancel();
  });

  it("refuses a request whose Host is not a loopback name on a loopback gateway, before and after accepted ones (DNS rebinding)", async () => {
    // fetch may not set Host: node:http may. The /healthz route is behind the guard too and needs no session.
    const statusWithHost = (host: string) =>
      new Promise<number>((resolve, reject) => {
        const url = new URL(limited.url);
        const req = request({ hostname: url.hostname, port: url.port, path: "/healthz", headers: { host } }, (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        });
        req.on("error", reject);
        req.end();
      });
    const port = new URL(limited.url).port;
    expect(await statusWithHost(`evil.example:${port}`)).toBe(403);
    expect(await statusWithHost(`127.0.0.1:${port}`)).toBe(200);
    expect(await statusWithHost(`localhost:${port}`)).toBe(200);
    expect(await statusWithHost(`localhost:${port}`)).toBe(200);
    expect(await statusWithHost(`evil.example:${port}`)).toBe(403);
    expect(await statusWithHost("localhost.evil.example")).toBe(403);
  });

  it("sends no CORS headers unless origins are configured; then answers preflights and exposes the session id", async () => {
    const closed = await admitted(limited.url, { origin: "http://localhost:5173" });
    expect(closed.headers.get("access-control-allow-origin")).toBeNull();
    await closed.body?.cancel();

    const { runDmcp } = await import("../support/processes.js");
    const open = await startGatewayHttp(nats.url, ["--cors-origin", "https://app.example.com"]);
    try {
      const preflight = await fetch(open.url, {
        method: "OPTIONS",
        headers: {
          origin: "https://app.example.com",
          "access-control-request-method": "POST",
          "access-control-request-headers": "content-type, mcp-protocol-version, mcp-param-region",
        },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
      expect(preflight.headers.get("access-control-allow-methods")).toContain("POST");
      expect(preflight.headers.get("access-control-allow-headers")).toContain("mcp-param-region");

      // A configured origin passes the loopback Origin guard and can read the session id.
      const allowed = await initialize(open.url, { origin: "https://app.example.com" });
      expect(allowed.status).toBe(200);
      expect(allowed.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
      expect(allowed.headers.get("access-control-expose-headers")).toContain("Mcp-Session-Id");
      await allowed.body?.cancel();

      // Any other origin gets neither CORS headers nor past the guard.
      const other = await initialize(open.url, { origin: "https://evil.example" });
      expect(other.status).toBe(403);
      expect(other.headers.get("access-control-allow-origin")).toBeNull();
      await other.body?.cancel();
    } finally {
      await open.stop();
    }
    const stdio = runDmcp(["gateway", "--stdio", "--nats", nats.url, "--cors-origin", "https://app.example.com"]);
    expect(await stdio.exited).toBe(2);
  });

  it("refuses a rate limit that does not parse", async () => {
    const { runDmcp } = await import("../support/processes.js");
    const bad = runDmcp(["gateway", "--http", "0", "--nats", nats.url, "--rate-limit", "fast"]);
    expect(await bad.exited).toBe(2);
  });
});

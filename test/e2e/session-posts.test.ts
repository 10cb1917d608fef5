/**
 * The POSTs of a held session, served ahead of express (adapters/inbound/http/session-posts.ts): the
 * same answers as express gives, and every gate still applies. A chunked body (no Content-Length) is
 * always express's, so each answer of the fast path is compared with express's answer to the same body.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually, startGatewayHttp, wrapFixtureStdio, type Child } from "../support/processes.js";

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One POST to /mcp by node:http: `chunked` leaves out the Content-Length (so express serves it). */
function post(url: string, body: string, headers: Record<string, string>, chunked = false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const all: Record<string, string | number> = { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers };
    if (!chunked) all["content-length"] = Buffer.byteLength(body);
    const req = request({ hostname: target.hostname, port: target.port, path: target.pathname, method: "POST", headers: all }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    if (chunked) {
      const half = Math.floor(body.length / 2);
      req.write(body.slice(0, half));
      req.end(body.slice(half));
    } else {
      req.end(body);
    }
  });
}

const rpc = (id: number, method: string, params: Record<string, unknown> = {}) => JSON.stringify({ jsonrpc: "2.0", id, method, params });

/** An initialized session of the gateway at `url`; its id and the headers of its requests. */
async function openSession(url: string, extra: Record<string, string> = {}): Promise<Record<string, string>> {
  const init = await post(url, rpc(1, "initialize", { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "t", version: "1" } }), extra);
  expect(init.status).toBe(200);
  const headers = { ...extra, "mcp-session-id": String(init.headers["mcp-session-id"]), "mcp-protocol-version": "2025-11-25" };
  const initialized = await post(url, JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }), headers);
  expect(initialized.status).toBe(202);
  return headers;
}

describe("session POSTs ahead of express", () => {
  let nats: EmbeddedNats;
  let fixture: Child;
  let gateway: Child & { url: string };
  let dir: string;
  const alice = { authorization: "Bearer alice-token" };
  const bob = { authorization: "Bearer bob-token" };

  beforeAll(async () => {
    nats = await startTestNats();
    dir = mkdtempSync(join(tmpdir(), "dmcp-session-posts-"));
    writeFileSync(join(dir, "tokens"), "alice:alice-token\nbob:bob-token\n");
    fixture = await wrapFixtureStdio(nats.url, "fx");
    // Plain JSON answers whatever the load: a call unanswered after 50 ms would get a resumable SSE stream.
    gateway = await startGatewayHttp(nats.url, ["--auth-tokens", join(dir, "tokens"), "--resumable-after", "60000"]);
  });

  afterAll(async () => {
    await gateway?.stop();
    await fixture?.stop();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("answers a session's call as express does", async () => {
    const session = await openSession(gateway.url, alice);
    const call = rpc(7, "tools/call", { name: "echo", arguments: { text: "hello" } });
    const fast = await eventually(async () => {
      const answer = await post(gateway.url, call, session);
      return answer.body.includes("hello") ? answer : undefined;
    });
    const viaExpress = await post(gateway.url, call, session, true);
    expect(fast.status).toBe(200);
    expect(fast.headers["content-type"]).toBe("application/json");
    expect(fast.headers["mcp-session-id"]).toBe(session["mcp-session-id"]);
    expect(JSON.parse(fast.body)).toEqual(JSON.parse(viaExpress.body));
    expect(JSON.parse(fast.body)).toMatchObject({ id: 7, result: { content: [{ type: "text", text: "hello" }] } });
  });

  it("answers a body that is not JSON, or not an object or array, with a parse error as express does", async () => {
    const session = await openSession(gateway.url, alice);
    const outcome = (answer: Answer) => ({ status: answer.status, code: answer.body === "" ? undefined : (JSON.parse(answer.body) as { error?: { code?: number } }).error?.code });
    for (const body of ['{"jsonrpc":', '"ping"', "42", " ", "\ufeff", "[]", "{}"]) {
      const fast = outcome(await post(gateway.url, body, session));
      const viaExpress = outcome(await post(gateway.url, body, session, true));
      expect({ body, ...fast }).toEqual({ body, ...viaExpress });
    }
    for (const body of ['{"jsonrpc":', '"ping"', "42", " "]) expect(outcome(await post(gateway.url, body, session)).code).toBe(-32700);
    // A leading byte order mark is dropped, as body-parser does.
    const withBom = await post(gateway.url, `\ufeff${rpc(3, "ping")}`, session);
    expect(JSON.parse(withBom.body)).toEqual({ jsonrpc: "2.0", id: 3, result: {} });
  });

  it("authenticates every POST of a session: no token 401, another identity's token 403", async () => {
    const session = await openSession(gateway.url, alice);
    const { authorization: _dropped, ...withoutToken } = session;
    const anonymous = await post(gateway.url, rpc(2, "ping"), withoutToken);
    expect(anonymous.status).toBe(401);
    expect(String(anonymous.headers["www-authenticate"])).toMatch(
      /^Bearer realm="dmcp-gateway", resource_metadata="http:\/\/127\.0\.0\.1:\d+\/\.well-known\/oauth-protected-resource\/mcp"$/,
    );
    const wrong = await post(gateway.url, rpc(2, "ping"), { ...session, authorization: "Bearer nobody" });
    expect(wrong.status).toBe(401);
    expect(String(wrong.headers["www-authenticate"])).toContain('error="invalid_token"');
    const other = await post(gateway.url, rpc(2, "ping"), { ...session, ...bob });
    expect(other.status).toBe(403);
    expect(JSON.parse(other.body)).toMatchObject({ error: { message: expect.stringContaining("another identity") } });
    const owner = await post(gateway.url, rpc(2, "ping"), session);
    expect(JSON.parse(owner.body)).toEqual({ jsonrpc: "2.0", id: 2, result: {} });
  });

  it("guards a session's POSTs on loopback: a foreign Host or Origin gets 403", async () => {
    const session = await openSession(gateway.url, alice);
    const foreignHost = await post(gateway.url, rpc(4, "ping"), { ...session, host: "evil.example" });
    expect(foreignHost.status).toBe(403);
    const foreignOrigin = await post(gateway.url, rpc(4, "ping"), { ...session, origin: "http://evil.example" });
    expect(foreignOrigin.status).toBe(403);
  });

  it("answers a body over the limit with 413, and an unknown session with 404", async () => {
    const session = await openSession(gateway.url, alice);
    const big = rpc(5, "tools/call", { name: "echo", arguments: { text: "x".repeat(5 * 1024 * 1024) } });
    const tooLarge = await post(gateway.url, big, session);
    expect(tooLarge.status).toBe(413);
    expect(JSON.parse(tooLarge.body)).toMatchObject({ error: { message: expect.stringContaining("exceeds the limit") } });
    const unknown = await post(gateway.url, rpc(6, "ping"), { ...session, "mcp-session-id": "no-such-session" });
    expect(unknown.status).toBe(404);
  });

  it("applies the rate limit to a session's POSTs", async () => {
    const limited = await startGatewayHttp(nats.url, ["--rate-limit", "2/s,burst=3"]);
    try {
      const session = await eventually(
        async () => {
          try {
            return await openSession(limited.url);
          } catch {
            return undefined;
          }
        },
        15_000,
        500,
      );
      // All at once, so that the bucket cannot refill in between.
      const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => post(limited.url, rpc(10 + i, "ping"), session)));
      const refused = answers.filter((answer) => answer.status === 429);
      expect(refused.length).toBeGreaterThanOrEqual(1);
      expect(Number(refused[0]!.headers["retry-after"])).toBeGreaterThanOrEqual(1);
      expect(JSON.parse(refused[0]!.body)).toMatchObject({ error: { message: expect.stringMatching(/rate limit/) } });
    } finally {
      await limited.stop();
    }
  });
});

/**
 * Authentication of the HTTP gateway: the matrix of no token, bad token, static tokens, JWTs from a
 * key and from a JWKS (expired, wrong audience, wrong issuer, wrong key), 401 with the right
 * headers, and the protected resource metadata. Real gateway processes, real nats-server.
 */
import { createServer, type Server } from "node:http";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT } from "jose";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { RawMcpClient } from "../support/mcp-client.js";
import { runDmcp, startGatewayHttp, wrapFixtureStdio, type Child } from "../support/processes.js";

const ISSUER = "https://auth.example.test";
const AUDIENCE = "dmcp-gateway-test";

describe("HTTP gateway authentication", () => {
  let nats: EmbeddedNats;
  let executor: Child;
  let dir: string;
  let keys: Awaited<ReturnType<typeof generateKeyPair>>;
  let otherKeys: Awaited<ReturnType<typeof generateKeyPair>>;
  let jwks: Server;
  let jwksUrl: string;
  let keyGateway: Child & { url: string };
  let jwksGateway: Child & { url: string };

  const jwt = (claims: { aud?: string; iss?: string; exp?: number | string; sub?: string }, signer = keys.privateKey) =>
    new SignJWT({})
      .setProtectedHeader({ alg: "RS256", kid: "k1" })
      .setSubject(claims.sub ?? "alice")
      .setIssuer(claims.iss ?? ISSUER)
      .setAudience(claims.aud ?? AUDIENCE)
      .setIssuedAt()
      .setExpirationTime(claims.exp ?? "5m")
      .sign(signer);

  beforeAll(async () => {
    nats = await startTestNats();
    executor = await wrapFixtureStdio(nats.url, "guarded");
    dir = mkdtempSync(join(tmpdir(), "dmcp-auth-"));
    keys = await generateKeyPair("RS256", { extractable: true });
    otherKeys = await generateKeyPair("RS256", { extractable: true });
    writeFileSync(join(dir, "tokens"), "# name:token\nci-robot:s3cret-token-1\nops:another-token\n");
    writeFileSync(join(dir, "key.pem"), await exportSPKI(keys.publicKey));
    const jwk = { ...(await exportJWK(keys.publicKey)), kid: "k1", alg: "RS256", use: "sig" };
    jwks = createServer((_req, res) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [jwk] })));
    await new Promise<void>((resolve) => jwks.listen(0, "127.0.0.1", resolve));
    jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`;
    keyGateway = await startGatewayHttp(nats.url, [
      "--auth-tokens",
      join(dir, "tokens"),
      "--jwt-public-key",
      join(dir, "key.pem"),
      "--jwt-issuer",
      ISSUER,
      "--jwt-audience",
      AUDIENCE,
      "--auth-server",
      ISSUER,
    ]);
    jwksGateway = await startGatewayHttp(nats.url, ["--jwt-jwks", jwksUrl, "--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE]);
  });

  afterAll(async () => {
    await Promise.allSettled([keyGateway?.stop(), jwksGateway?.stop(), executor?.stop()]);
    await new Promise((resolve) => jwks?.close(resolve));
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const initialize = (url: string, authorization?: string) =>
    fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...(authorization ? { authorization } : {}) },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "t", version: "1" } } }),
    });

  async function callWith(url: string, token: string): Promise<unknown> {
    const client = await RawMcpClient.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    try {
      return await client.result("tools/call", { name: "whoami", arguments: {} });
    } finally {
      await client.close();
    }
  }

  it("answers a request without credentials with 401 and a WWW-Authenticate that names the resource metadata", async () => {
    const response = await initialize(keyGateway.url);
    expect(response.status).toBe(401);
    const challenge = response.headers.get("www-authenticate")!;
    expect(challenge).toMatch(/^Bearer /);
    expect(challenge).toContain(`resource_metadata="${keyGateway.url.replace(/\/mcp$/, "")}/.well-known/oauth-protected-resource/mcp"`);
    expect(challenge).not.toContain("error=");
  });

  it.each([
    ["a wrong static token", () => Promise.resolve("Bearer not-a-token")],
    ["a malformed header", () => Promise.resolve("Basic Zm9vOmJhcg==")],
    ["an expired JWT", () => jwt({ exp: Math.floor(Date.now() / 1000) - 60 }).then((t) => `Bearer ${t}`)],
    ["a JWT for another audience", () => jwt({ aud: "someone-else" }).then((t) => `Bearer ${t}`)],
    ["a JWT from another issuer", () => jwt({ iss: "https://evil.example" }).then((t) => `Bearer ${t}`)],
    ["a JWT signed by another key", () => jwt({}, otherKeys.privateKey).then((t) => `Bearer ${t}`)],
  ])("refuses %s with 401 and an error in WWW-Authenticate", async (_label, header) => {
    for (const gateway of [keyGateway, jwksGateway]) {
      const response = await initialize(gateway.url, await header());
      expect(response.status).toBe(401);
      expect(response.headers.get("www-authenticate")).toMatch(/error="invalid_(token|request)"/);
      expect(await response.json()).toMatchObject({ error: { code: -32001 } });
    }
  });

  it("serves MCP to a client with a valid static token", async () => {
    expect(JSON.stringify(await callWith(keyGateway.url, "s3cret-token-1"))).toContain("guarded:");
    expect(JSON.stringify(await callWith(keyGateway.url, "another-token"))).toContain("guarded:");
  });

  it("serves MCP to a client with a valid JWT, verified by a key or by a JWKS", async () => {
    expect(JSON.stringify(await callWith(keyGateway.url, await jwt({})))).toContain("guarded:");
    expect(JSON.stringify(await callWith(jwksGateway.url, await jwt({})))).toContain("guarded:");
  });

  it("publishes the protected resource metadata, and leaves health probes open", async () => {
    const base = keyGateway.url.replace(/\/mcp$/, "");
    const metadata = await (await fetch(`${base}/.well-known/oauth-protected-resource/mcp`)).json();
    expect(metadata).toEqual({ resource: keyGateway.url, authorization_servers: [ISSUER], bearer_methods_supported: ["header"], resource_name: "dmcp-gateway" });
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  });

  it("refuses authentication options without --http, and a token file that does not parse", async () => {
    const stdio = runDmcp(["gateway", "--stdio", "--nats", nats.url, "--auth-tokens", join(dir, "tokens")]);
    expect(await stdio.exited).toBe(2);
    writeFileSync(join(dir, "bad-tokens"), "no-colon-here\n");
    const bad = runDmcp(["gateway", "--http", "0", "--nats", nats.url, "--auth-tokens", join(dir, "bad-tokens")]);
    expect(await bad.exited).toBe(2);
  });
});

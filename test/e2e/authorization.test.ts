/**
 * Per-identity authorization: a policy filters lists and refuses calls (FORBIDDEN), per static token,
 * JWT claim and stdio identity; sessions stay with their identity; the caller travels in the envelope
 * to executors (audit log, `_meta` for the upstream) and the raw token only when the gateway forwards it.
 * Real gateway and executor processes, real nats-server.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exportSPKI, generateKeyPair, SignJWT } from "jose";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { RawMcpClient } from "../support/mcp-client.js";
import { DMCP_BIN, eventually, runDmcp, startGatewayHttp, wrapFixtureStdio, type Child } from "../support/processes.js";

const FORBIDDEN = -32019;

const POLICY = {
  default: "deny",
  rules: [
    {
      description: "alice uses the files service, except what can hurt",
      match: { subjects: ["alice"] },
      allow: { tools: ["files/*"], resources: ["fixture://files/*", "dmcp://context/*"], prompts: ["*"] },
      deny: { tools: ["files/crash", "*__fail"] },
    },
    { match: { subjects: ["bob"] }, allow: { tools: ["files__echo"] } },
    { match: { kinds: ["jwt"], claims: { roles: "ops" } }, allow: { tools: ["admin__*", "dmcp_*"] } },
    { match: { kinds: ["local"], subjects: ["operator"] }, allow: { tools: ["admin/whoami"] } },
  ],
};

describe("per-identity authorization", () => {
  let nats: EmbeddedNats;
  let files: Child;
  let admin: Child;
  let dir: string;
  let keys: Awaited<ReturnType<typeof generateKeyPair>>;
  let guarded: Child & { url: string };
  let forwarding: Child & { url: string };
  const clients: RawMcpClient[] = [];

  const jwt = (claims: Record<string, unknown>) =>
    new SignJWT(claims).setProtectedHeader({ alg: "RS256" }).setSubject("carol").setIssuer("https://issuer.test").setExpirationTime("5m").sign(keys.privateKey);

  async function connect(url: string, token: string): Promise<RawMcpClient> {
    const client = await RawMcpClient.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    clients.push(client);
    return client;
  }
  const toolNames = async (client: RawMcpClient) => ((await client.result("tools/list")).tools as { name: string }[]).map((tool) => tool.name).sort();

  beforeAll(async () => {
    nats = await startTestNats();
    // Both services offer the same tools, so every tool is exposed qualified: files__echo, admin__echo, ...
    files = await wrapFixtureStdio(nats.url, "files", ["--forward-caller", "--audit"]);
    admin = await wrapFixtureStdio(nats.url, "admin", ["--forward-caller"]);
    dir = mkdtempSync(join(tmpdir(), "dmcp-policy-"));
    keys = await generateKeyPair("RS256", { extractable: true });
    writeFileSync(join(dir, "tokens"), "alice:alice-token\nbob:bob-token\n");
    writeFileSync(join(dir, "key.pem"), await exportSPKI(keys.publicKey));
    writeFileSync(join(dir, "policy.json"), JSON.stringify(POLICY));
    const auth = ["--auth-tokens", join(dir, "tokens"), "--jwt-public-key", join(dir, "key.pem")];
    guarded = await startGatewayHttp(nats.url, [...auth, "--policy", join(dir, "policy.json")]);
    forwarding = await startGatewayHttp(nats.url, [...auth, "--forward-token", "--forward-claims", "roles,email"]);
  });

  afterAll(async () => {
    await Promise.allSettled(clients.map((client) => client.close()));
    await Promise.allSettled([guarded?.stop(), forwarding?.stop(), files?.stop(), admin?.stop()]);
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("lists only what a token's rules allow, and refuses the rest with FORBIDDEN", async () => {
    const alice = await connect(guarded.url, "alice-token");
    const names = await eventually(async () => {
      const listed = await toolNames(alice);
      return listed.includes("files__echo") ? listed : undefined;
    });
    expect(names.every((name) => name.startsWith("files__"))).toBe(true);
    expect(names).not.toContain("files__crash");
    expect(names).not.toContain("files__fail");
    expect(names).toContain("files__whoami");

    expect(JSON.stringify(await alice.result("tools/call", { name: "files__echo", arguments: { text: "hi" } }))).toContain("hi");
    for (const name of ["admin__echo", "files__crash", "files__fail", "dmcp_publish_context"]) {
      const refused = await alice.request("tools/call", { name, arguments: {} });
      expect(refused.error, name).toMatchObject({ code: FORBIDDEN, data: { name } });
      expect(refused.error!.message).toContain('token "alice"');
    }
    // An unknown tool is still unknown, not forbidden.
    expect((await alice.request("tools/call", { name: "no_such_tool", arguments: {} })).error).toMatchObject({ code: -32602 });
  });

  it("applies a rule per subject: bob sees one tool, no resources or prompts", async () => {
    const bob = await connect(guarded.url, "bob-token");
    expect(await toolNames(bob)).toEqual(["files__echo"]);
    expect((await bob.result("resources/list")).resources).toEqual([]);
    expect((await bob.result("resources/templates/list")).resourceTemplates).toEqual([]);
    expect((await bob.result("prompts/list")).prompts).toEqual([]);
    expect((await bob.request("resources/read", { uri: "fixture://files/static" })).error).toMatchObject({ code: FORBIDDEN });
    expect((await bob.request("prompts/get", { name: "files__greet", arguments: { who: "x" } })).error).toMatchObject({ code: FORBIDDEN });
    expect((await bob.request("resources/subscribe", { uri: "dmcp://context/plant.pressure" })).error).toMatchObject({ code: FORBIDDEN });
    expect((await bob.request("completion/complete", { ref: { type: "ref/prompt", name: "files__greet" }, argument: { name: "who", value: "a" } })).error).toMatchObject({
      code: FORBIDDEN,
    });
  });

  it("lets alice read her resources and templates but not another service's", async () => {
    const alice = await connect(guarded.url, "alice-token");
    const resources = (await alice.result("resources/list")).resources as { uri: string }[];
    expect(resources.map((r) => r.uri)).toContain("fixture://files/static");
    expect(resources.some((r) => r.uri.startsWith("fixture://admin/"))).toBe(false);
    const templates = (await alice.result("resources/templates/list")).resourceTemplates as { uriTemplate: string }[];
    expect(templates.map((t) => t.uriTemplate)).toEqual(["fixture://files/items/{id}"]);
    expect(JSON.stringify(await alice.result("resources/read", { uri: "fixture://files/static" }))).toContain("fixture://files/static");
    expect((await alice.request("resources/read", { uri: "fixture://admin/static" })).error).toMatchObject({ code: FORBIDDEN });
    expect((await alice.request("resources/subscribe", { uri: "dmcp://context/plant.pressure" })).error).toBeUndefined();
  });

  it("matches JWT claims: an ops role opens the admin service, no role opens nothing", async () => {
    const ops = await connect(guarded.url, await jwt({ roles: ["ops", "dev"] }));
    const names = await toolNames(ops);
    expect(names.length).toBeGreaterThan(0);
    expect(names.every((name) => name.startsWith("admin__") || name.startsWith("dmcp_"))).toBe(true);
    expect(JSON.stringify(await ops.result("tools/call", { name: "admin__whoami", arguments: {} }))).toContain("admin:");

    const nobody = await connect(guarded.url, await jwt({ roles: ["dev"] }));
    expect(await toolNames(nobody)).toEqual([]);
    expect((await nobody.request("tools/call", { name: "admin__whoami", arguments: {} })).error).toMatchObject({ code: FORBIDDEN });
  });

  it("keeps a session with the identity that opened it", async () => {
    const alice = await connect(guarded.url, "alice-token");
    const sessionId = (alice.transport as StreamableHTTPClientTransport).sessionId!;
    const asBob = await fetch(guarded.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        authorization: "Bearer bob-token",
        "mcp-session-id": sessionId,
        "mcp-protocol-version": "2025-11-25",
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: 9, method: "tools/call", params: { name: "files__whoami", arguments: {} } }),
    });
    expect(asBob.status).toBe(403);
    expect(await asBob.text()).toContain("another identity");
  });

  it("sends the caller to executors: in _meta when asked, in the audit log, the token only when forwarded", async () => {
    const alice = await connect(guarded.url, "alice-token");
    const meta = (await alice.result("tools/call", { name: "files__meta", arguments: {} })).structuredContent as { meta: Record<string, unknown> };
    expect(meta.meta["io.dmcp/caller"]).toEqual({ kind: "token", subject: "alice" });
    const audit = await files.waitFor(/"audit":true.*"subject":"alice".*"method":"tools\/call".*"target":"meta".*"outcome":"ok"/);
    expect(audit[0]).not.toContain("alice-token");

    const token = await jwt({ roles: ["ops"], email: "carol@example.test", secret_claim: "not forwarded" });
    const carol = await connect(forwarding.url, token);
    const forwarded = (await carol.result("tools/call", { name: "admin__meta", arguments: {} })).structuredContent as { meta: Record<string, unknown> };
    expect(forwarded.meta["io.dmcp/caller"]).toEqual({
      kind: "jwt",
      subject: "carol",
      issuer: "https://issuer.test",
      claims: { roles: ["ops"], email: "carol@example.test" },
      token,
    });
    expect(files.stderr.join("\n")).not.toContain(token);
  });

  it("authorizes a stdio client by its --identity", async () => {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [DMCP_BIN, "gateway", "--stdio", "--nats", nats.url, "--policy", join(dir, "policy.json"), "--identity", "operator"],
      stderr: "ignore",
    });
    const operator = await RawMcpClient.connect(transport);
    clients.push(operator);
    expect(await eventually(async () => ((await toolNames(operator)).length > 0 ? toolNames(operator) : undefined))).toEqual(["admin__whoami"]);
    expect((await operator.request("tools/call", { name: "files__whoami", arguments: {} })).error).toMatchObject({ code: FORBIDDEN });
  });

  it("refuses a policy that does not validate, naming the file and the path", async () => {
    writeFileSync(join(dir, "bad-policy.json"), JSON.stringify({ rules: [{ match: { subjects: "alice" }, allow: { tool: ["x"] } }] }));
    const gateway = runDmcp(["gateway", "--http", "0", "--nats", nats.url, "--policy", join(dir, "bad-policy.json")]);
    expect(await gateway.exited).toBe(2);
    const output = gateway.stderr.join("\n");
    expect(output).toContain("bad-policy.json");
    expect(output).toMatch(/rules\.0\.match\.subjects/);
    expect(output).toMatch(/rules\.0\.allow/);
  });
});

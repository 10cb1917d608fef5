/**
 * MCP 2026-07-28 clients through the gateway and the bus to upstreams that speak 2026-07-28 too (the
 * conformance fixture), over HTTP and over stdio: `Mcp-Param-*` headers checked on the way in and
 * generated on the way out, and `input_required` results (multi round-trip) passed through unchanged
 * (over stdio on the executor's stateless lane, while 2025 clients keep their sessions).
 * Real nats-server, gateway, executors and fixture processes; raw HTTP on the client side.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { RawMcpClient } from "../support/mcp-client.js";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually, REPO_ROOT, runDmcp, spawnNode, startGatewayHttp, wrapUrl, type Child } from "../support/processes.js";
import { statelessPost } from "../support/stateless-client.js";

const FIXTURE = `${REPO_ROOT}dist/test/support/fixtures/conformance-server.js`;
const ELICITING = { "io.modelcontextprotocol/clientCapabilities": { elicitation: { form: {} } } };
const childPids = (pid: number) =>
  execFileSync("ps", ["-o", "pid=", "--sort", "start_time", "--ppid", String(pid)], { encoding: "utf8" })
    .split("\n")
    .map((line) => Number(line.trim()))
    .filter((n) => n > 0);
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const base64 = (text: string) => `=?base64?${Buffer.from(text, "utf8").toString("base64")}?=`;

describe("MCP 2026-07-28 clients with 2026-07-28 upstreams", () => {
  let nats: EmbeddedNats;
  let fixture: Child & { url: string };
  const executors: Child[] = [];
  let gateway: Child & { url: string };

  const call_ = (url: string, name: string, args: Record<string, unknown>, headers: Record<string, string> = {}) =>
    statelessPost(url, "tools/call", { name, arguments: args }, { headers });
  const call = (name: string, args: Record<string, unknown>, headers: Record<string, string> = {}) => call_(gateway.url, name, args, headers);

  beforeAll(async () => {
    nats = await startTestNats();
    fixture = spawnNode([FIXTURE, "--http", "0"]) as Child & { url: string };
    const [, port] = await fixture.waitFor(/LISTENING (\d+)/);
    fixture.url = `http://127.0.0.1:${port}/mcp`;
    // Both services offer the same tools: the gateway exposes them as remote__<tool> and stdio__<tool>.
    executors.push(await wrapUrl(nats.url, "remote", fixture.url));
    const stdio = runDmcp(["wrap", "--name", "stdio", "--nats", nats.url, "--heartbeat", "500", "--", process.execPath, FIXTURE, "--stdio"]);
    executors.push(stdio);
    await stdio.waitFor(/executor serving/);
    gateway = await startGatewayHttp(nats.url);
    await eventually(async () => {
      const tools: { name: string }[] = (await statelessPost(gateway.url, "tools/list")).body.result?.tools ?? [];
      return ["remote__test_header_param", "stdio__test_header_param"].every((name) => tools.some((tool) => tool.name === name));
    }, 30_000);
  }, 90_000);

  afterAll(async () => {
    await Promise.allSettled([gateway?.stop(), ...executors.map((executor) => executor.stop()), fixture?.stop()]);
    await nats?.stop();
  });

  it("rejects Mcp-Param headers that are missing, invalid Base64 or unlike the arguments, with 400 and -32020", async () => {
    for (const service of ["remote", "stdio"]) {
      const tool = `${service}__test_header_param`;
      const cases: [string, Record<string, string>][] = [
        ["missing", {}],
        ["invalid Base64 padding", { "Mcp-Param-Region": "=?base64?ZXUtd2VzdA?=" }],
        ["non-alphabet Base64", { "Mcp-Param-Region": "=?base64?ZXUt!!!d2VzdA==?=" }],
        ["another value", { "Mcp-Param-Region": "us-east" }],
      ];
      for (const [label, headers] of cases) {
        const { status, body } = await call(tool, { region: "eu-west" }, headers);
        expect(status, `${service}: ${label}`).toBe(400);
        expect(body.error?.code, `${service}: ${label}`).toBe(-32020);
      }
    }
  });

  it("accepts plain and Base64 Mcp-Param headers, and mirrors the arguments into the HTTP upstream's request", async () => {
    // The fixture itself rejects a call whose Mcp-Param-Region header is missing: what the executor must add.
    const direct = await statelessPost(fixture.url, "tools/call", { name: "test_header_param", arguments: { region: "eu-west" } });
    expect(direct.body.error?.code).toBe(-32020);
    for (const service of ["remote", "stdio"]) {
      const tool = `${service}__test_header_param`;
      const plain = await call(tool, { region: "eu-west" }, { "mcp-param-region": "eu-west" });
      expect(plain.body.result?.content?.[0]?.text, service).toBe("region=eu-west");
      // Not printable ASCII, and edge spaces: both hops carry the value Base64-encoded.
      const encoded = await call(tool, { region: " Zürich " }, { "Mcp-Param-Region": base64(" Zürich ") });
      expect(encoded.body.result?.content?.[0]?.text, service).toBe("region= Zürich ");
      // A value that only looks like the Base64 form is taken literally.
      const literal = await call(tool, { region: "=?base64?ZXU" }, { "Mcp-Param-Region": "=?base64?ZXU" });
      expect(literal.body.result?.content?.[0]?.text, service).toBe("region==?base64?ZXU");
    }
  });

  // Over stdio on the executor's stateless lane: a child of its own that is never initialized, where
  // the upstream takes these requests as stateless ones (in the shared session they would be that session's).
  for (const service of ["remote", "stdio"]) {
    it(`passes input_required results, inputResponses and requestState through unchanged, round after round (${service} upstream)`, async () => {
      const tool = `${service}__test_input_required_result_multi_round`;
      // The upstream asks only clients that declare the capability: its refusal (-32021) passes through too.
      const undeclared = await call(tool, {});
      expect(undeclared.status).toBe(400);
      expect(undeclared.body.error).toMatchObject({ code: -32021, data: { requiredCapabilities: { elicitation: {} } } });
      const first = await statelessPost(gateway.url, "tools/call", { name: tool, arguments: {} }, { meta: ELICITING });
      expect(first.body.result).toMatchObject({ resultType: "input_required", inputRequests: { step1: { method: "elicitation/create" } } });
      const state1 = first.body.result.requestState as string;
      expect(typeof state1).toBe("string");
      const second = await statelessPost(
        gateway.url,
        "tools/call",
        {
          name: tool,
          arguments: {},
          inputResponses: { step1: { action: "accept", content: { name: "Ada" } } },
          requestState: state1,
        },
        { meta: ELICITING },
      );
      expect(second.body.result).toMatchObject({ resultType: "input_required", inputRequests: { step2: { method: "elicitation/create" } } });
      const third = await statelessPost(
        gateway.url,
        "tools/call",
        {
          name: tool,
          arguments: {},
          inputResponses: { step2: { action: "accept", content: { color: "green" } } },
          requestState: second.body.result.requestState,
        },
        { meta: ELICITING },
      );
      expect(third.body.result).toMatchObject({ resultType: "complete", content: [{ type: "text", text: "Ada likes green" }] });
      // A state the upstream did not sign is refused by the upstream, and the refusal reaches the client.
      const tampered = await statelessPost(gateway.url, "tools/call", { name: tool, arguments: {}, requestState: `${state1}x` }, { meta: ELICITING });
      expect(tampered.body.error?.code).toBe(-32602);
    });
  }

  it("keeps 2025 clients in sessions of their own with the stdio upstream, next to 2026 clients' stateless requests", async () => {
    const client = new Client({ name: "session-client", version: "1" }, { capabilities: { elicitation: { form: {} } } });
    client.setRequestHandler("elicitation/create", () => ({ action: "accept", content: { username: "ada", email: "ada@example.com" } }));
    await client.connect(new StreamableHTTPClientTransport(new URL(gateway.url)));
    try {
      // The upstream asks with a 2025 server-to-client request in the client's own upstream session.
      const asked = await client.callTool({ name: "stdio__test_elicitation", arguments: { message: "Who are you?" } });
      expect(JSON.stringify(asked.content)).toContain("ada@example.com");
      // Meanwhile a 2026 client's request on the same service is stateless upstream: input_required.
      const stateless = await statelessPost(gateway.url, "tools/call", { name: "stdio__test_input_required_result_elicitation", arguments: {} }, { meta: ELICITING });
      expect(stateless.body.result).toMatchObject({ resultType: "input_required", inputRequests: { user_name: { method: "elicitation/create" } } });
    } finally {
      await client.close();
    }
  });

  it("restarts the stateless lane's child when it dies, and ends it with the executor (no orphan upstream processes)", async () => {
    const lane = runDmcp(["wrap", "--name", "lane", "--nats", nats.url, "--heartbeat", "500", "--", process.execPath, FIXTURE, "--stdio"]);
    try {
      await lane.waitFor(/executor serving/);
      const tool = "lane__test_input_required_result_elicitation";
      const first = await eventually(async () => {
        const answer = await statelessPost(gateway.url, "tools/call", { name: tool, arguments: {} }, { meta: ELICITING });
        return answer.body.result ? answer : undefined; // until the gateway has seen the service
      }, 30_000);
      expect(first.body.result).toMatchObject({ resultType: "input_required" });
      // The executor's initialized session and its stateless lane: two children of the same command,
      // the lane started second.
      const [session, laneChild] = childPids(lane.process.pid!);
      expect(childPids(lane.process.pid!)).toHaveLength(2);
      process.kill(laneChild!, "SIGKILL");
      const again = await eventually(
        async () => {
          const answer = await statelessPost(gateway.url, "tools/call", { name: tool, arguments: {} }, { meta: ELICITING });
          return answer.body.result ? answer : undefined; // UPSTREAM_UNAVAILABLE until the lane is back
        },
        30_000,
        200,
      );
      expect(again.body.result).toMatchObject({ resultType: "input_required" });
      const children = childPids(lane.process.pid!);
      expect(children).toHaveLength(2);
      expect(children).toContain(session);
      expect(children).not.toContain(laneChild);
      expect(await lane.stop()).toBe(0);
      await eventually(() => children.every((pid) => !alive(pid)), 10_000);
    } finally {
      await lane.stop();
    }
  });

  it("declares the upstreams' extensions and forwards the skills methods with the upstream's cache hints", async () => {
    // Both services declare the skills extension: the first in name order (remote, the HTTP one) owns it.
    const discover = await statelessPost(gateway.url, "server/discover");
    expect(Object.keys(discover.body.result.capabilities.extensions)).toEqual(expect.arrayContaining(["io.modelcontextprotocol/skills", "io.modelcontextprotocol/tasks"]));
    const listed = await statelessPost(gateway.url, "skills/list");
    expect(listed.body.result).toMatchObject({ resultType: "complete", ttlMs: 60_000, cacheScope: "public" });
    expect(JSON.stringify(listed.body.result)).toContain("release-notes");
    // A 2025 client sees the extension in initialize, and its methods work in the session too.
    const transport = new StreamableHTTPClientTransport(new URL(gateway.url));
    const client = new RawMcpClient(transport);
    await transport.start();
    try {
      const init = await client.request("initialize", { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "dmcp-test", version: "1" } });
      expect(Object.keys((init.result?.capabilities as Record<string, any> | undefined)?.extensions ?? {})).toContain("io.modelcontextprotocol/skills");
      transport.setProtocolVersion?.("2025-11-25");
      expect(JSON.stringify((await client.request("skills/list", {})).result)).toContain("release-notes");
    } finally {
      await client.close();
    }
  });

  it("resumes an HTTP upstream's POST stream that closes mid-call, for a 2025 client", async () => {
    const client = await RawMcpClient.connect(new StreamableHTTPClientTransport(new URL(gateway.url)));
    try {
      const answer = await client.request("tools/call", { name: "remote__test_reconnection", arguments: {} });
      expect(answer.result?.content).toEqual([{ type: "text", text: "Reconnection test completed" }]);
    } finally {
      await client.close();
    }
  });

  it("refuses extension methods under an access policy, which cannot judge them", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dmcp-ext-policy-"));
    writeFileSync(join(dir, "policy.json"), JSON.stringify({ default: "allow", rules: [] }));
    const guarded = await startGatewayHttp(nats.url, ["--policy", join(dir, "policy.json")]);
    try {
      const listed = await eventually(async () => {
        const answer = await statelessPost(guarded.url, "skills/list");
        return answer.body.error?.code === -32601 ? undefined : answer; // until the gateway has seen the services
      });
      expect(listed.body.error).toMatchObject({ code: -32019, message: expect.stringContaining("Forbidden") });
      // Tools stay usable: only the methods the policy cannot see are refused.
      const call = await call_(guarded.url, "remote__test_header_param", { region: "eu" }, { "Mcp-Param-Region": "eu" });
      expect(call.body.result?.content?.[0]?.text).toBe("region=eu");
    } finally {
      await guarded.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * A durable call whose request the caller's NATS user may not queue (no publish permission on the
 * service's work subject) fails at once with FORBIDDEN, not after its deadline with BUS_UNAVAILABLE:
 * a real nats-server enforcing a permission, `dmcp wrap --delivery durable`, `dmcp gateway`.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../../src/protocol/index.js";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { gatewayTransport, RawMcpClient } from "../support/mcp-client.js";
import { eventually, startGatewayHttp, wrapFixtureStdio, type Child } from "../support/processes.js";

const CONFIG = `authorization {
  users = [
    { user: gateway, password: gateway-secret, permissions: { publish: { allow: [">"], deny: ["dmcp.v1.work.secret.>"] }, subscribe: { allow: [">"] } } }
    { user: executor, password: executor-secret }
  ]
}
`;

describe("a durable call the caller may not queue", () => {
  let dir: string;
  let nats: EmbeddedNats;
  let executor: Child;
  let gateway: Child & { url: string };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dmcp-denied-"));
    writeFileSync(join(dir, "nats.conf"), CONFIG);
    nats = await startTestNats({ extraArgs: ["-c", join(dir, "nats.conf")] });
    executor = await wrapFixtureStdio(nats.url, "secret", ["--nats-user", "executor", "--nats-pass", "executor-secret", "--delivery", "durable"]);
    gateway = await startGatewayHttp(nats.url, ["--nats-user", "gateway", "--nats-pass", "gateway-secret", "--call-timeout", "15000"]);
  });

  afterAll(async () => {
    await Promise.allSettled([gateway?.stop(), executor?.stop()]);
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("fails with FORBIDDEN naming the service, without waiting for the deadline", async () => {
    const client = await RawMcpClient.connect(gatewayTransport("http", { natsUrl: nats.url, httpUrl: gateway.url }));
    try {
      await eventually(async () => ((await client.result("tools/list")).tools as { name: string }[]).some((tool) => tool.name === "echo"));
      const response = await client.request("tools/call", { name: "echo", arguments: { text: "let me in" } });
      expect(response.error).toMatchObject({ code: -32019, message: expect.stringContaining("secret") });
      expect(response.error?.data).toMatchObject({ dmcp_code: ErrorCode.Forbidden });
    } finally {
      await client.close();
    }
  });
});

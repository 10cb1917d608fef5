/**
 * `dmcp wrap --nostr` (ContextVM and DVMCP) and `dmcp gateway --nostr` contact only the relays they are given. A second
 * relay is named where the ContextVM SDK would look for more (the relay lists, kind 10002, of the
 * server and of the client) and must see no connection; and each process runs with a recorder of
 * every socket it opens, none of which may leave loopback. A call crosses both processes: a
 * ContextVM client calls the gateway, whose bus reaches the wrapped ContextVM and DVMCP servers.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { finalizeEvent, generateSecretKey, getPublicKey } from "nostr-tools";
import { Relay, useWebSocketImplementation } from "nostr-tools/relay";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { contextVmClient } from "../support/contextvm-client.js";
import { startContextVmServer, type ContextVmServer } from "../support/contextvm-server.js";
import { type DvmcpServer, startDvmcpServer } from "../support/dvmcp-server.js";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { startTestRelay, type TestRelay } from "../support/nostr-relay.js";
import { DMCP_BIN, eventually, REPO_ROOT, spawnNode, type Child } from "../support/processes.js";

useWebSocketImplementation(WebSocket);

const RECORDER = `${REPO_ROOT}dist/test/support/fixtures/connect-recorder.js`;
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+|localhost)$/;

interface Connection {
  host?: string;
  port?: unknown;
  path?: string;
}

const connectionsIn = (file: string): Connection[] =>
  readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Connection);

describe("Nostr processes contact only the relays they are given", () => {
  let nats: EmbeddedNats;
  let given: TestRelay;
  let other: TestRelay;
  let server: ContextVmServer;
  let dvmcpServer: DvmcpServer;
  let executor: Child;
  let dvmcpExecutor: Child;
  let gateway: Child;
  let client: Client;
  let dir: string;
  const clientSecret = generateSecretKey();
  const gatewaySecret = generateSecretKey();

  /** `dmcp ARGS` with every socket it opens written to `log`. */
  const recorded = (log: string, args: string[]) => spawnNode(["--import", RECORDER, DMCP_BIN, ...args], { env: { DMCP_TEST_CONNECT_LOG: log } });

  /** A relay list (NIP-65, kind 10002) of `secret`'s key that names only the other relay. */
  async function relayListNamingTheOther(secret: Uint8Array): Promise<void> {
    const relay = await Relay.connect(given.url);
    try {
      await relay.publish(finalizeEvent({ kind: 10002, created_at: Math.floor(Date.now() / 1000), tags: [["r", other.url]], content: "" }, secret));
    } finally {
      relay.close();
    }
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dmcp-nostr-relays-"));
    writeFileSync(join(dir, "gateway.key"), Buffer.from(gatewaySecret).toString("hex"));
    [nats, given, other] = await Promise.all([startTestNats(), startTestRelay(), startTestRelay()]);
    [server, dvmcpServer] = await Promise.all([startContextVmServer(given.url), startDvmcpServer(given.url)]);
    await Promise.all([server.secretKey, dvmcpServer.secretKey, clientSecret].map(relayListNamingTheOther));
    executor = recorded(join(dir, "wrap.log"), ["wrap", "--name", "far", "--nats", nats.url, "--nostr", server.pubkey, "--relay", given.url]);
    gateway = recorded(join(dir, "gateway.log"), ["gateway", "--nats", nats.url, "--nostr", "--relay", given.url, "--nostr-key", join(dir, "gateway.key")]);
    dvmcpExecutor = recorded(join(dir, "wrap-dvmcp.log"), [
      "wrap",
      "--name",
      "older",
      "--nats",
      nats.url,
      "--nostr",
      dvmcpServer.pubkey,
      "--relay",
      given.url,
      "--nostr-dialect",
      "dvmcp",
    ]);
    await Promise.all([executor.waitFor(/executor serving/), dvmcpExecutor.waitFor(/executor serving/), gateway.waitFor(/serving MCP on Nostr/)]);
    client = await contextVmClient(given.url, getPublicKey(gatewaySecret), clientSecret);
    // A deadline, not a timing assert: several processes start here, slowly on a loaded machine.
  }, 180_000);

  afterAll(async () => {
    await client?.close();
    await gateway?.stop();
    await executor?.stop();
    await dvmcpExecutor?.stop();
    await server?.stop();
    await dvmcpServer?.stop();
    await Promise.all([given?.stop(), other?.stop()]);
    await nats?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("passes a ContextVM client's call through the gateway and the bus to a wrapped ContextVM server, and to a wrapped DVMCP one", async () => {
    // Both servers have the same tools: the gateway names them by service.
    await eventually(async () => (await client.listTools()).tools.filter((tool) => ["far__echo", "older__echo"].includes(tool.name)).length === 2 || undefined);
    expect(await client.callTool({ name: "far__echo", arguments: { text: "two hops" } })).toMatchObject({ content: [{ type: "text", text: "echo: two hops" }] });
    expect(await client.callTool({ name: "older__echo", arguments: { text: "to DVMCP" } })).toMatchObject({ content: [{ type: "text", text: "echo: to DVMCP" }] });
  });

  it("leaves the relay named only in the relay lists alone", () => {
    expect(other.connections).toBe(0);
    // The given one was used (by both processes and the test's own peers).
    expect(given.connections).toBeGreaterThanOrEqual(6);
  });

  it.each(["wrap", "wrap-dvmcp", "gateway"])("dmcp %s --nostr opens no socket beyond loopback, and its relay's among them", (name) => {
    const connections = connectionsIn(join(dir, `${name}.log`));
    const relayPort = Number(new URL(given.url).port);
    expect(connections.filter((c) => c.port !== undefined && Number(c.port) === relayPort && LOOPBACK.test(c.host ?? ""))).not.toEqual([]);
    expect(connections.filter((c) => c.path === undefined && !LOOPBACK.test(c.host ?? ""))).toEqual([]);
  });
});

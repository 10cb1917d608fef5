/**
 * deploy/cluster/ run for real on loopback ports: three nats-servers from its nats-cluster.conf, two
 * gateways behind HAProxy from its haproxy.cfg (round-robin per request), one service wrapped twice,
 * each executor on its own NATS node, as compose.yaml wires them. The compose file itself needs a
 * container engine; what it passes to these files is checked against them here. A 2025-11-25 session
 * keeps working across both gateways, and through the one left when the other is SIGKILLed.
 */
import { readFileSync } from "node:fs";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEPLOY_DIR, startDeployBalancer, startDeployNats, type DeployBalancer, type DeployNats } from "../support/deploy.js";
import { eventually, startGatewayHttp, wrapFixtureStdio, type Child } from "../support/processes.js";
import { statelessPost } from "../support/stateless-client.js";

const SERVICE = "everything";

/** `whoami` through the balancer on the 2026-07-28 wire: the answering executor's "<name>:<pid>". */
async function whoami(url: string): Promise<string> {
  const answer = await statelessPost(url, "tools/call", { name: "whoami", arguments: {} });
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  expect(answer.body.result, JSON.stringify(answer.body)).toBeDefined();
  return (answer.body.result.content as { text: string }[])[0]!.text;
}

function sdkText(result: Awaited<ReturnType<Client["callTool"]>>): string {
  return (result.content as { type: string; text?: string }[]).map((part) => part.text ?? "").join("");
}

describe("deploy/cluster: the files compose.yaml runs", () => {
  const compose = readFileSync(`${DEPLOY_DIR}compose.yaml`, "utf8");

  it("gives HAProxy and every NATS node each variable their files read", () => {
    const haproxyVariables = [...readFileSync(`${DEPLOY_DIR}haproxy.cfg`, "utf8").matchAll(/"\$\{(\w+)\}"/g)].map((match) => match[1]);
    const natsVariables = [...readFileSync(`${DEPLOY_DIR}nats-cluster.conf`, "utf8").matchAll(/\$(\w+)/g)].map((match) => match[1]);
    expect(haproxyVariables.sort()).toEqual(["GATEWAY_A", "GATEWAY_B", "LB_BIND"]);
    expect(natsVariables.length).toBeGreaterThan(5);
    for (const variable of [...haproxyVariables, ...natsVariables]) expect(compose).toMatch(new RegExp(`\\b${variable}:`));
  });

  it("gives every dMCP process all three seeds, a different one first", () => {
    const seeds = [...compose.matchAll(/"--nats", "([^"]+)"/g)].map((match) => match[1]!);
    expect(seeds).toHaveLength(4);
    for (const list of seeds) expect(list.split(",").sort()).toEqual(["nats://nats-1:4222", "nats://nats-2:4222", "nats://nats-3:4222"]);
    // gateway-a, gateway-b, everything-1, everything-2: the two executors on two different nodes.
    expect(seeds.map((list) => list.split(",")[0])).toEqual(["nats://nats-1:4222", "nats://nats-2:4222", "nats://nats-2:4222", "nats://nats-3:4222"]);
  });
});

describe("deploy/cluster on loopback: a 3-node cluster, two gateways behind HAProxy, executors on two nodes", () => {
  let nats: DeployNats;
  let gateways: (Child & { url: string })[];
  let executors: Child[];
  let balancer: DeployBalancer;

  beforeAll(async () => {
    nats = await startDeployNats();
    gateways = await Promise.all([0, 1].map((node) => startGatewayHttp(nats.seedsFrom(node))));
    // As in compose.yaml: the executors' first seeds are nodes 2 and 3 (indexes 1 and 2).
    executors = await Promise.all([1, 2].map((node) => wrapFixtureStdio(nats.seedsFrom(node), SERVICE)));
    balancer = await startDeployBalancer(...(gateways.map((gateway) => new URL(gateway.url).host) as [string, string]));
  }, 180_000);

  afterAll(async () => {
    await balancer?.process.stop();
    await Promise.all([...(executors ?? []), ...(gateways ?? [])].map((child) => child.stop()));
    await nats?.stop();
  });

  it("shares requests between both gateways and calls between both executors", async () => {
    const before = balancer.served();
    const answeredBy = new Set<string>();
    for (let call = 0; call < 20; call++) answeredBy.add(await whoami(balancer.url));
    const after = balancer.served();
    for (const gateway of ["gateway-a", "gateway-b"]) expect((after[gateway] ?? 0) - (before[gateway] ?? 0)).toBeGreaterThanOrEqual(5);
    expect(answeredBy.size).toBe(2);
  }, 60_000);

  it("keeps a 2025-11-25 session whose requests land on both gateways", async () => {
    const client = new Client({ name: "deploy-test", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(balancer.url)));
    try {
      const before = balancer.served();
      for (let call = 0; call < 10; call++) {
        expect(sdkText(await client.callTool({ name: "echo", arguments: { text: `call ${call}` } }))).toContain(`call ${call}`);
      }
      const after = balancer.served();
      for (const gateway of ["gateway-a", "gateway-b"]) expect((after[gateway] ?? 0) - (before[gateway] ?? 0)).toBeGreaterThan(0);
    } finally {
      await client.close();
    }
  }, 60_000);

  it("serves every call through the other gateway once one is SIGKILLed, and through the nodes left once an executor's node is", async () => {
    const session = new Client({ name: "deploy-test", version: "1.0.0" });
    await session.connect(new StreamableHTTPClientTransport(new URL(balancer.url)));
    gateways[0]!.kill("SIGKILL");
    await gateways[0]!.exited;
    // Calls go on at once: a refused connection is retried on the other gateway, which serves the
    // 2025-11-25 session too (its state is on the bus).
    for (let call = 0; call < 10; call++) expect(await whoami(balancer.url)).toMatch(new RegExp(`^${SERVICE}:`));
    for (let call = 0; call < 5; call++) {
      expect(sdkText(await session.callTool({ name: "echo", arguments: { text: `after the kill ${call}` } }))).toContain(`after the kill ${call}`);
    }
    await session.close();

    nats.kill(1);
    // Calls go on through the nodes left. Which executor answers depends on where gateway-b lands:
    // a NATS server hands a queue group's message to a subscriber on itself before one on another.
    await eventually(async () => (await whoami(balancer.url)).startsWith(`${SERVICE}:`), 60_000);
    // The executor of the node lost reconnects to another and serves: with the other one stopped,
    // every call is its.
    await executors[1]!.stop();
    await eventually(async () => (await whoami(balancer.url)).startsWith(`${SERVICE}:`), 60_000);
    for (let call = 0; call < 5; call++) expect(await whoami(balancer.url)).toMatch(new RegExp(`^${SERVICE}:`));
  }, 120_000);
});

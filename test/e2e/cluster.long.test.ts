/**
 * dMCP on a real 3-node nats-server cluster (and a leafnode server attached to it), on Debian's 2.9
 * and, when fetched, on a current server: seed lists with a dead seed, calls that go on after the node
 * a gateway is connected to is SIGKILLed, 3 replicas for every stream and bucket (and a warning for
 * one that has fewer), executors behind a leafnode through a JetStream domain. Real gateway, real
 * executors wrapping npm MCP servers, the MCP SDK's client.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { jetstreamManager, RetentionPolicy, type JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultStreamReplicas, seedUrls } from "../../src/bus/connection.js";
import { natsConnection } from "../../src/cli/args.js";
import { DEAD_LETTER_STREAM, subjects, WORK_STREAM } from "../../src/protocol/index.js";
import { serverGenerations, startTestCluster, startTestLeafnode, type TestCluster } from "../support/cluster.js";
import type { EmbeddedNats } from "../support/nats.js";
import { freePort, REPO_ROOT, runDmcp, startGatewayHttp, type Child } from "../support/processes.js";

const EVERYTHING_BIN = `${REPO_ROOT}node_modules/@modelcontextprotocol/server-everything/dist/index.js`;
const MEMORY_BIN = `${REPO_ROOT}node_modules/@modelcontextprotocol/server-memory/dist/index.js`;
const DOMAIN = "hub";

async function wrap(nats: string, name: string, server: string[], extra: string[] = []): Promise<Child> {
  const child = runDmcp(["wrap", "--name", name, "--nats", nats, "--heartbeat", "500", ...extra, "--", process.execPath, ...server]);
  await child.waitFor(/executor serving/, 30_000);
  return child;
}

async function sdkClient(url: string): Promise<Client> {
  const client = new Client({ name: "cluster-test", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  return client;
}

function text(result: Awaited<ReturnType<Client["callTool"]>>): string {
  return (result.content as { type: string; text?: string }[]).map((part) => part.text ?? "").join("");
}

/**
 * Calls server-everything's echo (as `tool`) one call after another until one is answered, from now
 * (a fault just injected): how long that took, and how many calls failed before. Bounded: 60 s of
 * calls, each with its own limit.
 */
async function callUntilAnswered(client: Client, tool: string, message: string, timeoutMs: number): Promise<{ resumedAfterMs: number | undefined; failures: number }> {
  const since = performance.now();
  let failures = 0;
  while (performance.now() - since < 60_000) {
    const answer = await client
      .callTool({ name: tool, arguments: { message } }, { timeout: timeoutMs })
      .then(text)
      .catch(() => undefined);
    if (answer === `Echo: ${message}`) return { resumedAfterMs: performance.now() - since, failures };
    failures++;
  }
  return { resumedAfterMs: undefined, failures };
}

/** The dead-letter stream as a gateway would make it, but with one replica: made by hand before any gateway ran. */
async function addOneReplicaStream(jsm: JetStreamManager): Promise<void> {
  await jsm.streams.add({ name: DEAD_LETTER_STREAM, subjects: [subjects.deadLetterAll()], retention: RetentionPolicy.Limits, num_replicas: 1 });
}

describe("the NATS options of a cluster", () => {
  it("splits comma-separated seed URLs, in --nats and in a bus's servers", () => {
    expect(natsConnection({ nats: "nats://a:4222, nats://b:4222,,nats://c:4222" }).servers).toEqual(["nats://a:4222", "nats://b:4222", "nats://c:4222"]);
    expect(seedUrls(["nats://a:4222,nats://b:4222", "nats://c:4222"])).toEqual(["nats://a:4222", "nats://b:4222", "nats://c:4222"]);
  });

  it("refuses --nats without a URL, a --js-domain that is no name and --stream-replicas that is not a positive whole number", () => {
    expect(() => natsConnection({ nats: " , " })).toThrow(/--nats needs a NATS URL or comma-separated URLs/);
    expect(() => natsConnection({ nats: "nats://a:4222", "js-domain": "a.b" })).toThrow(/--js-domain needs a name of letters, digits, - and _/);
    expect(() => natsConnection({ nats: "nats://a:4222", "stream-replicas": "0" })).toThrow(/--stream-replicas needs a positive whole number/);
    expect(natsConnection({ nats: "nats://a:4222", "js-domain": "hub", "stream-replicas": "3" })).toMatchObject({ jsDomain: "hub", streamReplicas: 3 });
  });

  it("creates streams with 3 replicas on a cluster of three or more servers, else 1", () => {
    const urls = ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4"];
    expect(defaultStreamReplicas(undefined)).toBe(1);
    expect(defaultStreamReplicas({ connect_urls: urls })).toBe(1);
    expect(defaultStreamReplicas({ cluster: "c", connect_urls: urls.slice(0, 2) })).toBe(1);
    expect(defaultStreamReplicas({ cluster: "c", connect_urls: urls.slice(0, 3) })).toBe(3);
    expect(defaultStreamReplicas({ cluster: "c", connect_urls: urls })).toBe(3);
  });
});

describe.each(serverGenerations())("a 3-node cluster on $label", ({ binary }) => {
  let cluster: TestCluster;
  let raw: NatsConnection;
  let jsm: JetStreamManager;
  let deadSeed: string;
  let gateway: Child & { url: string };
  let everything: Child;
  let client: Client;
  const leaves: { stop(): Promise<void> }[] = [];
  const children: Child[] = [];
  const tempDirs: string[] = [];

  beforeAll(async () => {
    cluster = await startTestCluster({ binary, leafnodes: true, jsDomain: DOMAIN });
    raw = await connect({ servers: cluster.seeds.split(",") });
    jsm = await jetstreamManager(raw);
    await addOneReplicaStream(jsm);
    // Nothing listens there: the first seed every process is given is dead.
    deadSeed = `nats://127.0.0.1:${await freePort()},${cluster.seeds}`;
    gateway = await startGatewayHttp(deadSeed);
    everything = await wrap(deadSeed, "everything", [EVERYTHING_BIN, "stdio"]);
    client = await sdkClient(gateway.url);
  }, 120_000);

  afterAll(async () => {
    await client?.close();
    await Promise.all([gateway, everything, ...children].map((child) => child?.stop()));
    for (const leaf of leaves) await leaf.stop();
    await raw?.close();
    await cluster?.stop();
    await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  it("serves calls to a gateway and an executor whose first seed is dead", async () => {
    expect(text(await client.callTool({ name: "echo", arguments: { message: "through the cluster" } }))).toBe("Echo: through the cluster");
  });

  it("runs dmcp status with a dead seed first and last in --nats", async () => {
    const status = runDmcp(["status", "--nats", `${deadSeed},nats://127.0.0.1:9`, "--json"]);
    const stdout: string[] = [];
    status.process.stdout!.on("data", (chunk: Buffer) => stdout.push(chunk.toString()));
    expect(await status.exited).toBe(0);
    const { services } = JSON.parse(stdout.join("")) as { services: Record<string, { tools: string[] }> };
    expect(services.everything?.tools).toContain("echo");
  });

  it("gives every stream and bucket it creates 3 replicas, and warns about an existing one with 1", async () => {
    const replicas: Record<string, number> = {};
    for await (const info of jsm.streams.list()) replicas[info.config.name] = info.config.num_replicas;
    expect(Object.keys(replicas).length).toBeGreaterThanOrEqual(5);
    expect(replicas[DEAD_LETTER_STREAM]).toBe(1);
    const others = Object.entries(replicas).filter(([name]) => name !== DEAD_LETTER_STREAM);
    expect(others.filter(([, count]) => count !== 3)).toEqual([]);
    const warning = await gateway.waitFor(new RegExp(`the JetStream stream ${DEAD_LETTER_STREAM} has 1 replica, fewer than the 3`));
    expect(warning.input).toContain(`nats stream edit ${DEAD_LETTER_STREAM} --replicas 3`);
  });

  it("goes on serving calls after the node the gateway is connected to is SIGKILLed", async () => {
    const node = await cluster.nodeOf("dmcp-gateway");
    expect(node).toBeDefined();
    const executorNode = await cluster.nodeOf("dmcp-wrap-everything");
    cluster.kill(node!);
    const { resumedAfterMs, failures } = await callUntilAnswered(client, "echo", "after the kill", 2_000);
    console.log(
      `[cluster figure] ${binary ? "current" : "system"} nats-server: calls resumed ${resumedAfterMs?.toFixed(0)} ms after SIGKILL of the gateway's node ` +
        `(executor on ${executorNode === node ? "the same" : "another"} node; ${failures} failed calls before)`,
    );
    expect(resumedAfterMs).toBeDefined();
    await cluster.restart(node!);
    expect(text(await client.callTool({ name: "echo", arguments: { message: "after the restart" } }))).toBe("Echo: after the restart");
  }, 120_000);

  it("answers durable calls again after the node leading the work stream is SIGKILLed", async () => {
    children.push(await wrap(deadSeed, "queued", [EVERYTHING_BIN, "stdio"], ["--delivery", "durable"]));
    expect(text(await client.callTool({ name: "queued__echo", arguments: { message: "queued" } }))).toBe("Echo: queued");
    const leader = (await jsm.streams.info(WORK_STREAM)).cluster?.leader;
    const node = Number(leader?.replace(/^n/, "")) - 1;
    expect(cluster.nodes[node]).toBeDefined();
    const gatewayNode = await cluster.nodeOf("dmcp-gateway");
    cluster.kill(node);
    const { resumedAfterMs, failures } = await callUntilAnswered(client, "queued__echo", "after the leader's kill", 15_000);
    console.log(
      `[cluster figure] ${binary ? "current" : "system"} nats-server: a durable call answered ${resumedAfterMs?.toFixed(0)} ms after SIGKILL of the work stream's leader ` +
        `(gateway on ${gatewayNode === node ? "that" : "another"} node; ${failures} failed calls before)`,
    );
    expect(resumedAfterMs).toBeDefined();
    await cluster.restart(node);
  }, 120_000);

  it("refuses an executor on a leafnode server without a JetStream domain, advising --js-domain", async () => {
    const leaf = await startTestLeafnode(cluster, { binary });
    leaves.push(leaf);
    const status = runDmcp(["status", "--nats", leaf.url]);
    expect(await status.exited).toBe(1);
    expect(status.stderr.join("\n")).toContain("give the cluster's JetStream domain with --js-domain");
  });

  it("serves direct and durable calls through an executor on a leafnode server given --js-domain", async () => {
    const leaf = await startTestLeafnode(cluster, { binary });
    leaves.push(leaf);
    // A graph file of this run's own: server-memory keeps its graph next to its code otherwise.
    const dir = await mkdtemp(join(tmpdir(), "dmcp-memory-"));
    tempDirs.push(dir);
    const graph = join(dir, "memory.jsonl");
    children.push(await wrap(leaf.url, "memory", [MEMORY_BIN], ["--js-domain", DOMAIN, "--delivery", "durable", "--env", `MEMORY_FILE_PATH=${graph}`]));
    children.push(await wrap(leaf.url, "edge", [EVERYTHING_BIN, "stdio"], ["--js-domain", DOMAIN]));
    const created = await client.callTool({
      name: "memory__create_entities",
      arguments: { entities: [{ name: "leaf", entityType: "server", observations: ["behind a leafnode"] }] },
    });
    expect(text(created)).toContain("behind a leafnode");
    expect(text(await client.callTool({ name: "memory__read_graph", arguments: {} }))).toContain("behind a leafnode");
    expect(text(await client.callTool({ name: "edge__echo", arguments: { message: "from the edge" } }))).toBe("Echo: from the edge");
  }, 120_000);

  it("dmcp up on a leafnode server takes nats.jsDomain and nats.streamReplicas from its config", async () => {
    const leaf = await startTestLeafnode(cluster, { binary });
    leaves.push(leaf);
    const dir = await mkdtemp(join(tmpdir(), "dmcp-up-leaf-"));
    tempDirs.push(dir);
    const config = join(dir, "dmcp.config.json");
    await writeFile(config, JSON.stringify({ nats: { url: leaf.url, jsDomain: DOMAIN, streamReplicas: 5 }, servers: {} }));
    const up = runDmcp(["up", "--config", config, "--no-http", "--data-dir", dir]);
    children.push(up);
    await up.waitFor(/^dmcp up: MCP not served here \(.*\); NATS at /, 30_000);
    // The streams exist with 3 replicas: asked for 5, dmcp up says so and uses them.
    await up.waitFor(new RegExp(`the JetStream stream ${WORK_STREAM} has 3 replicas, fewer than the 5`));
  }, 60_000);

  it("serves calls through an executor on a leafnode server whose config maps the account to the domain (default_js_domain)", async () => {
    const leaf: EmbeddedNats & { stop(): Promise<void> } = await startTestLeafnode(cluster, { binary, config: `default_js_domain: { "$G": "${DOMAIN}" }` });
    leaves.push(leaf);
    children.push(await wrap(leaf.url, "mapped", [EVERYTHING_BIN, "stdio"], ["--delivery", "durable"]));
    expect(text(await client.callTool({ name: "mapped__echo", arguments: { message: "mapped" } }))).toBe("Echo: mapped");
  }, 120_000);
});

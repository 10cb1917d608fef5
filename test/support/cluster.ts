/**
 * Test helpers for many machines on one: a real nats-server cluster (routes between its nodes,
 * JetStream with a store per node) on free loopback ports, and leafnode servers attached to it.
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { startNatsServer, type EmbeddedNats } from "../../src/bus/nats-server.js";
import { eventually, freePort, REPO_ROOT } from "./processes.js";

/** The nats-server generations the cluster tests run on: the system's (Debian's 2.9) and, when fetched, a current one. */
export function serverGenerations(): { label: string; binary: string | undefined }[] {
  const current = process.env.NATS_SERVER_CURRENT_BIN ?? `${REPO_ROOT}.cache/nats-server-current/root/usr/sbin/nats-server`;
  const generations = [{ label: "the system's nats-server", binary: undefined as string | undefined }];
  if (existsSync(current)) generations.push({ label: "a current nats-server", binary: current });
  else console.warn(`no current nats-server at ${current}: run scripts/fetch-current-nats-server.sh to run the cluster tests on it too`);
  return generations;
}

export interface TestClusterOptions {
  /** Nodes in the cluster (default 3). */
  size?: number;
  binary?: string | undefined;
  /** A JetStream domain for the cluster's JetStream (what leafnode clients address it by). */
  jsDomain?: string;
  /** Each node also accepts leafnode connections. */
  leafnodes?: boolean;
}

export interface TestCluster {
  readonly nodes: EmbeddedNats[];
  /** The nodes' client URLs, comma-separated: what --nats takes for a cluster. */
  readonly seeds: string;
  /** The domain of the cluster's JetStream, if it has one. */
  readonly jsDomain: string | undefined;
  /** The nodes' leafnode URLs (with `leafnodes: true`). */
  readonly leafUrls: string[];
  /** The index of the node a client connection of this name (its NATS connection name) is on, if any. */
  nodeOf(connectionName: string): Promise<number | undefined>;
  /** The indexes of the nodes that client connections of this name are on. */
  nodesOf(connectionName: string): Promise<number[]>;
  /** SIGKILLs one node. */
  kill(index: number): void;
  /** Starts a killed node again on its ports and store, and waits until JetStream has its quorum back. */
  restart(index: number): Promise<void>;
  /** Resolves once the routes are up and JetStream has a meta leader that places streams on every node. */
  ready(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts a cluster of `size` nodes and resolves once it is ready. Call `stop()` in afterAll. */
export async function startTestCluster(options: TestClusterOptions = {}): Promise<TestCluster> {
  const size = options.size ?? 3;
  const dir = await mkdtemp(join(tmpdir(), "dmcp-cluster-"));
  const routePorts = await Promise.all(Array.from({ length: size }, () => freePort()));
  const leafPorts = options.leafnodes ? await Promise.all(Array.from({ length: size }, () => freePort())) : [];
  const monitorPorts = await Promise.all(Array.from({ length: size }, () => freePort()));
  const nodes: EmbeddedNats[] = [];
  try {
    for (let index = 0; index < size; index++) {
      const routes = routePorts.filter((_, other) => other !== index).map((port) => `"nats-route://127.0.0.1:${port}"`);
      const config = [
        `server_name: "n${index + 1}"`,
        `http: "127.0.0.1:${monitorPorts[index]}"`,
        `cluster { name: "dmcp-test", listen: "127.0.0.1:${routePorts[index]}", routes: [${routes.join(", ")}] }`,
        options.leafnodes ? `leafnodes { listen: "127.0.0.1:${leafPorts[index]}" }` : "",
        options.jsDomain ? `jetstream { domain: "${options.jsDomain}" }` : "",
      ].join("\n");
      const file = join(dir, `n${index + 1}.conf`);
      await writeFile(file, config);
      nodes.push(await startNatsServer({ host: "127.0.0.1", port: -1, jetstream: true, binary: options.binary, extraArgs: ["-c", file] }));
    }
  } catch (err) {
    await Promise.all(nodes.map((node) => node.stop()));
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const cluster: TestCluster = {
    nodes,
    seeds: nodes.map((node) => node.url).join(","),
    jsDomain: options.jsDomain,
    leafUrls: leafPorts.map((port) => `nats-leaf://127.0.0.1:${port}`),
    async nodeOf(connectionName) {
      return (await cluster.nodesOf(connectionName))[0];
    },
    async nodesOf(connectionName) {
      const found: number[] = [];
      for (const [index, port] of monitorPorts.entries()) {
        const connz = (await fetch(`http://127.0.0.1:${port}/connz?limit=1024`)
          .then((response) => response.json())
          .catch(() => ({ connections: [] }))) as { connections?: { name?: string }[] };
        if ((connz.connections ?? []).some((connection) => connection.name === connectionName)) found.push(index);
      }
      return found;
    },
    kill: (index) => nodes[index]!.kill("SIGKILL"),
    async restart(index) {
      await nodes[index]!.restart();
      await cluster.ready();
      await waitForStreamsCurrent(nodes, options.jsDomain);
    },
    ready: () => waitForQuorum(nodes, options.jsDomain),
    async stop() {
      await Promise.all(nodes.map((node) => node.stop()));
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await cluster.ready();
  } catch (err) {
    // A cluster that never became ready is not left running.
    await cluster.stop();
    throw err;
  }
  return cluster;
}

/**
 * Waits until a stream with a replica on every node can be made (and removes it): the routes are up,
 * JetStream has a meta leader, and every node takes part.
 */
async function waitForQuorum(nodes: EmbeddedNats[], domain: string | undefined): Promise<void> {
  const nc = await connect({ servers: nodes.map((node) => node.url), name: "cluster-ready" });
  try {
    // No API check at creation: JetStream may have no meta leader yet, which is what is awaited.
    const jsm = await jetstreamManager(nc, { timeout: 2_000, checkAPI: false, ...(domain ? { domain } : {}) });
    await eventually(
      async () => {
        await jsm.streams.add({ name: "CLUSTER_READY", subjects: ["cluster.ready"], num_replicas: nodes.length });
        return jsm.streams.delete("CLUSTER_READY");
      },
      30_000,
      250,
    );
  } finally {
    await nc.close();
  }
}

/** Waits until every stream has a leader and all its replicas are current (a restarted node has caught up). */
async function waitForStreamsCurrent(nodes: EmbeddedNats[], domain: string | undefined): Promise<void> {
  const nc = await connect({ servers: nodes.map((node) => node.url), name: "cluster-current" });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 2_000, checkAPI: false, ...(domain ? { domain } : {}) });
    await eventually(
      async () => {
        for await (const info of jsm.streams.list()) {
          const cluster = info.cluster;
          if (!cluster?.leader || (cluster.replicas ?? []).some((replica) => !replica.current || replica.offline)) return false;
        }
        return true;
      },
      30_000,
      250,
    );
  } finally {
    await nc.close();
  }
}

export interface TestLeafnodeOptions {
  binary?: string | undefined;
  /** JetStream on the leaf server itself (default off: a leaf that only relays to the cluster). */
  jetstream?: boolean;
  /** Extra lines of the leaf server's config (e.g. `default_js_domain`). */
  config?: string;
}

/** Leaf servers started so far: each gets a name of its own (servers of one name confuse the cluster). */
let leafCount = 0;

/** A nats-server attached to the cluster's leafnode ports as a leafnode; resolves once the leaf link is up. */
export async function startTestLeafnode(cluster: TestCluster, options: TestLeafnodeOptions = {}): Promise<EmbeddedNats & { stop(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "dmcp-leaf-"));
  const urls = cluster.leafUrls.map((url) => `"${url}"`).join(", ");
  const file = join(dir, "leaf.conf");
  await writeFile(file, [`server_name: "leaf-${++leafCount}"`, `leafnodes { remotes: [ { urls: [${urls}] } ] }`, options.config ?? ""].join("\n"));
  const leaf = await startNatsServer({ host: "127.0.0.1", port: -1, jetstream: options.jetstream ?? false, binary: options.binary, extraArgs: ["-c", file] });
  const stopLeaf = leaf.stop.bind(leaf);
  const stop = async () => {
    await stopLeaf();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitForLeafLink(leaf.url, cluster.seeds);
    if (cluster.jsDomain) await waitForJetStreamThrough(leaf.url, cluster.jsDomain);
  } catch (err) {
    await stop();
    throw err;
  }
  return Object.assign(leaf, { stop });
}

/** Resolves once the cluster's JetStream answers, in its domain, a client of the leaf server. */
async function waitForJetStreamThrough(leafUrl: string, domain: string): Promise<void> {
  const edge = await connect({ servers: leafUrl, name: "leaf-ready-jetstream" });
  try {
    const jsm = await jetstreamManager(edge, { timeout: 1_000, checkAPI: false, domain });
    await eventually(() => jsm.getAccountInfo(), 30_000, 100);
  } finally {
    await edge.close();
  }
}

/** Resolves once a request sent on the leaf server is answered on the cluster: the leaf link carries traffic. */
async function waitForLeafLink(leafUrl: string, seeds: string): Promise<void> {
  const hub = await connect({ servers: seeds.split(","), name: "leaf-ready-hub" });
  const edge = await connect({ servers: leafUrl, name: "leaf-ready-edge" });
  try {
    hub.subscribe("leaf.ready", { callback: (_err, msg) => void msg.respond() });
    await hub.flush();
    await eventually(() => edge.request("leaf.ready", undefined, { timeout: 500 }), 30_000, 100);
  } finally {
    await edge.close();
    await hub.close();
  }
}

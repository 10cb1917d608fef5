/**
 * The topology of deploy/cluster/ on loopback ports, from the same files the compose file runs: three
 * nats-servers from `nats-cluster.conf` and HAProxy from `haproxy.cfg`, each given by its environment
 * what compose gives it.
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findNatsServerBinary } from "../../src/bus/nats-server.js";
import { eventually, freePort, REPO_ROOT, spawnProgram, type Child } from "./processes.js";

export const DEPLOY_DIR = `${REPO_ROOT}deploy/cluster/`;

export interface DeployNats {
  /** Node i's client URL. */
  readonly urls: string[];
  /** The three seeds with node `first` first, as the compose file gives each process its own node first. */
  seedsFrom(first: number): string;
  /** SIGKILLs node i. */
  kill(index: number): void;
  stop(): Promise<void>;
}

/** Three nodes of `nats-cluster.conf`; resolves once JetStream has a meta leader on every node. */
export async function startDeployNats(): Promise<DeployNats> {
  const binary = findNatsServerBinary();
  if (!binary) throw new Error("nats-server not found (scripts/ensure-nats-server.sh installs it)");
  const dir = await mkdtemp(join(tmpdir(), "dmcp-deploy-"));
  const ports = await Promise.all(Array.from({ length: 9 }, () => freePort()));
  const client = ports.slice(0, 3);
  const route = ports.slice(3, 6);
  const monitor = ports.slice(6, 9);
  const routes = Object.fromEntries(route.map((port, index) => [`ROUTE_${index + 1}`, `nats-route://127.0.0.1:${port}`]));
  const nodes: Child[] = [0, 1, 2].map((index) =>
    spawnProgram(binary, ["-c", `${DEPLOY_DIR}nats-cluster.conf`], {
      env: {
        SERVER_NAME: `nats-${index + 1}`,
        CLIENT_LISTEN: `127.0.0.1:${client[index]}`,
        MONITOR_LISTEN: `127.0.0.1:${monitor[index]}`,
        ROUTE_LISTEN: `127.0.0.1:${route[index]}`,
        STORE_DIR: join(dir, `nats-${index + 1}`),
        ...routes,
      },
    }),
  );
  const urls = client.map((port) => `nats://127.0.0.1:${port}`);
  const stop = async () => {
    await Promise.all(nodes.map((node) => node.stop()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    // Ready: every node reports the same JetStream meta leader and a cluster of three.
    await eventually(async () => {
      const leaders = await Promise.all(
        monitor.map((port) =>
          fetch(`http://127.0.0.1:${port}/jsz`)
            .then((response) => response.json() as Promise<{ meta_cluster?: { leader?: string; cluster_size?: number } }>)
            .then((jsz) => (jsz.meta_cluster?.cluster_size === 3 ? jsz.meta_cluster.leader : undefined)),
        ),
      );
      return leaders.every((leader) => leader && leader === leaders[0]);
    }, 60_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    urls,
    seedsFrom: (first) => [0, 1, 2].map((offset) => urls[(first + offset) % 3]).join(","),
    kill: (index) => nodes[index]!.kill("SIGKILL"),
    stop,
  };
}

export interface DeployBalancer {
  readonly url: string;
  readonly process: Child;
  /** How many requests HAProxy has logged as served by each gateway (`gateway-a`, `gateway-b`). */
  served(): Record<string, number>;
}

export function haproxyBinary(): string {
  return execFileSync("sh", ["-c", "command -v haproxy || ls /usr/sbin/haproxy"], { encoding: "utf8" }).trim();
}

/** HAProxy from `haproxy.cfg` in front of two gateways (host:port); resolves once it answers /readyz through both. */
export async function startDeployBalancer(gatewayA: string, gatewayB: string): Promise<DeployBalancer> {
  const port = await freePort();
  const child = spawnProgram(haproxyBinary(), ["-db", "-f", `${DEPLOY_DIR}haproxy.cfg`], {
    env: { LB_BIND: `127.0.0.1:${port}`, GATEWAY_A: gatewayA, GATEWAY_B: gatewayB },
  });
  const balancer: DeployBalancer = {
    url: `http://127.0.0.1:${port}/mcp`,
    process: child,
    served() {
      const counts: Record<string, number> = {};
      for (const line of child.stderr) {
        const server = line.match(/ gateways\/(gateway-[ab]) /)?.[1];
        if (server) counts[server] = (counts[server] ?? 0) + 1;
      }
      return counts;
    },
  };
  try {
    await eventually(async () => {
      for (let round = 0; round < 2; round++) {
        if (!(await fetch(`http://127.0.0.1:${port}/readyz`)).ok) return false;
      }
      const served = balancer.served();
      return (served["gateway-a"] ?? 0) > 0 && (served["gateway-b"] ?? 0) > 0;
    }, 30_000);
  } catch (err) {
    await child.stop();
    throw err;
  }
  return balancer;
}

/**
 * The system under fuzz, every part a real process on loopback: a private nats-server, `dmcp wrap`
 * around the fixture MCP server (service `fz`), a native agent (service `fzagent`, subscribed to every
 * context topic), and two gateways, one on Streamable HTTP and one on stdio. The harness has a NATS
 * connection of its own and counts the error reports every component publishes on `dmcp.v1.err.>`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { startNatsServer, type EmbeddedNats } from "../../src/bus/nats-server.js";
import { subjects } from "../../src/protocol/index.js";
import type { FuzzWorld } from "./arbitraries.js";
import { ChildProc, DMCP_JS, MemorySampler, RAW_SERVER_JS, SDK_AGENT_JS } from "./children.js";
import { HEAP_FLAGS, liveHeapBytes } from "./heap.js";
import { HttpSession, StdioPeer } from "./mcp-peers.js";

export const EXECUTOR_SERVICE = "fz";
export const EXECUTOR_INSTANCE = "fz-1";
export const AGENT_SERVICE = "fzagent";
/** Deadline of forwarded calls: short, so that nothing the fuzz sends keeps a gateway busy for long. */
const CALL_TIMEOUT_MS = "5000";
const METRICS_URL = /"url":"(http:\/\/[^"]+\/metrics)"/;

export interface FuzzSystem {
  world: FuzzWorld;
  nats: EmbeddedNats;
  /** The harness's own NATS connection: it sends arbitrary bytes with reply subjects of its own and reads NATS statuses. */
  nc: NatsConnection;
  httpUrl: string;
  stdio: StdioPeer;
  agentInstance: string;
  metricsUrls: { gatewayHttp: string; gatewayStdio: string; executor: string; agent: string };
  children: { gatewayHttp: ChildProc; gatewayStdio: ChildProc; executor: ChildProc; agent: ChildProc };
  memory: MemorySampler;
  /** Error reports seen on `dmcp.v1.err.<reporter>`, by reporter. */
  errorReports: Map<string, number>;
  /** The live heap of each process (gateways, executor, agent) after a full garbage collection. */
  liveHeap(): Promise<{ name: string; bytes: number }[]>;
  stop(): Promise<void>;
}

export async function startSystem(options: { verbose?: boolean } = {}): Promise<FuzzSystem> {
  const nats = await startNatsServer({ host: "127.0.0.1", port: -1, jetstream: true });
  // The processes' working directory, where they write the heap snapshots that liveHeap asks for.
  const dir = mkdtempSync(join(tmpdir(), "dmcp-fuzz-"));
  const started: ChildProc[] = [];
  const spawn = (name: string, args: string[], stdin?: "pipe") => {
    const child = new ChildProc(name, args, { ...(stdin ? { stdin } : {}), verbose: options.verbose ?? false, nodeFlags: HEAP_FLAGS, cwd: dir });
    started.push(child);
    return child;
  };
  let nc: NatsConnection | undefined;
  let reports: Subscription | undefined;
  const stopAll = async () => {
    reports?.unsubscribe();
    await nc?.drain();
    await Promise.allSettled(started.map((child) => child.stop()));
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    nc = await connect({ servers: nats.url, name: "dmcp-fuzz" });
    const errorReports = new Map<string, number>();
    reports = nc.subscribe(subjects.errorsAll(), {
      callback: (err, msg) => {
        if (err) return;
        const reporter = msg.subject.slice(subjects.errorsAll().length - 1);
        errorReports.set(reporter, (errorReports.get(reporter) ?? 0) + 1);
      },
    });
    const executor = spawn("executor", [
      DMCP_JS,
      "wrap",
      "--name",
      EXECUTOR_SERVICE,
      "--instance",
      EXECUTOR_INSTANCE,
      "--nats",
      nats.url,
      "--heartbeat",
      "1000",
      "--metrics-port",
      "0",
      "--log-level",
      "info",
      "--",
      process.execPath,
      RAW_SERVER_JS,
      "--stdio",
      "--name",
      EXECUTOR_SERVICE,
    ]);
    const agent = spawn("agent", [SDK_AGENT_JS, "--nats", nats.url, "--name", AGENT_SERVICE, "--heartbeat", "1000", "--subscribe", ">", "--metrics-port", "0"]);
    const gatewayHttp = spawn("gateway-http", [DMCP_JS, "gateway", "--nats", nats.url, "--http", "0", "--call-timeout", CALL_TIMEOUT_MS, "--log-level", "warn"]);
    const gatewayStdio = spawn(
      "gateway-stdio",
      [DMCP_JS, "gateway", "--nats", nats.url, "--stdio", "--metrics-port", "0", "--call-timeout", CALL_TIMEOUT_MS, "--log-level", "info"],
      "pipe",
    );
    const [executorMetrics, agentMetrics, agentReady, httpServing, stdioMetrics] = await Promise.all([
      executor.waitFor(METRICS_URL),
      agent.waitFor(/AGENT METRICS (\S+)/),
      agent.waitFor(/AGENT READY (\S+)/),
      gatewayHttp.waitFor(/serving MCP at (\S+)/),
      gatewayStdio.waitFor(METRICS_URL),
    ]);
    const httpUrl = httpServing[1]!;
    const stdio = new StdioPeer(gatewayStdio);
    const agentInstance = agentReady[1]!;
    await waitForCatalog(httpUrl, stdio);
    const world: FuzzWorld = {
      services: [EXECUTOR_SERVICE, AGENT_SERVICE, "nosuch"],
      instances: [EXECUTOR_INSTANCE, agentInstance],
      // Tools that answer at once; `sleep`, `progress`, `crash` and `add_tool` would test the fixture, not the gateway.
      tools: ["echo", "add", "whoami", "fail", "meta", "big", "cancelled", "fz__echo", "fzagent_echo", "fzagent_whoami", "dmcp_context_history", "nosuch_tool"],
      topics: ["fuzz.a", "fuzz.b.c"],
      resourceUris: ["fixture://fz/static", "fixture://shared/readme", "fixture://fz/items/1", "dmcp://context/fuzz.a", "dmcp://service/fz/fixture%3A%2F%2Ffz%2Fstatic"],
    };
    const children = { gatewayHttp, gatewayStdio, executor, agent };
    const memory = new MemorySampler(() => [...Object.values(children).map((child) => ({ name: child.name, pid: child.proc.pid })), { name: "nats-server", pid: nats.pid }]);
    const harnessNc = nc;
    const metricsUrls = { gatewayHttp: httpUrl.replace(/\/mcp$/, "/metrics"), gatewayStdio: stdioMetrics[1]!, executor: executorMetrics[1]!, agent: agentMetrics[1]! };
    return {
      world,
      nats,
      nc: harnessNc,
      httpUrl,
      stdio,
      agentInstance,
      metricsUrls,
      children,
      memory,
      errorReports,
      liveHeap: () =>
        Promise.all(
          (Object.keys(children) as (keyof typeof children)[]).map(async (name) => ({
            name: children[name].name,
            bytes: await liveHeapBytes(children[name], dir, metricsUrls[name]),
          })),
        ),
      stop: async () => {
        memory.stop();
        await stopAll();
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** Waits until both gateways list the tools of the executor and of the agent. */
async function waitForCatalog(httpUrl: string, stdio: StdioPeer, timeoutMs = 30_000): Promise<void> {
  const session = await HttpSession.open(httpUrl);
  const init = await stdio.request("initialize", { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "dmcp-fuzz", version: "1" } });
  if (!("result" in init)) throw new Error(`initialize on stdio failed: ${JSON.stringify(init)}`);
  await stdio.write(`${JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" })}\n`);
  const names = (response: Record<string, unknown>) => ((response.result as { tools?: { name: string }[] } | undefined)?.tools ?? []).map((tool) => tool.name);
  const ready = (list: string[]) => list.includes("echo") && list.includes(`${AGENT_SERVICE}_echo`);
  const until = Date.now() + timeoutMs;
  try {
    while (!(ready(names(await session.call("tools/list"))) && ready(names(await stdio.request("tools/list"))))) {
      if (Date.now() > until) throw new Error("the gateways did not list the executor's and the agent's tools in time");
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } finally {
    await session.close();
  }
}

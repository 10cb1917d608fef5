/**
 * `npm run chaos:cluster`: durable calls while nodes of a 3-node NATS cluster are SIGKILLed (or
 * stopped, CHAOS_SIGNAL), measured.
 * Not a test: it reports, and exits non-zero only when the run itself breaks.
 *
 *   client ──HTTP──▶ dmcp gateway ──JetStream (3 replicas)──▶ 3 × dmcp wrap --delivery durable ──stdio──▶ fixture
 *
 * Every process is real and on loopback; each is given the cluster's three seeds. Phases, each a
 * load of CHAOS_CALLS `sleep` calls with CHAOS_CONCURRENCY in flight, the fault once 30 % are
 * answered, the killed node started again before the next phase:
 *
 *   baseline                no fault
 *   gateway's node          the node the gateway is connected to
 *   an executor's node      a node an executor is connected to (not a gateway's, where there is one)
 *   work stream's leader    the node leading DMCP_WORK (a new leader must be elected)
 *   result store's leader   the node leading KV_dmcp_results and neither DMCP_WORK nor the lane
 *                           consumer (the store's leader is stepped down until it is such a node)
 *
 * Besides `npm run chaos`'s columns: how many calls ran upstream more than once (the fixture logs
 * each run with its correlation id), the longest pause between two answers after the fault, and the
 * time from the fault until one second's answers reach 80 % of the rate before it.
 *
 * With CHAOS_GATEWAYS=2, two gateways behind the tests' round-robin proxy (test/support/round-robin.ts)
 * serve the client's one 2025-11-25 session, each request going to the next gateway (PROTOCOL.md §19).
 *
 * Environment: CHAOS_CALLS (default 2000), CHAOS_CONCURRENCY (32), CHAOS_ACK_WAIT (2s), CHAOS_GATEWAYS (1),
 * CHAOS_SERVER (system | current | both, default both: the current one from
 * scripts/fetch-current-nats-server.sh when it is there), CHAOS_SIGNAL (SIGKILL; SIGTERM stops the node the
 * way a shutdown for maintenance does), CHAOS_VERBOSE=1 (the executors' logs on
 * stderr), CHAOS_TIMELINE=1 (after each fault, what the pause was made of: bench/lib/chaos-timeline.ts;
 * the processes then log at debug level).
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { DEAD_LETTER_STREAM, RESULTS_BUCKET, WORK_STREAM, workConsumer } from "../src/protocol/index.js";
import { serverGenerations, startTestCluster, type TestCluster } from "../test/support/cluster.js";
import { countResponses, runLoad, whenReached, type CallOutcome } from "../test/support/load.js";
import { gatewayTransport, RawMcpClient } from "../test/support/mcp-client.js";
import { startRoundRobinProxy, type RoundRobinProxy } from "../test/support/round-robin.js";
import { eventually, startGatewayHttp, upstreamRuns, wrapFixtureStdio, type Child } from "../test/support/processes.js";
import { print, summarize, type Report } from "./lib/chaos-report.js";
import { formatTimeline, watchLeaders, type LeaderWatch } from "./lib/chaos-timeline.js";
import { describeMachine } from "./lib/machine.js";
import "./lib/unlimited-listeners.js";

const CALLS = Number(process.env.CHAOS_CALLS ?? 2000);
const CONCURRENCY = Number(process.env.CHAOS_CONCURRENCY ?? 32);
const ACK_WAIT = process.env.CHAOS_ACK_WAIT ?? "2s";
const SERVER = process.env.CHAOS_SERVER ?? "both";
const VERBOSE = process.env.CHAOS_VERBOSE === "1";
const TIMELINE = process.env.CHAOS_TIMELINE === "1";
const GATEWAYS = Number(process.env.CHAOS_GATEWAYS ?? 1);
/** How the node is stopped: SIGKILL (a crash), or SIGTERM (a shutdown, as for maintenance). */
const SIGNAL = (process.env.CHAOS_SIGNAL ?? "SIGKILL") as NodeJS.Signals;
const SERVICE = "chaos";
/** The share of a phase's calls answered when the fault comes. */
const FAULT_AT = 0.3;
/** Throughput is back when one second's answers reach this share of the rate before the fault. */
const RATE_BACK_SHARE = 0.8;

interface Phase {
  name: string;
  /** The node to kill, chosen when the fault comes. */
  victim?: (cluster: TestCluster) => Promise<number | undefined>;
  /** Arranges the cluster before the phase's load starts. */
  prepare?: (cluster: TestCluster) => Promise<unknown>;
}

interface Throughput {
  stallMs: number;
  rateBackMs: number | undefined;
}

const PHASES: Phase[] = [
  { name: "baseline" },
  { name: `gateway's node ${SIGNAL}`, victim: (cluster) => cluster.nodeOf("dmcp-gateway") },
  {
    name: `an executor's node ${SIGNAL}`,
    victim: async (cluster) => {
      const gateways = await cluster.nodesOf("dmcp-gateway");
      const executors = await cluster.nodesOf(`dmcp-wrap-${SERVICE}`);
      return executors.find((node) => !gateways.includes(node)) ?? executors[0];
    },
  },
  { name: `work stream's leader ${SIGNAL}`, victim: (cluster) => streamLeader(cluster, WORK_STREAM) },
  {
    name: `result store's leader alone ${SIGNAL}`,
    prepare: (cluster) => resultStoreLeaderAlone(cluster, STEPDOWNS),
    // Checked again at the fault: the leaders may have moved during the load.
    victim: (cluster) => resultStoreLeaderAlone(cluster, 3),
  },
];

const RESULTS_STREAM = `KV_${RESULTS_BUCKET}`;
/** Leader step-downs tried to get the result store's leader away from the work stream's and the lane consumer's. */
const STEPDOWNS = 30;

/** The test cluster's servers are named n1, n2, n3. */
const nodeIndex = (leader: string | undefined) => (leader ? Number(leader.replace(/^n/, "")) - 1 : undefined);

async function streamLeader(cluster: TestCluster, stream: string): Promise<number | undefined> {
  const nc = await connect({ servers: cluster.seeds.split(",") });
  try {
    return nodeIndex((await (await jetstreamManager(nc)).streams.info(stream)).cluster?.leader);
  } finally {
    await nc.close();
  }
}

/**
 * The node leading the result store and neither the work stream nor the lane consumer: the store's
 * leader is asked to step down (the servers pick another) until it is on such a node.
 */
async function resultStoreLeaderAlone(cluster: TestCluster, stepdowns: number): Promise<number | undefined> {
  const nc = await connect({ servers: cluster.seeds.split(",") });
  try {
    const jsm = await jetstreamManager(nc);
    for (let tries = 0; tries <= stepdowns; tries++) {
      const store = (await jsm.streams.info(RESULTS_STREAM).catch(() => undefined))?.cluster?.leader;
      const work = (await jsm.streams.info(WORK_STREAM)).cluster?.leader;
      const lane = (await jsm.consumers.info(WORK_STREAM, workConsumer(SERVICE, "normal"))).cluster?.leader;
      if (store && store !== work && store !== lane) return nodeIndex(store);
      if (store) await nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${RESULTS_STREAM}`, undefined, { timeout: 5_000 }).catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    return undefined;
  } finally {
    await nc.close();
  }
}

async function deadLetters(cluster: TestCluster): Promise<number> {
  const nc = await connect({ servers: cluster.seeds.split(",") });
  try {
    return (await (await jetstreamManager(nc)).streams.info(DEAD_LETTER_STREAM).catch(() => undefined))?.state.messages ?? 0;
  } finally {
    await nc.close();
  }
}

/** The longest pause between answers after the fault, and when one second's answers are back to RATE_BACK_SHARE of the rate before it. */
function throughputAfter(outcomes: CallOutcome[], faultAt: number): Throughput {
  const answers = outcomes.flatMap((o) => (o.answeredAt === undefined ? [] : [o.answeredAt])).sort((a, b) => a - b);
  const before = answers.filter((t) => t <= faultAt);
  const rateBefore = before.length > 1 ? (before.length - 1) / ((before.at(-1)! - before[0]!) / 1000) : 0;
  const after = [faultAt, ...answers.filter((t) => t > faultAt)];
  let stallMs = 0;
  for (let i = 1; i < after.length; i++) stallMs = Math.max(stallMs, after[i]! - after[i - 1]!);
  let rateBackMs: number | undefined;
  for (let start = faultAt; start + 1000 <= (answers.at(-1) ?? 0) && rateBackMs === undefined; start += 100) {
    const inWindow = answers.filter((t) => t >= start && t < start + 1000).length;
    if (inWindow >= RATE_BACK_SHARE * rateBefore) rateBackMs = start + 1000 - faultAt;
  }
  return { stallMs, rateBackMs };
}

async function runPhase(
  cluster: TestCluster,
  gateways: Child[],
  executors: Child[],
  client: RawMcpClient,
  responses: Map<number, number>,
  phase: Phase,
): Promise<{ report: Report; throughput?: Throughput }> {
  await phase.prepare?.(cluster);
  const deadBefore = await deadLetters(cluster);
  const logged = executors.map((executor) => executor.stderr.length);
  const gatewaysLogged = gateways.map((gateway) => gateway.stderr.length);
  const leaders: LeaderWatch | undefined =
    TIMELINE && phase.victim
      ? await watchLeaders(cluster.seeds, [{ stream: WORK_STREAM }, { stream: WORK_STREAM, consumer: workConsumer(SERVICE, "normal") }, { stream: `KV_${RESULTS_BUCKET}` }])
      : undefined;
  const trigger = whenReached(Math.ceil(CALLS * FAULT_AT));
  const load = runLoad(client, {
    calls: CALLS,
    concurrency: CONCURRENCY,
    timeoutMs: 180_000,
    params: (index) => ({ name: "sleep", arguments: { ms: 10 + (index % 40) } }),
    onAnswer: trigger.onAnswer,
  });
  let faultAt: number | undefined;
  let killed: number | undefined;
  if (phase.victim) {
    await trigger.reached;
    killed = await phase.victim(cluster);
    if (killed === undefined) throw new Error(`${phase.name}: no node to kill`);
    faultAt = Date.now();
    cluster.nodes[killed]!.kill(SIGNAL);
    process.stdout.write(`  killed n${killed + 1}\n`);
  }
  const outcomes = await load;
  const changes = await leaders?.stop();
  if (changes && faultAt !== undefined) {
    const processes = [
      ...gateways.map((gateway, index) => ({ label: gateways.length > 1 ? `gateway ${index + 1}` : "gateway", lines: gateway.stderr, since: gatewaysLogged[index]! })),
      ...executors.map((executor, index) => ({ label: `executor ${index + 1}`, lines: executor.stderr, since: logged[index]! })),
    ];
    const answers = outcomes.flatMap((o) => (o.answeredAt === undefined ? [] : [o.answeredAt]));
    process.stdout.write(`  timeline of ${phase.name} (n${killed! + 1} killed at 0 ms):\n${formatTimeline(faultAt, changes, processes, answers)}\n`);
  }
  if (killed !== undefined) await cluster.restart(killed);
  const report = summarize(phase.name, outcomes, responses, (await deadLetters(cluster)) - deadBefore, faultAt);
  const runs = upstreamRuns(executors, "sleep", logged);
  report.ranAgain = [...runs.values()].filter((count) => count > 1).length;
  return faultAt === undefined ? { report } : { report, throughput: throughputAfter(outcomes, faultAt) };
}

async function runOn(label: string, binary: string | undefined): Promise<void> {
  const cluster = await startTestCluster({ binary });
  const executors: Child[] = [];
  const gateways: (Child & { url: string })[] = [];
  let proxy: RoundRobinProxy | undefined;
  let client: RawMcpClient | undefined;
  try {
    const logLevel = TIMELINE ? ["--log-level", "debug"] : [];
    for (let i = 1; i <= 3; i++) {
      const executor = await wrapFixtureStdio(cluster.seeds, SERVICE, [
        "--delivery",
        "durable",
        "--ack-wait",
        ACK_WAIT,
        "--backoff",
        "200ms",
        "--instance",
        `${SERVICE}-${i}`,
        ...logLevel,
      ]);
      if (VERBOSE) executor.process.stderr?.pipe(process.stderr);
      executors.push(executor);
    }
    for (let i = 0; i < GATEWAYS; i++) gateways.push(await startGatewayHttp(cluster.seeds, ["--call-timeout", "180000", "--log-level", TIMELINE ? "debug" : "warn"]));
    // Two gateways: the proxy sends each request of the client's one session to the next.
    if (GATEWAYS > 1) proxy = await startRoundRobinProxy(gateways.map((gateway) => new URL(gateway.url).origin));
    const httpUrl = proxy?.url ?? gateways[0]!.url;
    client = await RawMcpClient.connect(gatewayTransport("http", { natsUrl: cluster.seeds, httpUrl }));
    const responses = countResponses(client);
    await eventually(async () => (await client!.toolNames()).includes("sleep"), 30_000);
    const through = GATEWAYS > 1 ? `${GATEWAYS} gateways behind a round-robin proxy` : "1 gateway";
    process.stdout.write(`\nchaos:cluster on ${label}: ${CALLS} calls per phase, ${CONCURRENCY} in flight, ${through}, 3 executors, ack wait ${ACK_WAIT}, 3 nodes\n`);
    const reports: Report[] = [];
    const throughputs: string[] = [];
    for (const phase of PHASES) {
      process.stdout.write(`phase: ${phase.name}...\n`);
      const { report, throughput } = await runPhase(cluster, gateways, executors, client, responses, phase);
      reports.push(report);
      if (throughput) {
        const back = throughput.rateBackMs === undefined ? "not back within the phase" : `back after ${Math.round(throughput.rateBackMs)} ms`;
        throughputs.push(`${phase.name}: longest pause between answers ${Math.round(throughput.stallMs)} ms; ${RATE_BACK_SHARE * 100} % of the rate before the fault ${back}`);
      }
    }
    print(reports);
    process.stdout.write(`${throughputs.join("\n")}\n`);
  } finally {
    await client?.close().catch(() => undefined);
    await proxy?.close();
    await Promise.all(gateways.map((gateway) => gateway.stop()));
    await Promise.all(executors.map((executor) => executor.stop()));
    await cluster.stop();
  }
}

async function main(): Promise<void> {
  process.stdout.write(`${describeMachine()}\n`);
  const generations = serverGenerations().filter(({ binary }) => SERVER === "both" || (SERVER === "current") === (binary !== undefined));
  for (const { label, binary } of generations) await runOn(label, binary);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`chaos:cluster: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);

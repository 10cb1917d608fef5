/**
 * `npm run chaos`: durable calls under faults, measured. Not a test: it reports, and exits non-zero
 * only when the run itself breaks (a process does not start).
 *
 *   client ──HTTP──▶ dmcp gateway ──JetStream──▶ 3 × dmcp wrap --delivery durable ──stdio──▶ fixture
 *
 * Every component is a real process on loopback with a private nats-server (random port, temporary
 * store). Phases, each a load of CHAOS_CALLS `sleep` calls with CHAOS_CONCURRENCY in flight:
 *
 *   baseline            no fault
 *   executor SIGKILL    one replica killed with SIGKILL once 30 % are answered (a new one replaces it)
 *   nats-server restart the server restarted on the same store once 30 % are answered
 *   poison requests     CHAOS_POISON calls of the fixture's `crash` tool among the load
 *
 * For each phase: calls sent, answered, failed (by error code), lost (no answer), duplicated (more
 * than one answer), dead-lettered, and the recovery time: from the fault until the last call that was
 * in flight at that moment was answered.
 *
 * Environment: CHAOS_CALLS (default 500), CHAOS_CONCURRENCY (48), CHAOS_POISON (5), CHAOS_ACK_WAIT
 * (2s: how soon a killed replica's calls go to another), CHAOS_VERBOSE=1 (children's stderr).
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { DEAD_LETTER_STREAM } from "../src/protocol/index.js";
import { startNatsServer, type EmbeddedNats } from "../src/bus/nats-server.js";
import { gatewayTransport, RawMcpClient } from "../test/support/mcp-client.js";
import { countResponses, runLoad, whenReached } from "../test/support/load.js";
import { print, summarize, type Report } from "./lib/chaos-report.js";
import "./lib/unlimited-listeners.js";
import { eventually, startGatewayHttp, wrapFixtureStdio, type Child } from "../test/support/processes.js";

const CALLS = Number(process.env.CHAOS_CALLS ?? 500);
const CONCURRENCY = Number(process.env.CHAOS_CONCURRENCY ?? 48);
const POISON = Number(process.env.CHAOS_POISON ?? 5);
const ACK_WAIT = process.env.CHAOS_ACK_WAIT ?? "2s";
const VERBOSE = process.env.CHAOS_VERBOSE === "1";
const SERVICE = "chaos";

interface Phase {
  name: string;
  /** Runs once the given share of the phase's calls is answered; resolves when the fault is injected. */
  fault?: { at: number; inject: () => Promise<void> };
  /** Call indexes that are poison. */
  poison?: Set<number>;
}

let nats: EmbeddedNats;
const executors: Child[] = [];
let replicaCount = 0;

async function startReplica(): Promise<Child> {
  const child = await wrapFixtureStdio(nats.url, SERVICE, ["--delivery", "durable", "--ack-wait", ACK_WAIT, "--backoff", "200ms", "--instance", `${SERVICE}-${++replicaCount}`]);
  if (VERBOSE) child.process.stderr?.pipe(process.stderr);
  executors.push(child);
  return child;
}

async function deadLetters(): Promise<number> {
  const nc = await connect({ servers: nats.url });
  try {
    const jsm = await jetstreamManager(nc);
    return (await jsm.streams.info(DEAD_LETTER_STREAM).catch(() => undefined))?.state.messages ?? 0;
  } finally {
    await nc.close();
  }
}

async function runPhase(client: RawMcpClient, responses: Map<number, number>, phase: Phase): Promise<Report> {
  const deadBefore = await deadLetters();
  const trigger = whenReached(Math.ceil(CALLS * (phase.fault?.at ?? 1)));
  let faultAt: number | undefined;
  const load = runLoad(client, {
    calls: CALLS,
    concurrency: CONCURRENCY,
    timeoutMs: 180_000,
    params: (index) => (phase.poison?.has(index) ? { name: "crash", arguments: {} } : { name: "sleep", arguments: { ms: 10 + (index % 40) } }),
    onAnswer: trigger.onAnswer,
  });
  if (phase.fault) {
    await trigger.reached;
    faultAt = Date.now();
    await phase.fault.inject();
  }
  const outcomes = await load;
  return summarize(phase.name, outcomes, responses, (await deadLetters()) - deadBefore, faultAt);
}

async function main(): Promise<void> {
  nats = await startNatsServer({ host: "127.0.0.1", port: -1 });
  let gateway: (Child & { url: string }) | undefined;
  let client: RawMcpClient | undefined;
  try {
    for (let i = 0; i < 3; i++) await startReplica();
    gateway = await startGatewayHttp(nats.url, ["--call-timeout", "180000", "--log-level", "warn"]);
    client = await RawMcpClient.connect(gatewayTransport("http", { natsUrl: nats.url, httpUrl: gateway.url }));
    const responses = countResponses(client);
    await eventually(async () => (await client!.toolNames()).includes("sleep"), 30_000);
    process.stdout.write(`chaos: ${CALLS} calls per phase, ${CONCURRENCY} in flight, 3 replicas, ack wait ${ACK_WAIT}, server ${nats.url}\n`);
    const poison = new Set(Array.from({ length: POISON }, (_, i) => Math.floor(((i + 1) * CALLS) / (POISON + 1))));
    const phases: Phase[] = [
      { name: "baseline" },
      {
        name: "executor SIGKILL",
        fault: {
          at: 0.3,
          inject: async () => {
            executors.shift()!.kill("SIGKILL");
            // A replacement joins while the load goes on (and is up before the next phase's fault).
            await startReplica();
          },
        },
      },
      { name: "nats-server restart", fault: { at: 0.3, inject: () => nats.restart() } },
      { name: "poison requests", poison },
    ];
    const reports: Report[] = [];
    for (const phase of phases) {
      process.stdout.write(`phase: ${phase.name}...\n`);
      reports.push(await runPhase(client, responses, phase));
    }
    print(reports);
  } finally {
    await client?.close().catch(() => undefined);
    await gateway?.stop();
    await Promise.all(executors.map((executor) => executor.stop()));
    await nats.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`chaos: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);

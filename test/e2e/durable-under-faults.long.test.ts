/**
 * Durable calls under faults, with real processes: three `dmcp wrap --delivery durable` replicas of the
 * fixture behind `dmcp gateway --http`, 500 calls in flight while one replica is killed with SIGKILL,
 * or while the nats-server restarts on the same store. Every call is answered exactly once; none is
 * lost. A lane consumer deleted under the executors is made again. A poison request (the fixture's `crash` kills its upstream) ends in the dead-letter stream.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { DEAD_LETTER_HEADERS } from "../../src/bus/durable/dead-letters.js";
import { DEAD_LETTER_STREAM, decodeEnvelope, ErrorCode, subjects, WORK_STREAM, workConsumer } from "../../src/protocol/index.js";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { gatewayTransport, RawMcpClient } from "../support/mcp-client.js";
import { countResponses, runLoad, whenReached, type CallOutcome } from "../support/load.js";
import { crashRuns, eventually, startGatewayHttp, wrapFixtureStdio, type Child } from "../support/processes.js";

const CALLS = 500;
const DURABLE = ["--delivery", "durable", "--ack-wait", "2s", "--backoff", "100ms", "--concurrency", "8"];

interface Cluster {
  nats: EmbeddedNats;
  gateway: Child & { url: string };
  executors: Child[];
  client: RawMcpClient;
  responses: Map<number, number>;
  stop(): Promise<void>;
}

async function startCluster(service: string, extra: string[] = []): Promise<Cluster> {
  const nats = await startTestNats();
  const executors = await Promise.all([1, 2, 3].map((n) => wrapFixtureStdio(nats.url, service, [...DURABLE, "--instance", `${service}-${n}`, ...extra])));
  const gateway = await startGatewayHttp(nats.url, ["--call-timeout", "120000", "--log-level", "warn"]);
  const client = await RawMcpClient.connect(gatewayTransport("http", { natsUrl: nats.url, httpUrl: gateway.url }));
  const responses = countResponses(client);
  await eventually(async () => (await client.toolNames()).includes("sleep"));
  return {
    nats,
    gateway,
    executors,
    client,
    responses,
    async stop() {
      await client.close().catch(() => undefined);
      await gateway.stop();
      await Promise.all(executors.map((executor) => executor.stop()));
      await nats.stop();
    },
  };
}

/** Every call answered with its own result, exactly once. */
function expectEachAnsweredOnce(outcomes: CallOutcome[], responses: Map<number, number>): void {
  expect(outcomes).toHaveLength(CALLS);
  const lost = outcomes.filter((o) => o.lost);
  const failed = outcomes.filter((o) => o.error);
  expect(lost, "lost calls").toEqual([]);
  expect(
    failed.map((o) => o.error),
    "failed calls",
  ).toEqual([]);
  outcomes.forEach((outcome, index) => {
    expect((outcome.result?.content as { text: string }[] | undefined)?.[0]?.text).toBe(`slept ${sleepMs(index)}`);
    expect(responses.get(outcome.id), `responses to request ${outcome.id}`).toBe(1);
  });
}

/** Distinct durations, so each answer is recognisably its own call's. */
const sleepMs = (index: number) => 20 + (index % 50);
const sleepCall = (index: number) => ({ name: "sleep", arguments: { ms: sleepMs(index) } });

describe("an executor killed with SIGKILL under load", () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster("sturdy");
  }, 60_000);
  afterAll(async () => cluster?.stop());

  it(`answers each of ${CALLS} durable calls exactly once across 3 replicas, one of them killed mid-load`, async () => {
    const { onAnswer, reached } = whenReached(150);
    const load = runLoad(cluster.client, { calls: CALLS, concurrency: 48, params: sleepCall, timeoutMs: 120_000, onAnswer });
    await reached;
    cluster.executors[0]!.kill("SIGKILL");
    const outcomes = await load;
    expectEachAnsweredOnce(outcomes, cluster.responses);
    // The killed replica held calls: the others took them over.
    expect(cluster.executors.slice(1).some((executor) => executor.stderr.some((line) => line.includes("durable request delivered again")))).toBe(true);
    const nc = await connect({ servers: cluster.nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      expect((await jsm.streams.info(WORK_STREAM)).state.messages, "requests left in the work queue").toBe(0);
      expect((await jsm.streams.info(DEAD_LETTER_STREAM)).state.messages, "dead letters").toBe(0);
    } finally {
      await nc.close();
    }
  }, 240_000);
});

describe("a nats-server restarted under load (same store)", () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster("steady");
  }, 60_000);
  afterAll(async () => cluster?.stop());

  it(`answers each of ${CALLS} durable calls exactly once; gateway and executors reconnect`, async () => {
    const { onAnswer, reached } = whenReached(150);
    const load = runLoad(cluster.client, { calls: CALLS, concurrency: 48, params: sleepCall, timeoutMs: 120_000, onAnswer });
    await reached;
    await cluster.nats.restart();
    const outcomes = await load;
    expectEachAnsweredOnce(outcomes, cluster.responses);
    // Direct calls work again too: everyone reconnected.
    expect((await cluster.client.result("tools/call", { name: "echo", arguments: { text: "back" } })).content).toEqual([{ type: "text", text: "back" }]);
  }, 240_000);
});

describe("a lane consumer deleted under its executors", () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster("renewed");
  }, 60_000);
  afterAll(async () => cluster?.stop());

  it("is made again by the executors, which serve the calls queued meanwhile", async () => {
    const nc = await connect({ servers: cluster.nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.consumers.delete(WORK_STREAM, workConsumer("renewed", "normal"));
      // The executors pull from a bound consumer: only their own check notices that it is gone.
      const outcomes = await runLoad(cluster.client, { calls: 20, concurrency: 4, params: sleepCall, timeoutMs: 60_000 });
      expect(outcomes.filter((o) => o.lost || o.error).length, "calls not answered").toBe(0);
      expect((await jsm.consumers.info(WORK_STREAM, workConsumer("renewed", "normal"))).config.durable_name).toBe(workConsumer("renewed", "normal"));
      expect(cluster.executors.some((executor) => executor.stderr.some((line) => line.includes("the durable consumer is gone; making it again")))).toBe(true);
    } finally {
      await nc.close();
    }
  }, 120_000);
});

describe("a poison request", () => {
  let cluster: Cluster;
  let nc: NatsConnection;
  beforeAll(async () => {
    cluster = await startCluster("fragile", ["--max-deliver", "3"]);
    nc = await connect({ servers: cluster.nats.url });
  }, 60_000);
  afterAll(async () => {
    await nc?.close();
    await cluster?.stop();
  });

  it("ends in the dead-letter stream after N attempts, with the reason, an error_notification, and a clear error for the caller", async () => {
    const reports = nc.subscribe(subjects.errorsAll());
    const response = await cluster.client.request("tools/call", { name: "crash", arguments: {} }, 120_000);
    expect(response.error?.data).toMatchObject({ dmcp_code: ErrorCode.RetriesExhausted, deliveries: 3, last_error: { code: ErrorCode.UpstreamClosed } });
    expect(response.error?.code).toBe(-32030);
    // Its upstream died on every attempt: the reason says how many ran (the fixture logs each run), and no replica was lost.
    const runs = (response.error?.data as { attempts: number } | undefined)?.attempts;
    expect(runs).toBeGreaterThanOrEqual(1);
    expect(response.error?.message).toContain(`"fragile" got no answer in 3 deliveries: ${runs} ran and failed (UPSTREAM_CLOSED)`);
    expect(response.error?.message).not.toContain("lost");
    const jsm = await jetstreamManager(nc);
    const dead = await jsm.streams.getMessage(DEAD_LETTER_STREAM, { last_by_subj: subjects.deadLetter("fragile") });
    expect(dead.header?.get(DEAD_LETTER_HEADERS.code)).toBe(ErrorCode.RetriesExhausted);
    expect(dead.header?.get(DEAD_LETTER_HEADERS.deliveries)).toBe("3");
    expect(dead.header?.get(DEAD_LETTER_HEADERS.reason)).toContain("UPSTREAM_CLOSED");
    const request = decodeEnvelope(dead.data);
    expect(request.ok && request.envelope.type === "prompt_request" && request.envelope.payload.params).toMatchObject({ name: "crash" });
    expect((await jsm.streams.info(WORK_STREAM)).state.messages).toBe(0);
    // The report on the errors subject names the same call.
    const correlationId = dead.header?.get(DEAD_LETTER_HEADERS.correlationId);
    await eventually(() => crashRuns(cluster.executors, correlationId!) === runs);
    for await (const msg of reports) {
      const report = decodeEnvelope(msg.data);
      if (report.ok && report.envelope.type === "error_notification" && report.envelope.correlation_id === correlationId) {
        expect(report.envelope.payload.code).toBe(ErrorCode.RetriesExhausted);
        break;
      }
    }
    // The replicas recovered from the crashes and serve again.
    await eventually(async () => !(await cluster.client.request("tools/call", { name: "echo", arguments: { text: "ok" } })).error, 30_000);
  }, 120_000);
});

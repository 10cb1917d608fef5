/**
 * Durable answers while the result store takes no writes (PROTOCOL.md §15.5): on a cluster that is
 * what a store electing a leader does, for seconds; here the store's stream is moved off its subjects,
 * so that a real server refuses each write the same way (no responders) for as long as the test
 * wants, while reads still work. The answers are sent at once and kept until the store takes them;
 * only then are their requests acknowledged. Real nats-server (both generations), gateway, three
 * executors of the fixture, a raw MCP client counting every response.
 */
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resultKey } from "../../src/bus/durable/result-store.js";
import { RESULTS_BUCKET, WORK_STREAM, workConsumer } from "../../src/protocol/index.js";
import { countResponses, runLoad } from "../support/load.js";
import { gatewayTransport, RawMcpClient } from "../support/mcp-client.js";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually, natsServersToCompare, startGatewayHttp, upstreamRuns, wrapFixtureStdio, type Child } from "../support/processes.js";

const SERVICE = "unstored";
const CALLS = 40;
const RESULTS_STREAM = `KV_${RESULTS_BUCKET}`;
const STORE_SUBJECTS = [`$KV.${RESULTS_BUCKET}.>`];
/** Where the store's stream listens while the test refuses its writes: nothing is published there. */
const PARKED_SUBJECTS = ["parked.results.>"];

describe.each(natsServersToCompare("answers sent before they are stored"))("durable answers while the result store refuses writes, on $label", ({ binary }) => {
  let nats: EmbeddedNats;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let gateway: Child;
  const executors: Child[] = [];
  let client: RawMcpClient;

  beforeAll(async () => {
    nats = await startTestNats(binary ? { binary } : {});
    gateway = await startGatewayHttp(nats.url, ["--call-timeout", "60000", "--log-level", "warn"]);
    for (const n of [1, 2, 3]) executors.push(await wrapFixtureStdio(nats.url, SERVICE, ["--delivery", "durable", "--ack-wait", "2s", "--instance", `${SERVICE}-${n}`]));
    client = await RawMcpClient.connect(gatewayTransport("http", { natsUrl: nats.url, httpUrl: (gateway as Child & { url: string }).url }));
    await eventually(async () => (await client.toolNames()).includes("sleep"));
    nc = await connect({ servers: nats.url });
    jsm = await jetstreamManager(nc);
  }, 90_000);

  afterAll(async () => {
    await client?.close().catch(() => undefined);
    await Promise.all([gateway, ...executors].map((child) => child?.stop()));
    await nc?.close();
    await nats?.stop();
  });

  async function storeSubjects(subjects: string[]): Promise<void> {
    const { config } = await jsm.streams.info(RESULTS_STREAM);
    await jsm.streams.update(RESULTS_STREAM, { ...config, subjects });
  }

  it("answers every call once at once, acknowledges the requests only once the store takes the answers, and runs none twice", async () => {
    const responses = countResponses(client);
    const logged = executors.map((executor) => executor.stderr.length);
    await storeSubjects(PARKED_SUBJECTS);
    // Each call's upstream takes longer than the executors' ack wait (2 s) in all: progress must be reported meanwhile.
    const outcomes = await runLoad(client, { calls: CALLS, concurrency: 8, timeoutMs: 30_000, params: (index) => ({ name: "sleep", arguments: { ms: 20 + index } }) });
    expect(outcomes.filter((o) => o.lost || o.error).map((o) => o.error ?? "lost")).toEqual([]);
    expect(outcomes.every((o) => responses.get(o.id) === 1)).toBe(true);

    // Answered, not stored: every request is still held, none acknowledged.
    const held = await jsm.consumers.info(WORK_STREAM, workConsumer(SERVICE, "normal"));
    expect(held.num_ack_pending).toBe(CALLS);
    const runs = upstreamRuns(executors, "sleep", logged);
    expect(runs.size).toBe(CALLS);

    await storeSubjects(STORE_SUBJECTS);
    await eventually(async () => (await jsm.streams.info(WORK_STREAM)).state.messages === 0, 30_000);
    const kv = await new Kvm(nc).open(RESULTS_BUCKET);
    const stored = await Promise.all([...runs.keys()].map((correlationId) => kv.get(resultKey(SERVICE, correlationId))));
    expect(stored.filter((entry) => entry?.operation !== "PUT")).toEqual([]);
    expect([...upstreamRuns(executors, "sleep", logged).values()].filter((count) => count > 1)).toEqual([]);
    expect(outcomes.every((o) => responses.get(o.id) === 1)).toBe(true);
  }, 120_000);
});

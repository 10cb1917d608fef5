/**
 * A follow of a session stream (PROTOCOL.md §19.3) on a 3-node cluster goes on when a node it
 * depends on is SIGKILLed: first the node holding its consumer, then the node its own connection is
 * on, in order and each event once, missing none the stream acknowledged; what the stream holds at
 * the end is what it got last. Real nats-servers, both generations when the current one is there.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, describe, expect, it } from "vitest";
import { connectBus, openSessionEvents, SESSION_EVENTS_STREAM, type Bus, type StoredEvent } from "../../src/bus/index.js";
import { subjects } from "../../src/protocol/index.js";
import { sleep } from "../../src/util/index.js";
import { silentLogger } from "../../src/util/logger.js";
import { serverGenerations, startTestCluster, type TestCluster } from "../support/cluster.js";
import { eventually } from "../support/processes.js";

describe.each(serverGenerations())("a follow of a session stream on a 3-node cluster ($label)", ({ binary }) => {
  let cluster: TestCluster;
  let reader: Bus;
  let client: NatsConnection;
  afterAll(async () => {
    await reader?.drain().catch(() => undefined);
    await client?.close().catch(() => undefined);
    await cluster?.stop();
  });

  it("goes on after the node holding its consumer is SIGKILLed, then after the node it is connected to is", async () => {
    cluster = await startTestCluster({ binary });
    reader = await connectBus({ servers: cluster.seeds, name: "follower", logger: silentLogger() });
    const log = await openSessionEvents(reader);
    client = await connect({ servers: cluster.seeds.split(","), name: "writer" });
    const js = jetstream(client);
    const subject = subjects.sessionEvents("s1", "st1");
    const delivered: StoredEvent[] = [];
    const follow = await log.follow("s1", "st1", "now", (event) => delivered.push(event));
    const deliveredIds = () => delivered.map((event) => event.id);
    let sent = 0;
    /** The sequences the stream acknowledged, each of which must reach the follow. */
    const acknowledged = new Set<number>();
    /** Stores one event (acknowledged by the stream, retried while it has no leader). */
    const store = async (): Promise<string> => {
      const id = `e${++sent}`;
      // One message id for every try: a try whose acknowledgement was lost is not stored twice.
      const ack = await eventually(async () => js.publish(subject, JSON.stringify({ id, message: {} }), { msgID: id, timeout: 2_000 }), 60_000, 250);
      acknowledged.add(ack.seq);
      return id;
    };
    /**
     * Stores events until one of them reaches the follow. Slowly: the stream keeps the last 100 of a
     * subject, and a follow away for more than that many would rightly end (PROTOCOL.md §19.3).
     */
    const reachesFollow = () =>
      eventually(async () => {
        const id = await store();
        await sleep(500);
        return deliveredIds().includes(id);
      }, 120_000);

    await reachesFollow();
    const jsm = await jetstreamManager(client);
    const ours = (await jsm.consumers.list(SESSION_EVENTS_STREAM).next()).find((info) => JSON.stringify(info.config).includes(subject));
    const consumerNode = Number(ours?.cluster?.leader?.replace(/^n/, "")) - 1;
    expect(cluster.nodes[consumerNode]).toBeDefined();
    cluster.kill(consumerNode);
    await reachesFollow();
    await cluster.restart(consumerNode);

    const readerNode = await cluster.nodeOf("follower");
    expect(readerNode).toBeDefined();
    cluster.kill(readerNode!);
    await reachesFollow();
    // What the stream holds (the last 100 events of the subject) is what the follow got last, each once
    // and in order. The stream may hold an event twice, as two messages, when a publish whose
    // acknowledgement was lost in a leader change was deduplicated by no one: the follow gets both.
    const held = async () => (await log.readStream("s1", "st1")).events.map((event) => `${event.seq}:${event.id}`);
    const got = () => delivered.map((event) => `${event.seq}:${event.id}`);
    // Read while the stream may still be electing a leader: tried again until it answers.
    let kept: string[] = [];
    await eventually(async () => {
      kept = await held();
      return JSON.stringify(got().slice(-kept.length)) === JSON.stringify(kept);
    }, 60_000).catch(() => undefined);
    expect(kept.length).toBeGreaterThan(0);
    expect(got().slice(-kept.length)).toEqual(kept);
    const seqs = delivered.map((event) => event.seq!);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1]!);
    // Every event the stream acknowledged, during the kills too, reached the follow.
    const followed = new Set(seqs);
    expect([...acknowledged].filter((seq) => !followed.has(seq))).toEqual([]);
    follow.stop();
    expect(await follow.ended).toBeUndefined();
    await cluster.restart(readerNode!);
  }, 400_000);
});

/**
 * A follow of a session stream (PROTOCOL.md §19.3) on a 3-node cluster goes on when a node it
 * depends on is SIGKILLed: first the node holding its consumer, then the node its own connection is
 * on. Every event stored on the stream after it started reaches it, in order and once. Real
 * nats-servers, both generations when the current one is there.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, describe, expect, it } from "vitest";
import { connectBus, openSessionEvents, SESSION_EVENTS_STREAM, type Bus } from "../../src/bus/index.js";
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
    const delivered: string[] = [];
    const follow = await log.follow("s1", "st1", "now", (event) => delivered.push(event.id));
    const stored: string[] = [];
    let sent = 0;
    /** Stores one event (acknowledged by the stream, retried while it has no leader). */
    const store = async (): Promise<string> => {
      const id = `e${++sent}`;
      // One message id for every try: a try whose acknowledgement was lost is not stored twice.
      await eventually(async () => js.publish(subject, JSON.stringify({ id, message: {} }), { msgID: id, timeout: 2_000 }).then(() => true), 60_000, 250);
      stored.push(id);
      return id;
    };
    /** Stores events until one of them reaches the follow. */
    const reachesFollow = () =>
      eventually(async () => {
        const id = await store();
        await sleep(250);
        return delivered.includes(id);
      }, 90_000);

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
    await eventually(() => delivered.length === stored.length, 30_000);
    expect(delivered).toEqual(stored);
    follow.stop();
    expect(await follow.ended).toBeUndefined();
    await cluster.restart(readerNode!);
  }, 400_000);
});

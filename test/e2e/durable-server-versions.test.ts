/**
 * Durable delivery on the Debian nats-server (2.9) and on a current one (2.11+, from
 * `scripts/fetch-current-nats-server.sh` or $NATS_SERVER_CURRENT_BIN): what depends on the version is
 * detected at start and used only where the server has it (per-message TTL, a reason on AckTerm).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { connectBus, type Bus } from "../../src/bus/connection.js";
import { DEAD_LETTER_HEADERS } from "../../src/bus/durable/dead-letters.js";
import { DurableRoute } from "../../src/bus/durable/durable-route.js";
import { Requester } from "../../src/bus/requester.js";
import { serverFeatures } from "../../src/bus/durable/work-queue.js";
import { DEAD_LETTER_STREAM, ErrorCode, subjects, WORK_STREAM } from "../../src/protocol/index.js";
import { silentLogger } from "../../src/util/logger.js";
import { provisionTestStreams, startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually, natsServersToCompare, wrapFixtureStdio, type Child } from "../support/processes.js";

const servers = natsServersToCompare("durable delivery");

describe.each(servers)("durable delivery on $label", ({ binary }) => {
  let nats: EmbeddedNats;
  let nc: NatsConnection;
  let bus: Bus;
  let executor: Child;
  let newer: boolean;

  beforeAll(async () => {
    nats = await startTestNats(binary ? { binary } : {});
    await provisionTestStreams(nats.url);
    nc = await connect({ servers: nats.url });
    bus = await connectBus({ servers: nats.url, name: "versions-test", logger: silentLogger() });
    const [major = 0, minor = 0] = (nc.info?.version ?? "0.0").split(".").map(Number);
    newer = major > 2 || (major === 2 && minor >= 11);
    executor = await wrapFixtureStdio(nats.url, "versioned", ["--delivery", "durable", "--ack-wait", "1s"]);
  }, 60_000);

  afterAll(async () => {
    await executor?.stop();
    await bus?.drain();
    await nc?.close();
    await nats?.stop();
  });

  it("detects what the server can do from its version", () => {
    const features = serverFeatures(nc);
    expect(features.version).toBe(nc.info?.version);
    expect(features.messageTtl).toBe(newer);
    expect(features.termReason).toBe(newer);
  });

  it("queues a request with a TTL of its deadline only where the server has per-message TTL; there it leaves the queue by itself", async () => {
    const caller = new Requester(bus, "versions-test");
    const durable = new DurableRoute(bus, caller, "versions-test");
    try {
      // No executor serves "absent": the request waits in the queue, and the caller gives up at its deadline.
      const call = caller.call("absent", "tools/call", { name: "x" }, { timeoutMs: 1500, route: durable.route("normal") });
      await expect(call).rejects.toMatchObject({ code: ErrorCode.DeadlineExceeded });
      const jsm = await jetstreamManager(nc);
      const stored = await jsm.streams.getMessage(WORK_STREAM, { last_by_subj: subjects.work("absent", "normal") }).catch(() => undefined);
      if (newer) {
        // Gone already, or carrying its TTL and gone soon.
        expect(stored ? stored.header?.get("Nats-TTL") : "gone").toMatch(/^(\d+s|gone)$/);
        await eventually(async () => !(await jsm.streams.getMessage(WORK_STREAM, { last_by_subj: subjects.work("absent", "normal") }).catch(() => undefined)), 20_000);
      } else {
        expect(stored).toBeDefined();
        expect(stored!.header?.get("Nats-TTL") ?? "").toBe("");
        await jsm.streams.deleteMessage(WORK_STREAM, stored!.seq);
      }
    } finally {
      durable.stop();
      caller.close();
    }
  }, 60_000);

  it("dead-letters an invalid message and terminates its delivery (with the reason where the server takes one), so it leaves the queue", async () => {
    const terminated = nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.${WORK_STREAM}.>`, { max: 1 });
    const ack = await jetstream(nc).publish(subjects.work("versioned", "normal"), new TextEncoder().encode("not an envelope"), { msgID: `junk-${Date.now()}` });
    const jsm = await jetstreamManager(nc);
    const dead = await eventually(() => jsm.streams.getMessage(DEAD_LETTER_STREAM, { last_by_subj: subjects.deadLetter("versioned") }).catch(() => undefined));
    expect(dead.header?.get(DEAD_LETTER_HEADERS.code)).toBe(ErrorCode.InvalidEnvelope);
    await eventually(async () => !(await jsm.streams.getMessage(WORK_STREAM, { seq: ack.seq }).catch(() => undefined)));
    for await (const msg of terminated) {
      const advisory = JSON.parse(new TextDecoder().decode(msg.data)) as { stream_seq: number; reason?: string };
      expect(advisory.stream_seq).toBe(ack.seq);
      // Only a server with per-message TTL (2.11+) takes a reason with the termination.
      expect(advisory.reason).toEqual(newer ? expect.stringContaining(ErrorCode.InvalidEnvelope) : undefined);
    }
  }, 60_000);
});

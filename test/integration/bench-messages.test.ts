/**
 * The compare bench's NATS message counts (bench/lib/nats-monitor.ts, bench/compare/background.ts and
 * summary.ts): what a real nats-server says it carried and stored, and the calls' own messages as
 * the counts less the idle rate over the rounds' time.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, describe, expect, it } from "vitest";
import type { Chain } from "../../bench/chains/index.js";
import { beyondIdle, perUnit } from "../../bench/compare/background.js";
import { summarize } from "../../bench/compare/summary.js";
import { countedBetween, startMonitoredNats } from "../../bench/lib/nats-monitor.js";
import { cleanup } from "../../bench/lib/processes.js";

afterAll(() => cleanup());

describe("the bench's NATS message counts", () => {
  it("counts what a nats-server carried and what each stream stored in between", async () => {
    const monitored = await startMonitoredNats();
    const nc = await connect({ servers: monitored.server.url });
    try {
      await (await jetstreamManager(nc)).streams.add({ name: "KEPT", subjects: ["kept.>"] });
      const delivered = nc.subscribe("plain.>");
      await nc.flush();
      const before = await monitored.counts();
      for (let i = 0; i < 3; i++) nc.publish(`plain.${i}`, "x");
      for (let i = 0; i < 2; i++) nc.publish(`kept.${i}`, "y");
      await nc.flush();
      for await (const _ of delivered) if (delivered.getProcessed() === 3) break;
      const counted = countedBetween(before, await monitored.counts());
      expect(counted.stored).toEqual({ KEPT: 2 });
      expect(counted.in).toBeGreaterThanOrEqual(5);
      expect(counted.out).toBeGreaterThanOrEqual(3);
    } finally {
      await nc.close();
    }
  });

  it("takes the idle rate over the rounds' time off the counts to give the calls' own", () => {
    const chain = { name: "dmcp", path: "", url: "", processes: [] } satisfies Chain;
    const idle = perUnit({ in: 20, out: 30, stored: { KV_dmcp_registry: 2 } }, 20);
    const sample = (calls: number, seconds: number, extra: number) => ({
      calls,
      seconds,
      latencies: [],
      cpu: {},
      messages: { in: 2 * calls + seconds + extra, out: 2 * calls + 1.5 * seconds, stored: { KV_dmcp_registry: 0.1 * seconds, DMCP_SESSION_EVENTS: extra }, seconds },
    });
    const stats = summarize(chain, [sample(1000, 4, 10), sample(3000, 6, 30)], idle);
    expect(stats.messagesPerCall?.in).toBeCloseTo((8000 + 10 + 40) / 4000, 10);
    expect(stats.callMessagesPerCall?.in).toBeCloseTo((8000 + 40) / 4000, 10);
    expect(stats.callMessagesPerCall?.out).toBeCloseTo(2, 10);
    expect(stats.callMessagesPerCall?.stored).toEqual({ KV_dmcp_registry: expect.closeTo(0, 10), DMCP_SESSION_EVENTS: 0.01 });
    expect(beyondIdle({ in: 5, out: 5, stored: {} }, idle, 2)).toEqual({ in: 3, out: 2, stored: {} });
  });
});

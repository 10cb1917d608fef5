/**
 * The answers a serving instance publishes together (src/bus/reply-batch.ts): those finished in one
 * turn of the event loop go out in one setImmediate, in the order they came, so that nats.js writes
 * them in one socket write; a send that throws (the connection closed) spares the others.
 * The endpoint's answers over a real bus: test/integration/executor.test.ts and bus.test.ts.
 */
import { describe, expect, it } from "vitest";
import { ReplyBatch } from "../../src/bus/reply-batch.js";
import { silentLogger } from "../../src/util/index.js";

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe("answers published together", () => {
  it("sends the answers of one turn together, after the turn's callbacks, in order", async () => {
    const batch = new ReplyBatch(silentLogger());
    const sent: string[] = [];
    batch.add(() => sent.push("a"));
    await Promise.resolve();
    batch.add(() => sent.push("b"));
    // Nothing goes out while the turn's callbacks and microtasks run.
    expect(sent).toEqual([]);
    await turn();
    expect(sent).toEqual(["a", "b"]);
    batch.add(() => sent.push("c"));
    await turn();
    expect(sent).toEqual(["a", "b", "c"]);
  });

  it("sends what is queued at once on flush, and goes on past a send that throws", async () => {
    const batch = new ReplyBatch(silentLogger());
    const sent: string[] = [];
    batch.add(() => sent.push("a"));
    batch.add(() => {
      throw new Error("connection closed");
    });
    batch.add(() => sent.push("c"));
    batch.flush();
    expect(sent).toEqual(["a", "c"]);
    await turn();
    expect(sent).toEqual(["a", "c"]);
  });
});

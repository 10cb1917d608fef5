/**
 * The check a follow of a session stream makes of a new consumer's first message
 * (src/bus/follow-gaps.ts): the messages the stream's leader holds that the consumer skipped come
 * back to be handed on first; a follow whose last message the full subject discarded gets
 * EventsDiscardedError. The subject here is a list of held sequences: a consumer placed on a copy of
 * the stream that lacks messages the leader holds cannot be made on one server.
 */
import { describe, expect, it } from "vitest";
import { EventsDiscardedError, skippedBefore, type SubjectHistory } from "../../src/bus/follow-gaps.js";

/** A subject whose leader holds these sequences (of 100 kept per subject), counting the questions asked. */
function subjectHolding(seqs: number[], keptPerSubject = 100): SubjectHistory & { asked: number } {
  const history = {
    asked: 0,
    holds: async (seq: number) => {
      history.asked++;
      return seqs.includes(seq);
    },
    firstFrom: async (from: number) => {
      history.asked++;
      const seq = seqs.find((held) => held >= from);
      return seq === undefined ? undefined : { seq, data: new TextEncoder().encode(`m${seq}`) };
    },
    count: async () => {
      history.asked++;
      return Math.min(seqs.length, keptPerSubject);
    },
  };
  return history;
}

describe("skippedBefore (a new consumer's first message checked with the stream's leader)", () => {
  it("asks nothing when the message is the one the follow reads next", async () => {
    const history = subjectHolding([5, 6]);
    expect(await skippedBefore(history, 6, { next: 6, last: 5, keptPerSubject: 100 })).toEqual([]);
    expect(history.asked).toBe(0);
  });

  it("returns what the leader holds between the follow's next sequence and the message, oldest first", async () => {
    const history = subjectHolding([5, 8, 11, 14]);
    const skipped = await skippedBefore(history, 14, { next: 6, last: 5, keptPerSubject: 100 });
    expect(skipped.map((held) => held.seq)).toEqual([8, 11]);
  });

  it("returns nothing when other subjects' messages lie between (the stream's sequences are shared)", async () => {
    expect(await skippedBefore(subjectHolding([5, 14]), 14, { next: 6, last: 5, keptPerSubject: 100 })).toEqual([]);
  });

  it("throws EventsDiscardedError when the follow's last message is gone and the subject is full", async () => {
    const full = Array.from({ length: 100 }, (_, i) => 200 + i);
    await expect(skippedBefore(subjectHolding(full), 200, { next: 6, last: 5, keptPerSubject: 100 })).rejects.toBeInstanceOf(EventsDiscardedError);
  });

  it("goes on when the follow's last message is gone from a subject that is not full (it aged out)", async () => {
    expect(await skippedBefore(subjectHolding([200, 201]), 201, { next: 6, last: 5, keptPerSubject: 100 })).toEqual([{ seq: 200, data: new TextEncoder().encode("m200") }]);
  });

  it("does not ask about a last message when the follow started from now and delivered none", async () => {
    const full = Array.from({ length: 100 }, (_, i) => 200 + i);
    expect((await skippedBefore(subjectHolding(full), 201, { next: 6, last: undefined, keptPerSubject: 100 })).map((held) => held.seq)).toEqual([200]);
  });
});

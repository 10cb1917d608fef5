/**
 * The answers of direct calls an instance keeps for gateways whose peer died (src/bus/recent-answers.ts,
 * PROTOCOL.md §19.4): what a lookup gets, and the bounds that keep an executor's memory flat.
 * test/e2e/failover-calls.long.test.ts runs it over a real bus, with a gateway SIGKILLed.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { RecentAnswers } from "../../src/bus/recent-answers.js";

const bytes = (text: string) => new TextEncoder().encode(text);
const limits = { maxAgeMs: 60_000, maxBytes: 1_000, maxCount: 3 };

/** The store, and what it sent to waiting gateways (subject, text). */
function store(bounds = limits) {
  const sent: [string, string][] = [];
  const recent = new RecentAnswers((subject, data) => sent.push([subject, new TextDecoder().decode(data)]), bounds);
  return { recent, sent };
}

describe("recent answers of direct calls", () => {
  afterEach(() => vi.useRealTimers());

  it("answers a lookup with a kept answer, and says nothing of a call it neither ran nor answered", () => {
    const { recent } = store();
    recent.answered("c1", bytes("answer 1"));
    expect(recent.lookup("c1", "reply.1", false)).toEqual({ answer: bytes("answer 1") });
    expect(recent.lookup("c2", "reply.2", false)).toBe("unknown");
  });

  it("keeps an answer that is a view of a larger buffer (Node's pool) as a copy of its own bytes, which the bounds count", () => {
    const { recent } = store();
    const pooled = Buffer.from("pooled answer", "utf8");
    expect(pooled.buffer.byteLength).toBeGreaterThan(pooled.byteLength);
    recent.answered("c1", pooled);
    const kept = recent.lookup("c1", "reply.1", false);
    expect(kept).toEqual({ answer: bytes("pooled answer") });
    expect((kept as { answer: Uint8Array }).answer.buffer.byteLength).toBe(pooled.byteLength);
  });

  it("sends the answer of a call still running to each gateway that asked, once it comes", () => {
    const { recent, sent } = store();
    expect(recent.lookup("c1", "reply.1", true)).toBe("waiting");
    expect(recent.lookup("c1", "reply.1", true)).toBe("waiting");
    expect(recent.lookup("c1", "reply.2", true)).toBe("waiting");
    recent.answered("c1", bytes("done"));
    expect(sent).toEqual([
      ["reply.1", "done"],
      ["reply.2", "done"],
    ]);
    // A call that ended without a kept answer (a durable one) leaves nobody waiting.
    recent.lookup("c2", "reply.3", true);
    recent.ended("c2");
    recent.answered("c2", bytes("late"));
    expect(sent).toHaveLength(2);
  });

  it("keeps at most maxCount answers and maxBytes, the oldest going first, and none larger than maxBytes", () => {
    const { recent } = store();
    for (const id of ["a", "b", "c", "d"]) recent.answered(id, bytes(id.repeat(10)));
    expect(recent.size).toBe(3);
    expect(recent.lookup("a", "r", false)).toBe("unknown");
    recent.answered("big", bytes("x".repeat(900)));
    expect(recent.lookup("b", "r", false)).toBe("unknown");
    expect(recent.lookup("d", "r", false)).toEqual({ answer: bytes("d".repeat(10)) });
    // c, d, big and e are 1030 bytes: c goes (count), then d (bytes).
    recent.answered("e", bytes("e".repeat(100)));
    expect(recent.lookup("d", "r", false)).toBe("unknown");
    expect(recent.lookup("big", "r", false)).not.toBe("unknown");
    recent.answered("huge", bytes("y".repeat(1_001)));
    expect(recent.lookup("huge", "r", false)).toBe("unknown");
  });

  it("keeps one answer per call: an answer given again replaces the first, and the bounds count it once", () => {
    const { recent } = store();
    recent.answered("a", bytes("first"));
    recent.answered("b", bytes("b"));
    recent.answered("a", bytes("second"));
    recent.answered("c", bytes("c"));
    expect(recent.size).toBe(3);
    expect(recent.lookup("a", "r", false)).toEqual({ answer: bytes("second") });
    // a is now younger than b: d pushes b out, then e pushes a out.
    recent.answered("d", bytes("d"));
    expect(recent.lookup("b", "r", false)).toBe("unknown");
    expect(recent.lookup("a", "r", false)).toEqual({ answer: bytes("second") });
    recent.answered("e", bytes("e"));
    expect(recent.lookup("a", "r", false)).toBe("unknown");
    expect([..."cde"].map((id) => recent.lookup(id, "r", false))).toEqual([..."cde"].map((id) => ({ answer: bytes(id) })));
  });

  it("stays within its bounds over many answers, the newest kept", () => {
    const { recent } = store({ maxAgeMs: 60_000, maxBytes: 1_000_000, maxCount: 100 });
    for (let i = 0; i < 10_000; i++) recent.answered(`c${i}`, bytes(`answer ${i}`));
    expect(recent.size).toBe(100);
    expect(recent.lookup("c9899", "r", false)).toBe("unknown");
    expect(recent.lookup("c9900", "r", false)).toEqual({ answer: bytes("answer 9900") });
    expect(recent.lookup("c9999", "r", false)).toEqual({ answer: bytes("answer 9999") });
  });

  it("forgets answers older than maxAgeMs", () => {
    vi.useFakeTimers({ now: 0 });
    const { recent } = store();
    recent.answered("old", bytes("old"));
    vi.setSystemTime(30_000);
    recent.answered("new", bytes("new"));
    vi.setSystemTime(60_001);
    expect(recent.lookup("old", "r", false)).toBe("unknown");
    expect(recent.lookup("new", "r", false)).toEqual({ answer: bytes("new") });
  });
});

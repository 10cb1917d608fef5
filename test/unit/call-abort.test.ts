/**
 * A gateway call's CallCancellation (src/bus/call-cancellation.ts): what the requester listens to instead
 * of an AbortSignal, with the AbortSignal made only on demand and always in step with it.
 */
import { describe, expect, it } from "vitest";
import { CallCancellation } from "../../src/bus/call-cancellation.js";
import { Call, type ServiceDirectory } from "../../src/gateway/index.js";

describe("a gateway call's CallCancellation", () => {
  it("runs each listener still registered once, at the abort, and none added after it", () => {
    const abort = new CallCancellation();
    const heard: string[] = [];
    const kept = () => heard.push("kept");
    const removed = () => heard.push("removed");
    abort.addEventListener("abort", kept);
    abort.addEventListener("abort", removed);
    abort.removeEventListener("abort", removed);
    expect(abort.aborted).toBe(false);
    abort.abort(new Error("why"));
    abort.abort(new Error("again"));
    abort.addEventListener("abort", () => heard.push("late"));
    expect(heard).toEqual(["kept"]);
    expect(abort.aborted).toBe(true);
    expect((abort.reason as Error).message).toBe("why");
  });

  it("gives an AbortSignal that follows it: made before the abort or after, with the same reason", () => {
    const before = new CallCancellation();
    const signal = before.signal;
    expect(signal.aborted).toBe(false);
    const reason = new Error("client went away");
    before.abort(reason);
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBe(reason);
    const after = new CallCancellation();
    after.abort();
    expect(after.signal.aborted).toBe(true);
    expect(after.signal.reason).toBe(after.reason);
    expect((after.reason as DOMException).name).toBe("AbortError");
  });

  it("is a Call's cancellation, and the Call's signal is its AbortSignal", () => {
    const abort = new CallCancellation();
    const call = new Call({ method: "ping", params: {}, signal: abort }, {} as ServiceDirectory, 1000);
    expect(call.cancellation).toBe(abort);
    const signal = call.signal;
    expect(call.signal).toBe(signal);
    abort.abort();
    expect(signal.aborted).toBe(true);
    const plain = new AbortController();
    const withSignal = new Call({ method: "ping", params: {}, signal: plain.signal }, {} as ServiceDirectory, 1000);
    expect(withSignal.signal).toBe(plain.signal);
    expect(withSignal.cancellation).toBe(plain.signal);
  });
});

/**
 * A call's cancellation at the serving endpoint (src/bus/call-cancellation.ts): plain listeners and an
 * AbortSignal made only when read, both told once, with the canceller's reason. Cancellation over a
 * real bus: test/e2e/cancellation.test.ts and test/integration/executor.test.ts.
 */
import { describe, expect, it } from "vitest";
import { CallCancellation } from "../../src/bus/call-cancellation.js";

describe("a call's cancellation", () => {
  it("calls each listener once with the reason set, and aborts a signal read before", () => {
    const cancel = new CallCancellation();
    const signal = cancel.signal;
    const heard: unknown[] = [];
    cancel.addEventListener("abort", () => heard.push(cancel.reason));
    signal.addEventListener("abort", () => heard.push(signal.reason));
    const reason = new Error("stop");
    cancel.abort(reason);
    cancel.abort(new Error("again"));
    expect(cancel.aborted).toBe(true);
    expect(heard).toEqual([reason, reason]);
  });

  it("hands a signal read after the cancellation already aborted, and never calls a listener added then", () => {
    const cancel = new CallCancellation();
    const reason = new Error("stop");
    cancel.abort(reason);
    let called = false;
    cancel.addEventListener("abort", () => {
      called = true;
    });
    expect(cancel.signal.aborted).toBe(true);
    expect(cancel.signal.reason).toBe(reason);
    expect(called).toBe(false);
  });

  it("stays quiet while the call is not cancelled", () => {
    const cancel = new CallCancellation();
    expect(cancel.aborted).toBe(false);
    expect(cancel.reason).toBeUndefined();
    expect(cancel.signal.aborted).toBe(false);
  });
});

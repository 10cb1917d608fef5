/**
 * One call's cancellation at the serving endpoint. Node 20 takes microseconds to make an AbortSignal,
 * more than the rest of the endpoint's bookkeeping for a call, and most calls are never cancelled: a
 * handler that only follows the cancellation (an executor) registers plain callbacks here, and an
 * AbortSignal is made only for a handler that reads `signal` (a native agent's tools).
 */
import type { CancelSignal } from "../protocol/index.js";

export class CallCancellation implements CancelSignal {
  aborted = false;
  reason: unknown;
  private listeners: (() => void)[] | undefined;
  private controller: AbortController | undefined;

  /** As on an AbortSignal: a listener added once the call was cancelled is never called. */
  addEventListener(_type: "abort", listener: () => void): void {
    if (this.aborted) return;
    this.listeners ??= [];
    this.listeners.push(listener);
  }

  /** An AbortSignal that follows this cancellation, made on first use. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  /** Cancels the call once: the signal aborts, each listener is called once. */
  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.controller?.abort(reason);
    const listeners = this.listeners;
    this.listeners = undefined;
    for (const listener of listeners ?? []) listener();
  }
}

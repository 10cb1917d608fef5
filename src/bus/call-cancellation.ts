/**
 * One call's cancellation, as cheap as a flag until something needs more. Node 20 takes microseconds
 * to make an AbortSignal (an EventTarget), more than the rest of a call's cancel handling, and most
 * calls are never cancelled: the gateway's calls (which the requester follows, requester.ts) and the
 * serving endpoint's calls (which an executor follows) register plain listeners here, and an
 * AbortSignal is made only the first time something reads `signal` (the cache, tasks, a native
 * agent's tools), already aborted if the call was.
 */
import type { CallSignal } from "./requester.js";

export class CallCancellation implements CallSignal {
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

  removeEventListener(_type: "abort", listener: () => void): void {
    const listeners = this.listeners;
    if (!listeners) return;
    const at = listeners.indexOf(listener);
    if (at >= 0) listeners.splice(at, 1);
  }

  /** An AbortSignal that follows this cancellation, made on first use. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  /** Cancels the call once (by default with an AbortError, as an AbortController would): each listener is called once, then the signal aborts. */
  abort(reason?: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason ?? new DOMException("This operation was aborted", "AbortError");
    const listeners = this.listeners;
    this.listeners = undefined;
    for (const listener of listeners ?? []) listener();
    this.controller?.abort(this.reason);
  }
}

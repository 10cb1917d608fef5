/**
 * A call's cancellation, as cheap as a flag until something needs more: an AbortSignal is an
 * EventTarget, whose making and listeners cost a gateway more per call than the rest of its cancel
 * handling. The requester listens here directly (bus/requester.ts takes any `CallSignal`); the
 * AbortSignal is made the first time something asks for it (the cache, tasks), already aborted if the
 * call was.
 */
import type { CallSignal } from "../../bus/index.js";

export class CallAbort implements CallSignal {
  private controller: AbortController | undefined;
  private listeners: (() => void)[] | undefined;
  private done = false;
  private why: unknown;

  get aborted(): boolean {
    return this.done;
  }

  get reason(): unknown {
    return this.why;
  }

  /** A real AbortSignal that follows this one. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.done) this.controller.abort(this.why);
    }
    return this.controller.signal;
  }

  /** Aborts the call (once): its listeners run, then those of its AbortSignal, if one was made. */
  abort(reason?: unknown): void {
    if (this.done) return;
    this.done = true;
    this.why = reason ?? new DOMException("This operation was aborted", "AbortError");
    const listeners = this.listeners;
    this.listeners = undefined;
    if (listeners) for (const listener of listeners) listener();
    this.controller?.abort(this.why);
  }

  /** Listens for the abort, once (only the "abort" event exists). */
  addEventListener(_type: "abort", listener: () => void): void {
    if (this.done) return;
    if (this.listeners) this.listeners.push(listener);
    else this.listeners = [listener];
  }

  removeEventListener(_type: "abort", listener: () => void): void {
    const listeners = this.listeners;
    if (!listeners) return;
    const at = listeners.indexOf(listener);
    if (at >= 0) listeners.splice(at, 1);
  }
}

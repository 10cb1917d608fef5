/**
 * Concurrent misses for one key call the upstream once: the first caller runs the fetch, the others
 * wait for its answer. A follower is not bound to the leader's fate: when the leader's call is
 * cancelled (its client went away), a follower still waiting runs its own; its own cancellation
 * ends its wait.
 */
import { DmcpError, ErrorCode } from "../../protocol/index.js";

export class SingleFlight<T> {
  private readonly flights = new Map<string, Promise<T>>();

  /** Runs `lead` unless a fetch for `key` is under way; then waits for that one's answer (`follow` maps it). */
  run(key: string, lead: () => Promise<T>, follow: (answer: T) => T, again: () => Promise<T>, signal: AbortSignal): Promise<T> {
    const flight = this.flights.get(key);
    if (flight) return untilAborted(flight, signal).then(follow, (err: unknown) => (isCancelled(err) && !signal.aborted ? again() : Promise.reject(err)));
    const started = lead().finally(() => this.flights.delete(key));
    this.flights.set(key, started);
    return started;
  }
}

function isCancelled(err: unknown): boolean {
  return err instanceof DmcpError && (err.code === ErrorCode.Cancelled || err.code === ErrorCode.ShuttingDown);
}

/** `promise`, or the signal's reason once it is aborted. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

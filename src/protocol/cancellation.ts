/** How a cancellation's reason travels: the text of a `notifications/cancelled`, and the CANCELLED error it becomes. */
import { ErrorCode } from "./error-codes.js";
import { CallError } from "./errors.js";

/** Cancellation reasons travel in bus messages: a client's reason is kept to this many characters. */
export const MAX_CANCEL_REASON_CHARS = 1024;

/**
 * The CANCELLED error a canceller's reason becomes (PROTOCOL.md §5.5): its message is the reason (a
 * non-empty string, cut to MAX_CANCEL_REASON_CHARS), else `fallback`.
 */
export function cancellation(reason: unknown, fallback: string): CallError {
  const text = typeof reason === "string" && reason.length > 0 ? reason.slice(0, MAX_CANCEL_REASON_CHARS) : fallback;
  return new CallError(ErrorCode.Cancelled, text);
}

/**
 * What a call's handler follows of its cancellation: whether and why it was cancelled, and listeners
 * called once when it is. An AbortSignal is one; the serving endpoint's own is cheaper to make.
 */
export interface CancelSignal {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: "abort", listener: () => void, options?: { once?: boolean }): void;
}

/** The reason an aborted signal carries, as the text of a `notifications/cancelled`. */
export function cancelReasonOf(signal: { readonly reason?: unknown }, fallback: string): string {
  const reason: unknown = signal.reason;
  return reason instanceof Error && reason.message.length > 0 ? reason.message : fallback;
}

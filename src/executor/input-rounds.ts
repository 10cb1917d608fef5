/**
 * Multi round-trip input (MCP 2026-07-28, SEP-2322) for callers of the 2025 revisions: a server that
 * serves only stateless requests answers `input_required` (its `inputRequests`, keyed) where a 2025
 * server would send server-to-client requests. A 2025 client session is asked those requests, as a
 * 2025 server would ask it, and the call is retried with the answers (`inputResponses`, and the
 * server's `requestState`) until the server completes it.
 */
import { type DmcpError, ErrorCode, UpstreamError } from "../protocol/index.js";

/** More rounds than this end the call: a server that keeps asking is not converging. */
export const MAX_INPUT_ROUNDS = 16;

type Result = Record<string, unknown>;

export function isInputRequired(result: Result): boolean {
  return result.resultType === "input_required";
}

/**
 * Answers `first`'s input requests with `ask` (the client session's server-to-client requests) and
 * `retry`s the call with them, for as many rounds as the server asks.
 */
export async function completeInputRounds(
  first: Result,
  ask: (method: string, params: Record<string, unknown> | undefined) => Promise<Result>,
  retry: (input: { inputResponses: Result; requestState?: unknown }) => Promise<Result>,
): Promise<Result> {
  let result = first;
  for (let round = 1; isInputRequired(result); round++) {
    if (round > MAX_INPUT_ROUNDS) throw new UpstreamError(ErrorCode.UpstreamError, `the upstream asked for input more than ${MAX_INPUT_ROUNDS} times for one call`);
    const inputResponses: Result = {};
    for (const [key, request] of Object.entries(inputRequestsOf(result))) inputResponses[key] = await ask(request.method, request.params);
    result = await retry(result.requestState === undefined ? { inputResponses } : { inputResponses, requestState: result.requestState });
  }
  return result;
}

/** Refusal for a 2025 caller without a client session to ask (a durable call, or beyond --max-sessions). */
export function inputWithoutSession(): DmcpError {
  return new UpstreamError(
    ErrorCode.UpstreamError,
    "the upstream needs input from the client (an MCP 2026-07-28 input_required result), but this call came without a client session to ask it " +
      "(a durable call, or a client session beyond dmcp wrap --max-sessions)",
  );
}

function inputRequestsOf(result: Result): Record<string, { method: string; params: Record<string, unknown> | undefined }> {
  const raw = result.inputRequests;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new UpstreamError(ErrorCode.UpstreamError, "the upstream answered input_required without inputRequests");
  const out: Record<string, { method: string; params: Record<string, unknown> | undefined }> = {};
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    const request = value as { method?: unknown; params?: unknown };
    if (typeof request?.method !== "string") throw new UpstreamError(ErrorCode.UpstreamError, `the upstream's input request ${JSON.stringify(key)} names no method`);
    const params = typeof request.params === "object" && request.params !== null && !Array.isArray(request.params) ? (request.params as Record<string, unknown>) : undefined;
    out[key] = { method: request.method, params };
  }
  return out;
}

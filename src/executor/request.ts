/**
 * One request as the executor serves it, worked out once where it enters (the Executor's handler):
 * what it asks, at which MCP revision, until when, for whom, and from which client session. The
 * stateless lane, the client sessions' upstream sessions and the shared session read it from here.
 */
import type { Seal } from "../bus/index.js";
import { requestedVersion, type Caller, type ClientSession, type PromptRequest } from "../protocol/index.js";

export interface ExecutorRequest {
  readonly method: string;
  /** The params as they go upstream (the executor's progress token; caller, delivery and trace `_meta`). */
  readonly params: Record<string, unknown> | undefined;
  /** The stateless revision (2026-07-28) its `_meta` names; undefined for a request of a session-based revision. */
  readonly revision: string | undefined;
  /** When the caller stops waiting (Date.now() ms). */
  readonly deadline: number;
  readonly correlationId: string;
  readonly caller: Caller | undefined;
  /** The MCP client session it comes from, when it has one. */
  readonly clientSession: ClientSessionRef | undefined;
  /** How what goes back to the caller is sealed (the request came sealed), else undefined. */
  readonly seal: Seal | undefined;
}

/** An MCP client session as its requests name it (PROTOCOL.md §16): its id on the bus, and what the gateway told of it. */
export interface ClientSessionRef {
  readonly id: string;
  readonly client: ClientSession;
}

/** A request from a client session. */
export type SessionRequest = ExecutorRequest & { readonly clientSession: ClientSessionRef };

/** The request of an envelope, with the params the executor forwards and the time the caller has left. */
export function executorRequest(
  request: PromptRequest,
  params: Record<string, unknown> | undefined,
  call: { correlationId: string; timeoutMs: number; seal?: Seal | undefined },
): ExecutorRequest {
  const { session_id: id, client_session: client } = request;
  return {
    method: request.payload.method,
    params,
    // The params forwarded keep the `_meta` revision key of the caller's: read once, from the caller's.
    revision: requestedVersion(request.payload.params),
    deadline: Date.now() + call.timeoutMs,
    correlationId: call.correlationId,
    caller: request.caller,
    clientSession: id && client ? { id, client } : undefined,
    seal: call.seal,
  };
}

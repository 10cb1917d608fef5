/** The methods dMCP itself gives to bus messages, beside the MCP methods they carry. */

/**
 * The `context_update.payload.method` of a receipt: an executor sends it to the reply subject as soon as
 * it takes a request, so the caller knows which instance holds the call (and can fail the call at once
 * if that instance leaves the bus).
 */
export const ACCEPTED_METHOD = "dmcp/accepted";

/**
 * The `context_update.payload.method` of a cancellation, published on `dmcp.v1.cancel.<service>` with
 * the cancelled call's `correlation_id`: the instance that holds the call stops it.
 */
export const CANCEL_METHOD = "notifications/cancelled";

/**
 * The `prompt_request.payload.method` a gateway sends to the replica a client session is pinned to when
 * that session ends: the replica closes the matching upstream session (PROTOCOL.md §16).
 */
export const SESSION_CLOSE_METHOD = "dmcp/session/close";

/**
 * Client notifications that a gateway passes on, as a `prompt_request` with the notification's method
 * (answered `{}`), to the replicas holding the client session's upstream sessions (PROTOCOL.md §16).
 */
export const RELAYED_CLIENT_NOTIFICATIONS: ReadonlySet<string> = new Set(["notifications/roots/list_changed"]);

/**
 * A `context_update` on a call's reply subject: the upstream closed the call's SSE stream before its
 * answer, to be polled (SEP-1699); the answer follows. A gateway may close its client's stream for
 * the request too, if the client can resume it (PROTOCOL.md §5.6).
 */
export const STREAM_CLOSED_METHOD = "dmcp/stream/closed";

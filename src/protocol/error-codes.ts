/**
 * Stable error codes. Wire errors (`error_notification.payload.code`) and local errors (`DmcpError.code`)
 * share this vocabulary so that a code means the same thing on every hop and in every language.
 */
export const ErrorCode = {
  /** The envelope failed validation (bad JSON, wrong shape, unknown type, oversized). */
  InvalidEnvelope: "INVALID_ENVELOPE",
  /** No executor subscribes to the service's request subject. */
  NoResponders: "NO_RESPONDERS",
  /** The call's deadline passed before an answer arrived (or before work started). */
  DeadlineExceeded: "DEADLINE_EXCEEDED",
  /** The executor is up but its upstream MCP server is not (starting, restarting, unreachable). */
  UpstreamUnavailable: "UPSTREAM_UNAVAILABLE",
  /** The upstream MCP server answered with a JSON-RPC error; `jsonrpc_code` carries its code. */
  UpstreamError: "UPSTREAM_ERROR",
  /** The upstream MCP server went away while the call was running. */
  UpstreamClosed: "UPSTREAM_CLOSED",
  /** A request's params (e.g. a tool's arguments) fail the target's schema. */
  InvalidParams: "INVALID_PARAMS",
  /** No service offers the requested tool, prompt or resource. */
  UnknownTarget: "UNKNOWN_TARGET",
  /** A message is larger than the bus (or the configured limit) allows. */
  PayloadTooLarge: "PAYLOAD_TOO_LARGE",
  /** The bus connection is closed, draining or was never established. */
  BusUnavailable: "BUS_UNAVAILABLE",
  /** The executor instance that accepted the call left the bus before answering. */
  ExecutorLost: "EXECUTOR_LOST",
  /** The call was cancelled by its caller. */
  Cancelled: "CANCELLED",
  /** The executor is shutting down and takes no new work. */
  ShuttingDown: "SHUTTING_DOWN",
  /** The caller's identity may not use the requested tool, resource or prompt (the gateway's policy). */
  Forbidden: "FORBIDDEN",
  /** An unsigned message where signatures are required (PROTOCOL.md §14). */
  SignatureRequired: "SIGNATURE_REQUIRED",
  /** A signature that is malformed or does not match the signed bytes (forged or altered). */
  SignatureInvalid: "SIGNATURE_INVALID",
  /** A valid signature by a key the receiver does not trust (for that role). */
  UntrustedSigner: "UNTRUSTED_SIGNER",
  /** A signed message seen before, or whose timestamp lies outside the receiver's window. */
  Replayed: "REPLAYED",
  /** A sealed (encrypted) payload the receiver cannot open. */
  DecryptionFailed: "DECRYPTION_FAILED",
  /** A durable request failed on every delivery attempt and was moved to the dead-letter stream. */
  RetriesExhausted: "RETRIES_EXHAUSTED",
  /** The executor replica holding a client session's upstream session left the bus (or closed that session). */
  SessionLost: "SESSION_LOST",
  /** Anything else that went wrong inside a dMCP component. */
  Internal: "INTERNAL",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export const ERROR_CODES = Object.values(ErrorCode) as [ErrorCode, ...ErrorCode[]];

/** JSON-RPC 2.0 and MCP error codes used at the MCP edges. */
export const JsonRpcErrorCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  /** MCP: resource not found. */
  ResourceNotFound: -32002,
  /** Implementation-defined server errors (-32000 to -32099) that dmcp-gateway uses. */
  BusUnavailable: -32010,
  NoResponders: -32011,
  DeadlineExceeded: -32012,
  UpstreamUnavailable: -32013,
  PayloadTooLarge: -32014,
  UpstreamClosed: -32015,
  Cancelled: -32016,
  ShuttingDown: -32017,
  ExecutorLost: -32018,
  Forbidden: -32019,
  SignatureRequired: -32040,
  SignatureInvalid: -32041,
  UntrustedSigner: -32042,
  Replayed: -32043,
  DecryptionFailed: -32044,
  RetriesExhausted: -32030,
  SessionLost: -32031,
} as const;

/** The JSON-RPC code an MCP client sees for each dMCP error code (UpstreamError keeps the upstream's own). */
export const jsonRpcCodeFor: Record<ErrorCode, number> = {
  INVALID_ENVELOPE: JsonRpcErrorCode.InvalidRequest,
  NO_RESPONDERS: JsonRpcErrorCode.NoResponders,
  DEADLINE_EXCEEDED: JsonRpcErrorCode.DeadlineExceeded,
  UPSTREAM_UNAVAILABLE: JsonRpcErrorCode.UpstreamUnavailable,
  UPSTREAM_ERROR: JsonRpcErrorCode.InternalError,
  UPSTREAM_CLOSED: JsonRpcErrorCode.UpstreamClosed,
  UNKNOWN_TARGET: JsonRpcErrorCode.InvalidParams,
  INVALID_PARAMS: JsonRpcErrorCode.InvalidParams,
  PAYLOAD_TOO_LARGE: JsonRpcErrorCode.PayloadTooLarge,
  BUS_UNAVAILABLE: JsonRpcErrorCode.BusUnavailable,
  CANCELLED: JsonRpcErrorCode.Cancelled,
  SHUTTING_DOWN: JsonRpcErrorCode.ShuttingDown,
  EXECUTOR_LOST: JsonRpcErrorCode.ExecutorLost,
  FORBIDDEN: JsonRpcErrorCode.Forbidden,
  SIGNATURE_REQUIRED: JsonRpcErrorCode.SignatureRequired,
  SIGNATURE_INVALID: JsonRpcErrorCode.SignatureInvalid,
  UNTRUSTED_SIGNER: JsonRpcErrorCode.UntrustedSigner,
  REPLAYED: JsonRpcErrorCode.Replayed,
  DECRYPTION_FAILED: JsonRpcErrorCode.DecryptionFailed,
  RETRIES_EXHAUSTED: JsonRpcErrorCode.RetriesExhausted,
  SESSION_LOST: JsonRpcErrorCode.SessionLost,
  INTERNAL: JsonRpcErrorCode.InternalError,
};

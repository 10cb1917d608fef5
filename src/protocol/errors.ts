/**
 * dMCP's error classes: `DmcpError`, and one subclass per failure family, so that a handler can tell
 * "the bus could not carry it" from "the request is wrong" with `instanceof`, and `isDmcpError(err, code)`
 * still names one failure. Each family takes only its own codes; `cause` keeps the error underneath.
 * Errors are turned into wire payloads and back in wire-errors.ts, and nowhere else.
 */
import { type ErrorCode, jsonRpcCodeFor } from "./error-codes.js";

export interface DmcpErrorOptions {
  /** The JSON-RPC code an MCP client sees; the code's default (error-codes.ts) unless given. */
  jsonrpcCode?: number | undefined;
  /** Details that travel with the error (`error_notification.payload.data`). */
  data?: unknown;
  /** The error underneath, for logs; it does not travel. */
  cause?: unknown;
}

/**
 * A dMCP failure. `code` is stable; `jsonrpcCode` and `data` are what an MCP client receives when the
 * error crosses the MCP edge. New code throws one of the families below.
 */
export class DmcpError extends Error {
  readonly code: ErrorCode;
  readonly jsonrpcCode: number;
  readonly data: unknown;

  constructor(code: ErrorCode, message: string, options: DmcpErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "DmcpError";
    this.code = code;
    this.jsonrpcCode = options.jsonrpcCode ?? jsonRpcCodeFor[code];
    this.data = options.data;
  }
}

export function isDmcpError(value: unknown, code?: ErrorCode): value is DmcpError {
  return value instanceof DmcpError && (code === undefined || value.code === code);
}

/** The bus could not carry the message: no connection, nobody listening, or too many bytes. */
export type BusErrorCode = typeof ErrorCode.BusUnavailable | typeof ErrorCode.NoResponders | typeof ErrorCode.PayloadTooLarge;

export class BusError extends DmcpError {
  declare readonly code: BusErrorCode;
  constructor(code: BusErrorCode, message: string, options?: DmcpErrorOptions) {
    super(code, message, options);
    this.name = "BusError";
  }
}

/** The call ended without an answer: out of time, cancelled, or the side holding it went away. */
export type CallErrorCode =
  | typeof ErrorCode.DeadlineExceeded
  | typeof ErrorCode.Cancelled
  | typeof ErrorCode.ShuttingDown
  | typeof ErrorCode.ExecutorLost
  | typeof ErrorCode.SessionLost
  | typeof ErrorCode.RetriesExhausted;

export class CallError extends DmcpError {
  declare readonly code: CallErrorCode;
  constructor(code: CallErrorCode, message: string, options?: DmcpErrorOptions) {
    super(code, message, options);
    this.name = "CallError";
  }
}

/** The upstream MCP server is down, went away, or answered with a JSON-RPC error of its own. */
export type UpstreamErrorCode = typeof ErrorCode.UpstreamUnavailable | typeof ErrorCode.UpstreamError | typeof ErrorCode.UpstreamClosed;

export class UpstreamError extends DmcpError {
  declare readonly code: UpstreamErrorCode;
  constructor(code: UpstreamErrorCode, message: string, options?: DmcpErrorOptions) {
    super(code, message, options);
    this.name = "UpstreamError";
  }
}

/** The message or request is refused as it stands (malformed, bad params, no such target, not allowed): the same again fails again. */
export type RequestErrorCode = typeof ErrorCode.InvalidEnvelope | typeof ErrorCode.InvalidParams | typeof ErrorCode.UnknownTarget | typeof ErrorCode.Forbidden;

export class RequestError extends DmcpError {
  declare readonly code: RequestErrorCode;
  constructor(code: RequestErrorCode, message: string, options?: DmcpErrorOptions) {
    super(code, message, options);
    this.name = "RequestError";
  }
}

/** Message security rejected a message: unsigned, forged, untrusted, replayed, or sealed beyond reach (PROTOCOL.md §14.5). */
export type SecurityErrorCode =
  | typeof ErrorCode.SignatureRequired
  | typeof ErrorCode.SignatureInvalid
  | typeof ErrorCode.UntrustedSigner
  | typeof ErrorCode.Replayed
  | typeof ErrorCode.DecryptionFailed;

export class SecurityError extends DmcpError {
  declare readonly code: SecurityErrorCode;
  constructor(code: SecurityErrorCode, message: string, options?: DmcpErrorOptions) {
    super(code, message, options);
    this.name = "SecurityError";
  }
}

/** Anything else that went wrong inside a dMCP component, and any code this version does not know. */
export type InternalErrorCode = typeof ErrorCode.Internal;

export class InternalError extends DmcpError {
  declare readonly code: InternalErrorCode;
  constructor(code: InternalErrorCode, message: string, options?: DmcpErrorOptions) {
    super(code, message, options);
    this.name = "InternalError";
  }
}

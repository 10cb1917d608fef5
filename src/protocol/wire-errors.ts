/**
 * The one place where dMCP errors meet the wire, both ways: an error becomes an `error_notification`
 * payload (bus) or a JSON-RPC error object (MCP edge), and a received payload or an upstream's JSON-RPC
 * error becomes an error of its family. The family is picked by the code, never by the message text.
 */
import { ErrorCode, jsonRpcCodeFor } from "./error-codes.js";
import { BusError, CallError, DmcpError, InternalError, RequestError, SecurityError, UpstreamError, type DmcpErrorOptions } from "./errors.js";
import type { JsonRpcErrorObject } from "./jsonrpc.js";

/** The family of every code: a class whose constructor takes that code (the compiler checks each entry). */
const FAMILY_OF: { [C in ErrorCode]: new (code: C, message: string, options?: DmcpErrorOptions) => DmcpError } = {
  BUS_UNAVAILABLE: BusError,
  NO_RESPONDERS: BusError,
  PAYLOAD_TOO_LARGE: BusError,
  DEADLINE_EXCEEDED: CallError,
  CANCELLED: CallError,
  SHUTTING_DOWN: CallError,
  EXECUTOR_LOST: CallError,
  SESSION_LOST: CallError,
  RETRIES_EXHAUSTED: CallError,
  UPSTREAM_UNAVAILABLE: UpstreamError,
  UPSTREAM_ERROR: UpstreamError,
  UPSTREAM_CLOSED: UpstreamError,
  INVALID_ENVELOPE: RequestError,
  INVALID_PARAMS: RequestError,
  UNKNOWN_TARGET: RequestError,
  FORBIDDEN: RequestError,
  SIGNATURE_REQUIRED: SecurityError,
  SIGNATURE_INVALID: SecurityError,
  UNTRUSTED_SIGNER: SecurityError,
  REPLAYED: SecurityError,
  DECRYPTION_FAILED: SecurityError,
  INTERNAL: InternalError,
};

/** The error of `code`'s family: for a code known only at run time (a received one, a rejection's). */
export function errorForCode(code: ErrorCode, message: string, options?: DmcpErrorOptions): DmcpError {
  const Family = FAMILY_OF[code] as new (code: ErrorCode, message: string, options?: DmcpErrorOptions) => DmcpError;
  return new Family(code, message, options);
}

/** Any thrown value as a dMCP error: itself if it is one, else an INTERNAL error with its message, caused by it. */
export function asDmcpError(value: unknown): DmcpError {
  if (value instanceof DmcpError) return value;
  return new InternalError(ErrorCode.Internal, value instanceof Error ? value.message : String(value), { cause: value });
}

/** The `error_notification` payload for a local error. */
export function errorPayload(error: DmcpError): { code: string; message: string; jsonrpc_code: number; data?: unknown } {
  return {
    code: error.code,
    message: error.message,
    jsonrpc_code: error.jsonrpcCode,
    ...(error.data === undefined ? {} : { data: error.data }),
  };
}

/** The local error for a received `error_notification` payload. */
export function errorFromPayload(payload: { code: string; message: string; jsonrpc_code?: number | undefined; data?: unknown }): DmcpError {
  const known = (Object.values(ErrorCode) as string[]).includes(payload.code);
  const code = (known ? payload.code : ErrorCode.Internal) as ErrorCode;
  // An unknown (newer) code travels on in data.dmcp_code instead of being lost.
  const data = known ? payload.data : { ...(isRecord(payload.data) ? payload.data : payload.data === undefined ? {} : { detail: payload.data }), dmcp_code: payload.code };
  return errorForCode(code, payload.message, { jsonrpcCode: payload.jsonrpc_code ?? jsonRpcCodeFor[code], data });
}

/** What an MCP client receives for a local error. Upstream errors keep their own code, message and data. */
export function toJsonRpcError(error: unknown): JsonRpcErrorObject {
  if (error instanceof DmcpError) {
    const object: JsonRpcErrorObject = { code: error.jsonrpcCode, message: error.message };
    if (error.code === ErrorCode.UpstreamError) {
      if (error.data !== undefined) object.data = error.data;
    } else {
      object.data = { dmcp_code: error.code, ...(isRecord(error.data) ? error.data : error.data === undefined ? {} : { detail: error.data }) };
    }
    return object;
  }
  return { code: jsonRpcCodeFor.INTERNAL, message: "internal gateway error", data: { dmcp_code: ErrorCode.Internal } };
}

/**
 * The UPSTREAM_ERROR for a JSON-RPC error an MCP peer answered with: its code, message and data kept
 * unchanged, so that toJsonRpcError gives the MCP client exactly what the peer sent (PROTOCOL.md §9.2).
 */
export function fromJsonRpcError(error: JsonRpcErrorObject): UpstreamError {
  return new UpstreamError(ErrorCode.UpstreamError, error.message, { jsonrpcCode: error.code, data: error.data });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Conversions between dMCP errors and the error objects of the two edges (bus and MCP). */
import { DmcpError, ErrorCode, jsonRpcCodeFor } from "./errors.js";
import type { JsonRpcErrorObject } from "./jsonrpc.js";

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
  return new DmcpError(code, payload.message, { jsonrpcCode: payload.jsonrpc_code ?? jsonRpcCodeFor[code], data });
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

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

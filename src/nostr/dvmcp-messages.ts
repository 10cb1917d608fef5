/**
 * DVMCP's simplified messages (spec 2025-03-26) and JSON-RPC: a request's content is `{ method,
 * params }` (no `jsonrpc`, no `id`: the event id stands for it), a response's content is the result
 * itself or `{ error }`, a notification's content is `{ method, params }`.
 */
import type { JSONRPCMessage } from "@modelcontextprotocol/client";

type JsonRpcId = string | number;

/** The content of the event that carries a request or notification. */
export function dvmcpContent(method: string, params: unknown): string {
  return JSON.stringify(params === undefined ? { method } : { method, params });
}

/** The JSON-RPC answer to request `id` that a response's content stands for. */
export function answerOf(id: JsonRpcId, content: Record<string, unknown>): JSONRPCMessage {
  // A server that sends full JSON-RPC (DVMCP's bridge does for some errors) is taken at its word.
  if (content.jsonrpc === "2.0" && isObject(content.result)) return { jsonrpc: "2.0", id, result: content.result } as JSONRPCMessage;
  const error = content.error;
  if (isObject(error) && typeof error.code === "number" && typeof error.message === "string") {
    return { jsonrpc: "2.0", id, error: { code: error.code, message: error.message, ...("data" in error ? { data: error.data } : {}) } } as JSONRPCMessage;
  }
  return { jsonrpc: "2.0", id, result: content } as JSONRPCMessage;
}

/**
 * The JSON-RPC notification a notification's content stands for, or undefined when it is none MCP
 * knows: DVMCP's progress may carry just a message (no token, no progress): given the token of the
 * request it belongs to, it passes when it has a progress figure, and is dropped otherwise.
 */
export function notificationOf(content: Record<string, unknown>, progressToken: unknown): JSONRPCMessage | undefined {
  if (typeof content.method !== "string") return undefined;
  const params = isObject(content.params) ? content.params : undefined;
  if (content.method !== "notifications/progress") return { jsonrpc: "2.0", method: content.method, ...(params ? { params } : {}) } as JSONRPCMessage;
  const token = params?.progressToken ?? progressToken;
  if ((typeof token !== "string" && typeof token !== "number") || typeof params?.progress !== "number") return undefined;
  return { jsonrpc: "2.0", method: "notifications/progress", params: { ...params, progressToken: token } } as JSONRPCMessage;
}

/** A response's content: the result itself, or `{ error }`. */
export function responseContent(message: { result?: unknown; error?: unknown }): string {
  return JSON.stringify("error" in message && message.error !== undefined ? { error: message.error } : (message.result ?? {}));
}

/** The simplified message an event's content holds (`{ method, params? }`, no `jsonrpc`), or undefined. */
export function dvmcpMessageOf(content: string): { method: string; params?: Record<string, unknown> } | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(content);
  } catch {
    return undefined;
  }
  if (!isObject(parsed) || "jsonrpc" in parsed || typeof parsed.method !== "string") return undefined;
  return isObject(parsed.params) ? { method: parsed.method, params: parsed.params } : { method: parsed.method };
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * What the MCP schema (2025-11-25 and 2026-07-28 alike) asks of every message a client sends, checked
 * once per hop on every inbound path: the gateway's stdio and HTTP transports, and the endpoint that
 * serves a service on the bus. An MCP server built on the SDK drops a message that fails these checks
 * without an answer (its transport parses each message against this schema), so a request forwarded
 * with, say, `_meta: "x"` would wait for its deadline: it is answered at once instead.
 *
 * Hand-written rather than the SDK's zod schemas: this runs for every call, and a few type checks cost
 * next to nothing. The method-specific params (a tool call's name and arguments, ...) are left to the
 * component that handles the method, which answers them.
 */
import { JsonRpcErrorCode } from "../error-codes.js";
import type { JsonRpcId } from "../jsonrpc.js";

/** The `_meta` key that ties a message to a task (MCP 2025-11-25). */
const RELATED_TASK_META = "io.modelcontextprotocol/related-task";

export interface MessageProblem {
  /** -32600 (invalid request) or -32602 (invalid params). */
  code: number;
  /** Names the field, e.g. `Invalid params: params._meta must be an object`. */
  message: string;
  /** The id to answer with: the message's own when it has a valid one, else null. */
  id: JsonRpcId | null;
}

/**
 * A JSON-RPC id: a string or a finite number. JSON.parse turns 1e999 into Infinity, which
 * JSON.stringify writes back as null: the answer would not carry the request's id.
 */
export function isJsonRpcId(value: unknown): value is string | number {
  return typeof value === "string" || (typeof value === "number" && Number.isFinite(value));
}

/**
 * What is wrong with a request's or notification's `params`, by the MCP schema: an object (if
 * present) whose `_meta` (if present) is an object, with a `progressToken` that is a string or a
 * number and a related task that names its `taskId`. Undefined when nothing is.
 */
export function paramsProblem(params: unknown): string | undefined {
  if (params === undefined) return undefined;
  if (!isPlainObject(params)) return "params must be an object";
  const meta = params._meta;
  if (meta === undefined) return undefined;
  if (!isPlainObject(meta)) return "params._meta must be an object";
  const token = meta.progressToken;
  if (token !== undefined && !isJsonRpcId(token)) return "params._meta.progressToken must be a string or a number";
  const task = meta[RELATED_TASK_META];
  if (task !== undefined && !(isPlainObject(task) && typeof task.taskId === "string")) return `params._meta["${RELATED_TASK_META}"] must be an object with a string taskId`;
  return undefined;
}

/**
 * What is wrong with one inbound JSON-RPC message by JSON-RPC 2.0 and the MCP schema: not a message at
 * all, or a bad id or method (-32600), or params that fail {@link paramsProblem} (-32602). Undefined
 * when it is a valid request, notification or response.
 */
export function messageProblem(value: unknown): MessageProblem | undefined {
  if (!isPlainObject(value)) return invalidRequest("not a JSON-RPC 2.0 message", null);
  const id = isJsonRpcId(value.id) ? value.id : null;
  if (value.jsonrpc !== "2.0") return invalidRequest("not a JSON-RPC 2.0 message", id);
  if (value.id !== undefined && id === null) return invalidRequest("the id must be a string or a number", null);
  if ("method" in value) {
    if (typeof value.method !== "string") return invalidRequest("the method must be a string", id);
    const problem = paramsProblem(value.params);
    return problem === undefined ? undefined : { code: JsonRpcErrorCode.InvalidParams, message: `Invalid params: ${problem}`, id };
  }
  // A response (to a request of the gateway's): a result object, or an error with a code and a message.
  if (id === null) return invalidRequest("neither a request, a notification nor a response", null);
  if ("result" in value) return isPlainObject(value.result) ? undefined : invalidRequest("the result must be an object", null);
  if ("error" in value) {
    const error = value.error;
    const valid = isPlainObject(error) && Number.isInteger(error.code) && typeof error.message === "string";
    return valid ? undefined : invalidRequest("the error must be an object with an integer code and a string message", null);
  }
  return invalidRequest("neither a request, a notification nor a response", null);
}

function invalidRequest(what: string, id: JsonRpcId | null): MessageProblem {
  return { code: JsonRpcErrorCode.InvalidRequest, message: `Invalid Request: ${what}`, id };
}

/** A JSON object: not null, not an array. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

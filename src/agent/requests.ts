/**
 * The MCP methods a native agent answers on the bus. An agent is a tools-only MCP server: tools/call
 * and tools/list (the endpoint answers ping, endpoint.ts); anything else is "method not found", as an
 * MCP server would answer.
 */
import type { RequestHandler } from "../bus/index.js";
import { ErrorCode, JsonRpcErrorCode, RequestError } from "../protocol/index.js";
import type { ToolSet } from "./tools.js";

export function agentRequestHandler(tools: ToolSet): RequestHandler {
  return async (request, context) => {
    const { method, params } = request.payload;
    switch (method) {
      case "tools/call":
        return { ...(await tools.call(params, context)) };
      case "tools/list":
        return { tools: tools.list() };
      default:
        throw new RequestError(ErrorCode.UnknownTarget, `Method not found: ${method}`, { jsonrpcCode: JsonRpcErrorCode.MethodNotFound });
    }
  };
}

/** DVMCP's simplified messages read as JSON-RPC: results, errors, and the notifications MCP has a form for. */
import { describe, expect, it } from "vitest";
import { answerOf, dvmcpContent, notificationOf } from "../../src/nostr/index.js";

describe("DVMCP messages", () => {
  it("writes a request or notification as { method, params }, without jsonrpc or id", () => {
    expect(JSON.parse(dvmcpContent("tools/list", { cursor: "2" }))).toEqual({ method: "tools/list", params: { cursor: "2" } });
    expect(JSON.parse(dvmcpContent("notifications/initialized", undefined))).toEqual({ method: "notifications/initialized" });
  });

  it("reads a response's content as the result, an { error } as the error, and full JSON-RPC as it is", () => {
    expect(answerOf(7, { content: [{ type: "text", text: "hi" }], isError: false })).toEqual({
      jsonrpc: "2.0",
      id: 7,
      result: { content: [{ type: "text", text: "hi" }], isError: false },
    });
    expect(answerOf("a", { error: { code: -32602, message: "bad params", data: 1 } })).toEqual({
      jsonrpc: "2.0",
      id: "a",
      error: { code: -32602, message: "bad params", data: 1 },
    });
    expect(answerOf(1, { jsonrpc: "2.0", id: "their-id", result: { tools: [] } })).toEqual({ jsonrpc: "2.0", id: 1, result: { tools: [] } });
  });

  it("passes notifications, and progress only with a token and a figure", () => {
    expect(notificationOf({ method: "notifications/tools/list_changed" }, undefined)).toEqual({ jsonrpc: "2.0", method: "notifications/tools/list_changed" });
    expect(notificationOf({ method: "notifications/progress", params: { progress: 2, total: 3 } }, "t")).toEqual({
      jsonrpc: "2.0",
      method: "notifications/progress",
      params: { progressToken: "t", progress: 2, total: 3 },
    });
    expect(notificationOf({ method: "notifications/progress", params: { message: "processing" } }, "t")).toBeUndefined();
    expect(notificationOf({ method: "notifications/progress", params: { progress: 1 } }, undefined)).toBeUndefined();
    expect(notificationOf({ status: "success" }, undefined)).toBeUndefined();
  });
});

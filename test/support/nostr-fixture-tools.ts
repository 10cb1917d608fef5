/**
 * Test helper: the tools of the Nostr fixture servers (ContextVM and DVMCP), on an MCP SDK server:
 * they show calls, progress, tool errors and cancellation.
 */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import * as z from "zod";

export interface FixtureToolEvents {
  /** Resolves once a `wait` call runs. */
  readonly waiting: Promise<void>;
  /** Resolves with the reason once a `wait` call was cancelled. */
  readonly cancelled: Promise<unknown>;
}

export function registerNostrFixtureTools(server: McpServer): FixtureToolEvents {
  let markWaiting!: () => void;
  const waiting = new Promise<void>((resolve) => (markWaiting = resolve));
  let markCancelled!: (reason: unknown) => void;
  const cancelled = new Promise<unknown>((resolve) => (markCancelled = resolve));

  server.registerTool("echo", { description: "says the text back", inputSchema: { text: z.string() } }, async ({ text }) => ({
    content: [{ type: "text", text: `echo: ${text}` }],
  }));
  server.registerTool("count", { description: "reports progress up to n", inputSchema: { n: z.number() } }, async ({ n }, extra) => {
    const progressToken = extra._meta?.progressToken;
    for (let i = 1; i <= n && progressToken !== undefined; i++) {
      await extra.sendNotification({ method: "notifications/progress", params: { progressToken, progress: i, total: n } });
    }
    return { content: [{ type: "text", text: `counted to ${n}` }] };
  });
  server.registerTool("fail", { description: "a tool error", inputSchema: {} }, async () => ({
    isError: true,
    content: [{ type: "text", text: "the fixture failed on purpose" }],
  }));
  server.registerTool("wait", { description: "waits until cancelled", inputSchema: {} }, (_args, extra) => {
    markWaiting();
    return new Promise((resolve) => {
      extra.signal.addEventListener("abort", () => {
        markCancelled(extra.signal.reason);
        resolve({ content: [{ type: "text", text: "stopped" }] });
      });
    });
  });
  return { waiting, cancelled };
}

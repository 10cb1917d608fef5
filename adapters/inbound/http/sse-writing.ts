/** Writing Server-Sent Events on a Node response, for the streams the gateway writes past the SDK's transport. */
import type { ServerResponse } from "node:http";

/** Sends the headers of an SSE stream of session `sessionId`. */
export function startSse(res: ServerResponse, sessionId: string): void {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache, no-transform", connection: "keep-alive", "mcp-session-id": sessionId });
}

/** One JSON-RPC message as an SSE event, with its id when it has one (a resumable stream). */
export function sseEvent(message: unknown, id?: string): string {
  return id === undefined ? `event: message\ndata: ${JSON.stringify(message)}\n\n` : `event: message\nid: ${id}\ndata: ${JSON.stringify(message)}\n\n`;
}

/** Test helpers for the HTTP gateway's SSE streams, read with fetch: sessions, events, streams left open. */
import { eventually } from "./processes.js";

export interface SseEvent {
  id?: string;
  retry?: string;
  data: string;
}

export function parseEvents(text: string): SseEvent[] {
  return text
    .split(/\n\n/)
    .filter((block) => block.trim() !== "")
    .map((block) => {
      const event: SseEvent = { data: "" };
      for (const line of block.split("\n")) {
        const colon = line.indexOf(":");
        const field = line.slice(0, colon);
        const value = line.slice(colon + 1).trimStart();
        if (field === "id") event.id = value;
        else if (field === "retry") event.retry = value;
        else if (field === "data") event.data += value;
      }
      return event;
    });
}

/** Reads an SSE stream that stays open until its text includes `marker` (or it ends), then lets it go. */
export async function readStreamUntil(response: Response, marker: string): Promise<SseEvent[]> {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!text.includes(marker)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  await reader.cancel();
  return parseEvents(text);
}

/**
 * Opens a 2025-11-25 session on the gateway (as the identity of `authorization`, if given, declaring
 * `capabilities`) and returns the headers of its requests, once its tools/list includes `listed` (the fixture's tools).
 */
export async function openSession(url: string, authorization?: string, listed = '"progress"', capabilities: Record<string, unknown> = {}): Promise<() => Record<string, string>> {
  const auth: Record<string, string> = authorization ? { authorization } : {};
  const init = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...auth },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 0,
      method: "initialize",
      params: { protocolVersion: "2025-11-25", capabilities, clientInfo: { name: "sse-test", version: "1" } },
    }),
  });
  const session = init.headers.get("mcp-session-id")!;
  await init.text();
  const headers = () => ({
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    "mcp-session-id": session,
    "mcp-protocol-version": "2025-11-25",
    ...auth,
  });
  await (await fetch(url, { method: "POST", headers: headers(), body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) })).text();
  // A deadline, not a timing assert: on a loaded machine, a cluster's gateways can take a while to list what executors announced.
  let last = "";
  await eventually(async () => {
    const tools = await fetch(url, { method: "POST", headers: headers(), body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }) });
    last = await tools.text();
    return last.includes(listed);
  }, 90_000).catch((err: unknown) => {
    const names = [...last.matchAll(/"name":"([^"]+)"/g)].map((match) => match[1]).join(", ");
    throw new Error(`${(err as Error).message}: ${url} lists no ${listed} (it lists: ${names || last.slice(0, 300)})`);
  });
  return headers;
}

/** Reads an SSE stream that stays open, event by event: `until(marker)` returns the events read until one contains it. */
export function eventReader(response: Response) {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  return {
    async until(marker: string): Promise<SseEvent[]> {
      for (;;) {
        const end = text.indexOf("\n\n", text.indexOf(marker));
        if (text.includes(marker) && end >= 0) {
          const events = parseEvents(text.slice(0, end + 2));
          text = text.slice(end + 2);
          return events;
        }
        const { value, done } = await reader.read();
        if (done) throw new Error(`the stream ended before ${marker}: ${text}`);
        text += decoder.decode(value, { stream: true });
      }
    },
    cancel: () => reader.cancel(),
  };
}

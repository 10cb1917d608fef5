/** What the MCP edges do with messages that get no answer, and a small concurrency helper. */
import type { OutcomeClass } from "./tally.js";
import type { RpcMessage } from "./mcp-peers.js";

/**
 * The client notifications the gateway acts on (roots/list_changed: passed on to the session's upstream
 * sessions); every other notification, and every response, it drops (and counts).
 */
const HANDLED_NOTIFICATIONS = new Set(["notifications/initialized", "notifications/cancelled", "notifications/roots/list_changed"]);

/** The outcome of a notification or response that the transport handed to the gateway. */
export function notificationOutcome(message: RpcMessage): { class: OutcomeClass; kind: string } {
  if (typeof message.method !== "string") return { class: "dropped", kind: "response from the client (counted)" };
  if (HANDLED_NOTIFICATIONS.has(message.method)) return { class: "consumed", kind: message.method };
  return { class: "dropped", kind: "notification the gateway does not handle (counted)" };
}

/** The JSON-RPC messages of a body or line as the gateway parses it (none when it is not JSON). */
export function parseMessages(bytes: Uint8Array | string): RpcMessage[] {
  try {
    const value: unknown = JSON.parse(typeof bytes === "string" ? bytes : new TextDecoder().decode(bytes));
    const all = Array.isArray(value) ? value : [value];
    return all.filter((m): m is RpcMessage => typeof m === "object" && m !== null && !Array.isArray(m));
  } catch {
    return [];
  }
}

/** Runs `work` on each item with at most `limit` running at once. */
export async function forEachConcurrently<T>(items: Iterable<T>, limit: number, work: (item: T) => Promise<void>): Promise<void> {
  const running = new Set<Promise<void>>();
  for (const item of items) {
    const task = work(item).finally(() => running.delete(task));
    running.add(task);
    if (running.size >= limit) await Promise.race(running);
  }
  await Promise.all(running);
}

/**
 * The notifications a service may send an MCP client through the gateway. Whatever else arrives is
 * not the client's to see: a service on the bus must not make up list changes, cancellations,
 * requests or progress of requests the client never made.
 */
import { metaOf } from "./meta.js";

/** What an upstream session sends its client session outside a call (PROTOCOL.md §16, "Session notifications"). */
export const SESSION_NOTIFICATIONS: ReadonlySet<string> = new Set(["notifications/message", "notifications/resources/updated", "notifications/elicitation/complete"]);

/** Whether a notification on a call's reply subject reaches its client (PROTOCOL.md §5.6): progress for the client's own token, and log messages. */
export function isCallNotificationForClient(requestParams: Record<string, unknown> | undefined, method: string, params: Record<string, unknown>): boolean {
  if (method === "notifications/message") return true;
  if (method !== "notifications/progress") return false;
  const token = metaOf(requestParams)?.progressToken;
  return token !== undefined && params.progressToken === token;
}

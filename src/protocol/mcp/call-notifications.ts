/**
 * The notifications a call's service may send the MCP client that made the call (PROTOCOL.md §5.6):
 * progress for the token the client's request carries, and log messages. Whatever else arrives on
 * the call's reply subject is not the client's to see: a service on the bus must not make up list
 * changes, cancellations, requests or progress of requests the client never made.
 */
import { metaOf } from "./meta.js";

export function isCallNotificationForClient(requestParams: Record<string, unknown> | undefined, method: string, params: Record<string, unknown>): boolean {
  if (method === "notifications/message") return true;
  if (method !== "notifications/progress") return false;
  const token = metaOf(requestParams)?.progressToken;
  return token !== undefined && params.progressToken === token;
}

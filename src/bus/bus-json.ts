/**
 * One reader of JSON off the bus for subjects and buckets whose messages are never answered: anyone
 * allowed to publish or write there may send anything, so a message that is not what its reader
 * expects is dropped and counted (dmcp_bus_messages_dropped_total), never thrown at its handler.
 */
import { jsonObjectOf } from "../util/index.js";
import type { Bus, DroppedSubject } from "./connection.js";

/**
 * What `shape` makes of the JSON object `bytes` hold, else undefined and counted as dropped on
 * `subject`: `invalid_json` when they hold no JSON object (`null`, an array, a number, not JSON at
 * all), `refused` (default `invalid_message`) when `shape` refuses the object.
 */
export function readBusJson<T>(
  bus: Pick<Bus, "dropped">,
  subject: DroppedSubject,
  bytes: Uint8Array,
  shape: (json: Record<string, unknown>) => T | undefined,
  refused = "invalid_message",
): T | undefined {
  const json = jsonObjectOf(bytes);
  if (!json) {
    bus.dropped(subject, "invalid_json");
    return undefined;
  }
  const value = shape(json);
  if (value === undefined) bus.dropped(subject, refused);
  return value;
}

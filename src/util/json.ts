/**
 * JSON read off the bus, where anyone allowed to publish on a subject may send anything: the object
 * the bytes hold, or undefined when they hold no JSON, or JSON that is not an object (`null`, an
 * array, a number), so that a reader checks fields without first guarding against each of those.
 */
export function jsonObjectOf(bytes: Uint8Array): Record<string, unknown> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return undefined;
  }
  return isJsonObject(value) ? value : undefined;
}

/** A JSON object: not `null`, not an array. */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

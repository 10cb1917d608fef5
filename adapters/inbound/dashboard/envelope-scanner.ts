/**
 * An envelope's metadata (type, sender, correlation id) for the traffic view, read by a byte scanner
 * that skips the payload without decoding or allocating it: the view lists every message while a
 * dashboard watches, and must stay cheap whatever the payloads hold.
 */
import { clip } from "./clip.js";

/** The top-level string fields of an envelope the traffic view shows. */
export interface EnvelopeMeta {
  type?: string;
  sender_id?: string;
  correlation_id?: string;
}

const WANTED_KEYS: ReadonlySet<string> = new Set(["type", "sender_id", "correlation_id"]);
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const utf8 = new TextDecoder();

/**
 * Reads `type`, `sender_id` and `correlation_id` from the top level of a JSON object, skipping every
 * other value (the payload) byte by byte without decoding or allocating it. Returns undefined when the
 * bytes are not a JSON object; never throws. Values are not validated: this is for display.
 */
export function scanEnvelope(bytes: Uint8Array): EnvelopeMeta | undefined {
  const meta: Record<string, string> = {};
  let found = 0;
  let i = skipSpace(bytes, 0);
  if (bytes[i] !== OPEN_OBJECT) return undefined;
  i = skipSpace(bytes, i + 1);
  if (bytes[i] === CLOSE_OBJECT) return meta;
  for (;;) {
    if (bytes[i] !== QUOTE) return undefined;
    const keyEnd = stringEnd(bytes, i);
    if (keyEnd < 0) return undefined;
    // Wanted keys are short ASCII: longer keys are skipped without being decoded.
    const key = keyEnd - i <= 32 ? String.fromCharCode(...bytes.subarray(i + 1, keyEnd - 1)) : "";
    i = skipSpace(bytes, keyEnd);
    if (bytes[i] !== COLON) return undefined;
    i = skipSpace(bytes, i + 1);
    const valueEnd = skipValue(bytes, i);
    if (valueEnd <= i) return undefined;
    if (WANTED_KEYS.has(key) && bytes[i] === QUOTE && !(key in meta)) {
      meta[key] = readString(bytes, i, valueEnd);
      // The fields this package writes after the payload (correlation_id) end the scan early when found.
      if (++found === WANTED_KEYS.size) return meta;
    }
    i = skipSpace(bytes, valueEnd);
    if (bytes[i] === CLOSE_OBJECT) return meta;
    if (bytes[i] !== COMMA) return undefined;
    i = skipSpace(bytes, i + 1);
  }
}

function skipSpace(bytes: Uint8Array, i: number): number {
  while (i < bytes.length) {
    const b = bytes[i];
    if (b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09) break;
    i++;
  }
  return i;
}

/** Index just past the closing quote of the string opening at `start`, or -1. */
function stringEnd(bytes: Uint8Array, start: number): number {
  let from = start + 1;
  for (;;) {
    const quote = bytes.indexOf(QUOTE, from);
    if (quote < 0) return -1;
    let backslashes = 0;
    for (let k = quote - 1; k > start && bytes[k] === BACKSLASH; k--) backslashes++;
    if (backslashes % 2 === 0) return quote + 1;
    from = quote + 1;
  }
}

/** Index just past the JSON value starting at `i`, or -1. */
function skipValue(bytes: Uint8Array, i: number): number {
  const first = bytes[i];
  if (first === QUOTE) return stringEnd(bytes, i);
  if (first === OPEN_OBJECT || first === OPEN_ARRAY) {
    let depth = 0;
    while (i < bytes.length) {
      const b = bytes[i];
      if (b === QUOTE) {
        i = stringEnd(bytes, i);
        if (i < 0) return -1;
        continue;
      }
      if (b === OPEN_OBJECT || b === OPEN_ARRAY) depth++;
      else if (b === CLOSE_OBJECT || b === CLOSE_ARRAY) {
        depth--;
        if (depth === 0) return i + 1;
      }
      i++;
    }
    return -1;
  }
  // A number, true, false or null: up to the next delimiter.
  const start = i;
  while (i < bytes.length) {
    const b = bytes[i];
    if (b === COMMA || b === CLOSE_OBJECT || b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09) break;
    i++;
  }
  return i > start && i < bytes.length ? i : -1;
}

/** Decodes a JSON string for display. Ids are at most 256 characters; longer values are cut, raw. */
function readString(bytes: Uint8Array, start: number, end: number): string {
  if (end - start > 1024) return `${utf8.decode(bytes.subarray(start + 1, start + 256))}…`;
  try {
    return clip(JSON.parse(utf8.decode(bytes.subarray(start, end))) as string, 256);
  } catch {
    return "?";
  }
}

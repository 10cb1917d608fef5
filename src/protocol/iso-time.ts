/**
 * `new Date(ms).toISOString()` without the Date: every envelope carries a timestamp and most a
 * deadline, and toISOString costs about 0.8 µs a call on Node 20 (a runtime call through V8's date
 * cache), as much as the rest of building the envelope. The part up to the second changes once a
 * second, so it is kept for the last two seconds asked for (a call asks for now and for its
 * deadline, turn about); the milliseconds are appended.
 */

/** Years 0 to 9999: toISOString writes four digits for them, a sign and six digits outside. */
const FOUR_DIGIT_YEARS_MS = { min: Date.UTC(0, 0, 1), max: Date.UTC(10000, 0, 1) };

interface SecondSlot {
  second: number;
  /** `YYYY-MM-DDTHH:MM:SS.` of that second. */
  prefix: string;
}

const slots: [SecondSlot, SecondSlot] = [
  { second: Number.NaN, prefix: "" },
  { second: Number.NaN, prefix: "" },
];
let nextSlot = 0;

/** The instant `ms` (epoch milliseconds) as toISOString writes it: `2026-12-07T17:20:00.123Z`. */
export function isoTime(ms: number): string {
  if (!Number.isInteger(ms) || ms < FOUR_DIGIT_YEARS_MS.min || ms >= FOUR_DIGIT_YEARS_MS.max) return new Date(ms).toISOString();
  const second = Math.floor(ms / 1000);
  const millis = ms - second * 1000;
  return `${prefixOf(second)}${millis < 10 ? "00" : millis < 100 ? "0" : ""}${millis}Z`;
}

function prefixOf(second: number): string {
  if (slots[0].second === second) return slots[0].prefix;
  if (slots[1].second === second) return slots[1].prefix;
  const slot = slots[nextSlot]!;
  nextSlot = 1 - nextSlot;
  slot.second = second;
  // "YYYY-MM-DDTHH:MM:SS" and the dot, from the one toISOString of this second.
  slot.prefix = new Date(second * 1000).toISOString().slice(0, 20);
  return slot.prefix;
}

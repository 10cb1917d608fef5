/** isoTime writes what toISOString writes, for every instant it is asked for, in any order. */
import { describe, expect, it } from "vitest";
import { createEnvelope, isoTime } from "../../src/protocol/index.js";

const YEAR_MS = 365.25 * 24 * 3600 * 1000;

describe("isoTime", () => {
  it("matches toISOString around now, at second boundaries, and for deadlines asked for in turn", () => {
    const now = Date.now();
    const instants: number[] = [];
    for (let i = 0; i < 2000; i++) instants.push(now + i * 7, now + 60_000 + i * 7);
    for (const edge of [0, 999, 1000, 1001, -1, -999, -1000, -1001, 1_700_000_000_000, 1_700_000_000_999]) instants.push(edge);
    for (const ms of instants) expect(isoTime(ms)).toBe(new Date(ms).toISOString());
  });

  it("matches toISOString over the four-digit years and falls back outside them", () => {
    let seed = 14;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let i = 0; i < 5000; i++) {
      const ms = Math.floor((random() * 2 - 1) * 4000 * YEAR_MS);
      expect(isoTime(ms)).toBe(new Date(ms).toISOString());
    }
    for (const ms of [Date.UTC(0, 0, 1), Date.UTC(0, 0, 1) - 1, Date.UTC(10000, 0, 1) - 1, Date.UTC(10000, 0, 1), 8.64e15, -8.64e15, 1.5]) {
      expect(isoTime(ms)).toBe(new Date(ms).toISOString());
    }
    expect(() => isoTime(Number.NaN)).toThrow(RangeError);
  });

  it("writes an envelope's deadline the same from a Date, a number or a string", () => {
    const at = Date.UTC(2026, 11, 7, 17, 20, 0, 5);
    const deadlines = [new Date(at), at, new Date(at).toISOString()].map(
      (deadline) => createEnvelope("prompt_request", { service: "s", method: "m" }, { sender: "g", deadline }).deadline,
    );
    expect(deadlines).toEqual(["2026-12-07T17:20:00.005Z", "2026-12-07T17:20:00.005Z", "2026-12-07T17:20:00.005Z"]);
  });
});

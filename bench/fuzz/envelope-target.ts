/**
 * Fuzz target: envelope parsing in this process (decodeEnvelope, validateEnvelope, salvageIds). Every
 * input must come back as a decoded envelope or a DmcpError (INVALID_ENVELOPE, PAYLOAD_TOO_LARGE) with
 * a message; nothing may throw, a decoded envelope must survive a re-encode, a strictly valid envelope
 * must be accepted, and no input may add properties to Object.prototype.
 */
import { performance } from "node:perf_hooks";
import { decodeEnvelope, DEFAULT_MAX_ENVELOPE_BYTES, DmcpError, encodeEnvelope, ErrorCode, salvageIds } from "../../src/protocol/index.js";
import { draw, envelopeInput, type FuzzInput, type FuzzWorld } from "./arbitraries.js";
import { preview, Tally, type InputOutcomes } from "./tally.js";

export async function fuzzEnvelopes(world: FuzzWorld, count: number, seed: number): Promise<Tally> {
  const tally = new Tally("envelope");
  const prototypeKeys = Object.getOwnPropertyNames(Object.prototype).join();
  for (const input of draw(envelopeInput(world, DEFAULT_MAX_ENVELOPE_BYTES), count, seed)) {
    // Let this process's sockets and timers run now and then (pooled HTTP connections, samplers).
    if (tally.tried % 200 === 0) await new Promise((resolve) => setImmediate(resolve));
    const one = tally.begin();
    const started = performance.now();
    try {
      checkOne(input, one);
    } catch (err) {
      tally.crash(`${input.source} ${preview(input.bytes)} threw ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      one.record("failed", "exception");
    }
    tally.slowestMs = Math.max(tally.slowestMs, performance.now() - started);
  }
  if (Object.getOwnPropertyNames(Object.prototype).join() !== prototypeKeys) tally.fail("prototype pollution", "Object.prototype gained properties");
  return tally;
}

function checkOne(input: FuzzInput, one: InputOutcomes): void {
  const decoded = decodeEnvelope(input.bytes);
  if (decoded.ok) {
    const again = decodeEnvelope(encodeEnvelope(decoded.envelope));
    if (!again.ok) one.fail("round trip", `${preview(input.bytes)} decoded, but its re-encoding did not: ${again.error.message}`);
    else one.record("answered", `valid ${decoded.envelope.type}`);
    return;
  }
  const error = decoded.error;
  if (!(error instanceof DmcpError) || (error.code !== ErrorCode.InvalidEnvelope && error.code !== ErrorCode.PayloadTooLarge) || !error.message) {
    one.fail("bad error", `${preview(input.bytes)} gave ${String(error)}`);
    return;
  }
  if (input.source === "envelope/strict") {
    one.fail("valid envelope rejected", `${preview(input.bytes)}: ${error.message}`);
    return;
  }
  // Salvaged ids go into the error's answer, which must itself be a valid envelope.
  const ids = salvageIds(decoded.raw);
  const fits = (id: string | undefined) => id === undefined || (typeof id === "string" && id.length >= 1 && id.length <= 256);
  if (!fits(ids.correlationId) || !fits(ids.sender)) {
    one.fail("salvaged ids", `${preview(input.bytes)} gave ${JSON.stringify(ids)}`);
    return;
  }
  const why = error.code === ErrorCode.PayloadTooLarge ? "" : decoded.raw === undefined ? " (not JSON)" : " (schema)";
  one.record("answered", `${error.code}${why}`);
}

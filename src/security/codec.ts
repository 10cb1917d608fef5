/**
 * Encoding and decoding on a bus, with the bus's message security when it has one (signing,
 * verification, sealing) and plain JSON envelopes when it has none. The bus modules call these at
 * every point where an envelope leaves or enters the process.
 */
import type { Bus } from "../bus/connection.js";
import { createEnvelope, decodeEnvelope, DEFAULT_MAX_ENVELOPE_BYTES, encodeEnvelope, errorPayload, subjects, type DmcpError, type Envelope } from "../protocol/index.js";
import type { SealInfo } from "./seal.js";
import type { VerifiedDecodeResult, VerifyOptions } from "./security.js";

export function encodeFor(bus: Bus, envelope: Envelope | Record<string, unknown>, seal?: SealInfo): Uint8Array {
  return bus.security ? bus.security.encode(envelope, seal) : encodeEnvelope(envelope);
}

export function decodeFrom(bus: Bus, bytes: Uint8Array, options: VerifyOptions): VerifiedDecodeResult {
  return bus.security ? bus.security.decode(bytes, options) : decodeEnvelope(bytes, options.maxBytes ?? DEFAULT_MAX_ENVELOPE_BYTES);
}

/** Publishes a rejected message's error on `dmcp.v1.err.<reporter>`, where operators and tooling watch (best effort). */
export function reportRejected(bus: Bus, reporter: string, error: DmcpError, details: Record<string, unknown> = {}): void {
  const payload = errorPayload(error);
  const data = typeof payload.data === "object" && payload.data !== null && !Array.isArray(payload.data) ? payload.data : {};
  payload.data = { ...data, ...details };
  try {
    if (!bus.nc.isClosed()) bus.nc.publish(subjects.errors(reporter), encodeFor(bus, createEnvelope("error_notification", payload, { sender: reporter })));
  } catch (err) {
    bus.logger.debug({ err }, "could not report a rejected message");
  }
}

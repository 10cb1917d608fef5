/**
 * How envelopes become bytes on the bus and back. The bus modules call their bus's codec at every point
 * where an envelope leaves or enters the process. The default is plain JSON; message security
 * (src/security's MessageSecurity: signing, verification, sealing, PROTOCOL.md §14) is a codec that
 * plugs in here, through `connectBus({ security })`, without the bus knowing more of it than this.
 */
import { decodeEnvelope, DEFAULT_MAX_ENVELOPE_BYTES, encodeEnvelope, type DmcpError, type Envelope } from "../protocol/index.js";

/** Who sealed a message to whom (public curve keys): an answer is sealed the other way round. */
export interface Seal {
  from: string;
  to: string;
}

/** Where a stored message was read from: when the server stored it, and its sequence (or revision). */
export interface StorePosition {
  at: Date;
  tag: number | string;
}

export interface DecodeOptions {
  /** Who receives: a codec that rejects replays remembers ids per receiver (an instance, a subscription). */
  receiver: string;
  /** Larger envelopes are refused with PAYLOAD_TOO_LARGE (default 1 MiB). */
  maxBytes?: number | undefined;
  /**
   * The service the sender must be trusted to speak for: answers to a call, announcements, heartbeats.
   * A function reads it from the envelope once it is opened: a sealed message's service is in its box.
   */
  speaksFor?: string | ((envelope: Envelope) => string | undefined) | undefined;
  /** Read from a stream or bucket rather than received live. */
  stored?: StorePosition | undefined;
}

/** A decoded envelope (with how it was sealed and who signed it, when it was), or why it was refused. */
export type DecodedEnvelope = { ok: true; envelope: Envelope; sealed?: Seal | undefined; signer?: string | undefined } | { ok: false; error: DmcpError; raw: unknown };

export interface EnvelopeCodec {
  /** Serializes an envelope, sealed as `seal` says. */
  encode(envelope: Envelope | Record<string, unknown>, seal?: Seal): Uint8Array;
  /** Decodes and validates one message. Never throws: a refused message is a failed result with a stable error code. */
  decode(bytes: Uint8Array, options: DecodeOptions): DecodedEnvelope;
  /** Whether a failed decode means the codec does not trust the message (signature, replay, seal), rather than that it is malformed. */
  isRejection(error: DmcpError): boolean;
  /** Every message must be signed: what carries no envelope (a bucket delete) cannot be trusted. */
  readonly requireSignatures: boolean;
  /** Whether requests can be sealed at all (false: every call travels in clear, whatever services announce). */
  readonly seals?: boolean;
  /** How to seal a request to `service`, or undefined to send it in clear. */
  requestSeal(service: string): Seal | undefined;
  /** The public key this process announces for a service it serves, so that callers seal to it. */
  servedSealKey(service: string): string | undefined;
  /** The seal key a service's live instances announce, or undefined (none, or they disagree). */
  learnSealKey(service: string, publicKey: string | undefined): void;
  /** Seals a JSON value to this process's own caller key (the `from` of its sealed requests); absent when the codec cannot seal. */
  sealToSelf?(value: unknown): SealedValue;
  /** Opens what sealToSelf sealed (here, or in a process with the same caller key). Throws a DECRYPTION_FAILED DmcpError. */
  openFromSelf?(sealed: unknown): Record<string, unknown>;
  /** Whether `publicKey` is this process's own caller key. */
  isCallerKey?(publicKey: string): boolean;
  /** This process's own caller key (public): what others seal to for it; absent when the codec cannot seal. */
  callerPublicKey?(): string;
  /** Seals a JSON value from this process's own caller key to the curve key `to`; absent when the codec cannot seal. */
  sealFromSelf?(value: unknown, to: string): SealedValue;
  /** Opens a box sealed to this process's own caller key, whoever sealed it. Throws a DECRYPTION_FAILED DmcpError. */
  openToSelf?(sealed: unknown): Record<string, unknown>;
}

/** A value sealed by a codec: the xkv1 box of its JSON from one curve key to another (PROTOCOL.md §14.3). */
export interface SealedValue {
  from: string;
  to: string;
  data: string;
}

/** Plain JSON envelopes: nothing signed, verified or sealed. */
export const JSON_CODEC: EnvelopeCodec = {
  encode: (envelope) => encodeEnvelope(envelope),
  decode: (bytes, options) => decodeEnvelope(bytes, options.maxBytes ?? DEFAULT_MAX_ENVELOPE_BYTES),
  isRejection: () => false,
  requireSignatures: false,
  seals: false,
  requestSeal: () => undefined,
  servedSealKey: () => undefined,
  learnSealKey: () => undefined,
};

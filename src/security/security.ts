/**
 * The message security of one process (PROTOCOL.md §14): it signs what the process sends, verifies
 * what it receives against the keys it trusts, rejects replays, and seals and opens the payloads of
 * calls. It is the codec of the bus it is given to (`connectBus({ security })`: it has the shape of
 * the bus's EnvelopeCodec, src/bus/codec.ts), so every encode and decode point of the bus modules
 * applies it without further wiring; it does not know the bus.
 */
import { Counter, type Registry } from "prom-client";
import {
  decodeEnvelope,
  DEFAULT_MAX_ENVELOPE_BYTES,
  type DmcpError,
  encodeEnvelope,
  ErrorCode,
  SecurityError,
  type SecurityErrorCode,
  validateEnvelope,
  type Envelope,
} from "../protocol/index.js";
import { shared } from "../metrics/index.js";
import { CurveKey, isCurvePublicKey, isSigningPublicKey, KeyError, SigningKey, verifySignature } from "./keys.js";
import { DEFAULT_REPLAY_WINDOW_MS, ReplayGuard, type StoredAt } from "./replay.js";
import { openEnvelope, openValue, sealEnvelope, sealValue, type SealedBox, type SealInfo } from "./seal.js";
import { appendSignature, splitSignature } from "./signature.js";

export interface SecurityOptions {
  /** Signs every message this process sends: an ed25519 nkey seed (`SU…`, `SA…`, `SN…`). */
  signingKey?: SigningKey | string | undefined;
  /** Public keys trusted for every role. This process's own signing key always is. */
  trustedKeys?: string[] | undefined;
  /**
   * Public keys trusted to speak for one service only (its answers, announcements and heartbeats);
   * they are trusted as callers and context publishers too.
   */
  serviceKeys?: Record<string, string[]> | undefined;
  /** Reject unsigned messages and messages signed by keys not trusted. Default: accept them, and verify what trusted keys signed. */
  requireSignatures?: boolean | undefined;
  /** How far a signed message's timestamp may be from the receiver's clock (default 2 minutes). */
  replayWindowMs?: number | undefined;
  /** Curve seeds (`SX…`) of the services this process serves: requests to them may come sealed, and the public half is announced. */
  sealKeys?: Record<string, CurveKey | string> | undefined;
  /** Public curve keys (`X…`) to seal requests to, by service; other services get requests sealed to the key they announce, if any. */
  sealTo?: Record<string, string> | undefined;
  /**
   * The curve seed (`SX…`) this process seals its requests with and opens their answers with, instead
   * of a key it makes for itself: processes given the same one (the gateways of a deployment) open each
   * other's answers, so that another gateway can pass on the answer of a call whose gateway died.
   */
  callerSealKey?: CurveKey | string | undefined;
  /** Where to count verified, unverified and rejected messages. */
  metrics?: Registry | undefined;
}

export interface VerifyOptions {
  /** Who receives: ids are remembered per receiver (an instance, a subscription). */
  receiver: string;
  /** Larger envelopes are refused with PAYLOAD_TOO_LARGE (default 1 MiB). */
  maxBytes?: number | undefined;
  /**
   * The service the signer must be trusted to speak for: answers to a call, announcements, heartbeats.
   * A function reads it from the envelope once it is opened: a sealed message's service is in its box.
   */
  speaksFor?: string | ((envelope: Envelope) => string | undefined) | undefined;
  /** Read from a stream or bucket: freshness is judged against the storage time; the sequence tells a re-read from a replay. */
  stored?: StoredAt | undefined;
}

export type VerifiedDecodeResult = { ok: true; envelope: Envelope; sealed?: SealInfo | undefined; signer?: string | undefined } | { ok: false; error: DmcpError; raw: unknown };

const SECURITY_CODES: ReadonlySet<string> = new Set([
  ErrorCode.SignatureRequired,
  ErrorCode.SignatureInvalid,
  ErrorCode.UntrustedSigner,
  ErrorCode.Replayed,
  ErrorCode.DecryptionFailed,
]);

/** A rejection by message security (as opposed to a malformed message). */
export function isSecurityRejection(error: DmcpError): boolean {
  return SECURITY_CODES.has(error.code);
}

const decoder = new TextDecoder();

export class MessageSecurity {
  readonly requireSignatures: boolean;
  readonly seals = true;
  private readonly signingKey: SigningKey | undefined;
  private readonly trustedKeys: ReadonlySet<string>;
  /** Service keys: the services each one may speak for. */
  private readonly serviceKeys = new Map<string, Set<string>>();
  private readonly replay: ReplayGuard;
  /** Every curve key this process holds, by public key: its own (for calls it makes) and its services'. */
  private readonly curveKeys = new Map<string, CurveKey>();
  private readonly servedSealKeys = new Map<string, CurveKey>();
  private readonly configuredSealTo: ReadonlyMap<string, string>;
  private readonly announcedSealTo = new Map<string, string>();
  private ownCurveKey: CurveKey | undefined;
  private readonly metrics: SecurityMetrics | undefined;

  constructor(options: SecurityOptions = {}) {
    this.signingKey = typeof options.signingKey === "string" ? SigningKey.fromSeed(options.signingKey) : options.signingKey;
    this.requireSignatures = options.requireSignatures ?? false;
    this.trustedKeys = new Set((options.trustedKeys ?? []).map((key) => signingPublicKey(key, "trusted key")));
    for (const [service, keys] of Object.entries(options.serviceKeys ?? {})) {
      for (const key of keys) {
        const roles = this.serviceKeys.get(signingPublicKey(key, `key of service ${service}`)) ?? new Set<string>();
        this.serviceKeys.set(key, roles.add(service));
      }
    }
    const windowMs = options.replayWindowMs ?? DEFAULT_REPLAY_WINDOW_MS;
    if (!Number.isFinite(windowMs) || windowMs <= 0) throw new KeyError("the replay window must be a positive number of milliseconds");
    this.replay = new ReplayGuard(windowMs);
    for (const [service, seed] of Object.entries(options.sealKeys ?? {})) {
      const key = typeof seed === "string" ? CurveKey.fromSeed(seed) : seed;
      this.servedSealKeys.set(service, key);
      this.curveKeys.set(key.publicKey, key);
    }
    for (const [service, key] of Object.entries(options.sealTo ?? {})) {
      if (!isCurvePublicKey(key)) throw new KeyError(`the seal key of service ${service} is not a public curve key (X…): ${key}`);
    }
    this.configuredSealTo = new Map(Object.entries(options.sealTo ?? {}));
    if (options.callerSealKey !== undefined) {
      this.ownCurveKey = typeof options.callerSealKey === "string" ? CurveKey.fromSeed(options.callerSealKey) : options.callerSealKey;
      this.curveKeys.set(this.ownCurveKey.publicKey, this.ownCurveKey);
    }
    this.metrics = options.metrics ? shared(options.metrics, "security", () => new SecurityMetrics(options.metrics!)) : undefined;
  }

  /** The public key this process signs with, if it signs. */
  get signer(): string | undefined {
    return this.signingKey?.publicKey;
  }

  get replayWindowMs(): number {
    return this.replay.windowMs;
  }

  /** Serializes an envelope, sealed when `seal` says so, and signed when this process has a key. */
  encode(envelope: Envelope | Record<string, unknown>, seal?: SealInfo): Uint8Array {
    let body = envelope as Record<string, unknown>;
    // A signature read earlier is not part of what this process signs.
    if ("signature" in body) {
      const { signature: _, ...unsigned } = body;
      body = unsigned;
    }
    if (seal) {
      const from = this.curveKeys.get(seal.from);
      if (!from) throw new KeyError(`cannot seal with ${seal.from}: this process does not hold that curve key`);
      body = sealEnvelope(body, from, seal.to);
    }
    const bytes = encodeEnvelope(body);
    return this.signingKey ? appendSignature(bytes, this.signingKey.publicKey, this.signingKey.sign(bytes)) : bytes;
  }

  /** How to seal a request to a service: to its configured or announced key, from this process's own key. */
  requestSeal(service: string): SealInfo | undefined {
    const to = this.configuredSealTo.get(service) ?? this.announcedSealTo.get(service);
    if (!to) return undefined;
    return { from: this.callerKey().publicKey, to };
  }

  /**
   * Seals a JSON value to this process's own caller key (from it, to it): only this process, and
   * processes given the same `callerSealKey`, can open it. What a gateway keeps on the bus for itself
   * and its peers (the SSE events of sealed calls, PROTOCOL.md §19.3).
   */
  sealToSelf(value: unknown): SealedBox {
    const own = this.callerKey();
    return sealValue(value, own, own.publicKey);
  }

  /**
   * Opens what sealToSelf sealed, here or in a process with the same caller key: only a box from that
   * key to itself, which nobody without the key can make. Throws DECRYPTION_FAILED.
   */
  openFromSelf(sealed: unknown): Record<string, unknown> {
    const own = this.ownCurveKey;
    const box = sealed as { from?: unknown; to?: unknown } | null;
    if (own && typeof box === "object" && box !== null && box.from !== box.to) {
      throw new SecurityError(ErrorCode.DecryptionFailed, `cannot open the sealed event: it was sealed by ${String(box.from)}, not by the key it is sealed to`);
    }
    return this.openToSelf(sealed);
  }

  /**
   * Seals a JSON value from this process's own caller key to the curve key `to`: what a gateway hands
   * another gateway for it (a client's answer to that gateway's sealed request, PROTOCOL.md §19.2).
   */
  sealFromSelf(value: unknown, to: string): SealedBox {
    return sealValue(value, this.callerKey(), to);
  }

  /** Opens a box sealed to this process's own caller key, by whichever key sealed it. Throws DECRYPTION_FAILED. */
  openToSelf(sealed: unknown): Record<string, unknown> {
    const own = this.ownCurveKey;
    return openValue(sealed, (publicKey) => (publicKey === own?.publicKey ? own : undefined)).value;
  }

  /** Whether `publicKey` is the caller key of this process (what sealToSelf seals to). */
  isCallerKey(publicKey: string): boolean {
    return this.ownCurveKey?.publicKey === publicKey;
  }

  /** The public half of this process's caller key, which other gateways seal to for it (PROTOCOL.md §19.3). */
  callerPublicKey(): string {
    return this.callerKey().publicKey;
  }

  /** The curve key this process seals its requests with: the configured one, else one made when first needed. */
  private callerKey(): CurveKey {
    if (!this.ownCurveKey) {
      // One key per process: it only has to live as long as the calls it seals.
      this.ownCurveKey = CurveKey.generate();
      this.curveKeys.set(this.ownCurveKey.publicKey, this.ownCurveKey);
    }
    return this.ownCurveKey;
  }

  /** The public curve key this process announces for a service it serves. */
  servedSealKey(service: string): string | undefined {
    return this.servedSealKeys.get(service)?.publicKey;
  }

  /** Remembers the seal key a service announces, or that it announces none (a configured key takes precedence). */
  learnSealKey(service: string, publicKey: string | undefined): void {
    if (publicKey !== undefined && isCurvePublicKey(publicKey)) this.announcedSealTo.set(service, publicKey);
    else this.announcedSealTo.delete(service);
  }

  /** Whether a failed decode is this security's rejection (see isSecurityRejection), not a malformed message. */
  isRejection(error: DmcpError): boolean {
    return isSecurityRejection(error);
  }

  /**
   * Verifies, opens and validates one message. Never throws: a rejection is a failed result whose
   * error carries a stable code (SIGNATURE_REQUIRED, SIGNATURE_INVALID, UNTRUSTED_SIGNER, REPLAYED,
   * DECRYPTION_FAILED) and is counted.
   */
  decode(bytes: Uint8Array, options: VerifyOptions): VerifiedDecodeResult {
    const maxBytes = options.maxBytes ?? DEFAULT_MAX_ENVELOPE_BYTES;
    if (bytes.byteLength > maxBytes) return decodeEnvelope(bytes, maxBytes);
    const split = splitSignature(bytes);
    // What the receiver acts on is exactly what was signed: B, not the whole message.
    const body = split?.signed ?? bytes;
    let raw: unknown;
    try {
      raw = JSON.parse(decoder.decode(body));
    } catch {
      return decodeEnvelope(body, Number.POSITIVE_INFINITY);
    }
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return validateEnvelope(raw);
    const envelope = raw as Record<string, unknown>;
    const reject = (code: SecurityErrorCode, message: string): VerifiedDecodeResult => {
      this.metrics?.rejected.inc({ code });
      const data = { ...(split ? { signer: split.publicKey } : {}), ...idsOf(envelope) };
      return { ok: false, raw, error: new SecurityError(code, message, { data }) };
    };
    let verified = false;
    if (!split) {
      if ("signature" in envelope)
        return reject(ErrorCode.SignatureInvalid, "malformed signature: it must be the envelope's last field, written exactly as PROTOCOL.md §14.1 says");
      if (this.requireSignatures) return reject(ErrorCode.SignatureRequired, "unsigned message: this receiver requires signatures");
    } else if (!this.trusts(split.publicKey, typeof options.speaksFor === "string" ? options.speaksFor : undefined)) {
      if (this.requireSignatures) return reject(ErrorCode.UntrustedSigner, untrusted(split.publicKey, options.speaksFor));
    } else if (!verifySignature(split.publicKey, split.signed, split.signature)) {
      return reject(ErrorCode.SignatureInvalid, `invalid signature: it does not match the message under ${split.publicKey} (altered, or signed with another key)`);
    } else {
      verified = true;
    }
    let sealed: SealInfo | undefined;
    if ("sealed" in envelope) {
      try {
        sealed = openEnvelope(envelope, (publicKey) => this.curveKeys.get(publicKey));
      } catch (err) {
        // openEnvelope throws only DECRYPTION_FAILED errors.
        const error = err as SecurityError;
        return reject(error.code, error.message);
      }
    }
    const validated = validateEnvelope(envelope);
    if (!validated.ok) return validated;
    // A service read from the opened envelope: its signer was trusted for some role, now for this one.
    const service = typeof options.speaksFor === "function" ? options.speaksFor(validated.envelope) : undefined;
    if (verified && service !== undefined && !this.trusts(split!.publicKey, service)) {
      if (this.requireSignatures) return reject(ErrorCode.UntrustedSigner, untrusted(split!.publicKey, service));
      verified = false;
    }
    if (verified) {
      const replayed = this.replay.check(options.receiver, validated.envelope.id, validated.envelope.timestamp, options.stored);
      if (replayed) return reject(ErrorCode.Replayed, `replayed message: ${replayed}`);
    }
    this.metrics?.accepted.inc({ verification: verified ? "verified" : split ? "untrusted" : "unsigned" });
    return { ok: true, envelope: validated.envelope, ...(sealed ? { sealed } : {}), ...(verified ? { signer: split!.publicKey } : {}) };
  }

  private trusts(publicKey: string, speaksFor: string | undefined): boolean {
    if (publicKey === this.signingKey?.publicKey || this.trustedKeys.has(publicKey)) return true;
    const services = this.serviceKeys.get(publicKey);
    return services !== undefined && (speaksFor === undefined || services.has(speaksFor));
  }
}

function untrusted(publicKey: string, speaksFor: VerifyOptions["speaksFor"]): string {
  const role = typeof speaksFor === "string" ? ` to speak for service "${speaksFor}"` : "";
  return `untrusted signer: ${publicKey} is not trusted${role}`;
}

function signingPublicKey(key: string, what: string): string {
  if (!isSigningPublicKey(key)) throw new KeyError(`the ${what} is not a public signing nkey (U…, A…, N…, O… or C…, 56 characters): ${key}`);
  return key;
}

/** The ids of a rejected message, for the error report. */
function idsOf(envelope: Record<string, unknown>): Record<string, string> {
  const ids: Record<string, string> = {};
  for (const field of ["id", "sender_id"] as const) if (typeof envelope[field] === "string") ids[field] = (envelope[field] as string).slice(0, 256);
  return ids;
}

class SecurityMetrics {
  readonly accepted: Counter<string>;
  readonly rejected: Counter<string>;

  constructor(registry: Registry) {
    this.accepted = new Counter({
      name: "dmcp_messages_accepted_total",
      help: "Messages accepted by message security: verified (signed by a trusted key), unsigned or untrusted (accepted without requireSignatures)",
      labelNames: ["verification"],
      registers: [registry],
    });
    this.rejected = new Counter({
      name: "dmcp_messages_rejected_total",
      help: "Messages rejected by message security, by error code",
      labelNames: ["code"],
      registers: [registry],
    });
  }
}

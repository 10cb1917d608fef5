/** Message security: signed envelopes, replay protection and sealed payloads (PROTOCOL.md §14). */
export { MessageSecurity, isSecurityRejection, type SecurityOptions, type VerifiedDecodeResult, type VerifyOptions } from "./security.js";
export { CurveKey, KeyError, SigningKey, readSeedFile, isCurvePublicKey, isSigningPublicKey } from "./keys.js";
export { DEFAULT_REPLAY_WINDOW_MS, ReplayGuard, type StoredAt } from "./replay.js";
export { SEALED_FIELDS, type SealedBox, type SealInfo } from "./seal.js";
export { appendSignature, splitSignature, SIGNATURE_TAIL_LENGTH } from "./signature.js";

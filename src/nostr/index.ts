/** Nostr, as both Nostr adapters need it: keys, relay URLs, and the guard in front of every subscribed event. */
export { generateSecretKeyHex, parsePublicKey, publicKeyOf, readSecretKey } from "./keys.js";
export { parseRelayUrls } from "./relay-urls.js";
export { DEFAULT_MAX_EVENT_BYTES, EventGuard, type EncryptionPolicy, type EventGuardOptions, type NostrDialect } from "./event-guard.js";
export { GuardedRelays } from "./guarded-relays.js";
export {
  ANNOUNCEMENT_KINDS,
  DVMCP_ANNOUNCEMENT_KINDS,
  DVMCP_NOTIFICATION_KIND,
  DVMCP_REQUEST_KIND,
  DVMCP_RESPONSE_KIND,
  EPHEMERAL_GIFT_WRAP_KIND,
  GIFT_WRAP_KIND,
  MESSAGE_KIND,
} from "./kinds.js";
export { answerOf, dvmcpContent, dvmcpMessageOf, isObject, notificationOf, responseContent } from "./dvmcp-messages.js";

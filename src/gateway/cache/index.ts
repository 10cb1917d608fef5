/** The gateway cache: read-only answers served without a bus hop, shared by every gateway (docs/caching.md). */
export { DEFAULT_CACHE_MAX_BYTES, GatewayCache, type CacheableCall, type CacheRoute, type CacheStats, type GatewayCacheOptions } from "./gateway-cache.js";
export { canonicalJson } from "./key.js";

/**
 * The gateway cache (PROTOCOL.md §18): what an executor announces about caching its service's answers
 * where the upstream says nothing itself, the shared bucket's name, the purge notice every gateway
 * listens to, and the `_meta` key that marks an answer served from a cache.
 */
import * as z from "zod";

/** `result._meta` key of an answer served from a gateway's cache: `{ hit: true, tier, age_ms }`. */
export const META_CACHE = "io.dmcp/cache";

/** The JetStream KV bucket gateways share cached answers in. */
export const CACHE_BUCKET = "dmcp_cache";

/** MCP 2026-07-28's `cacheScope`: `public` answers may be shared between callers, `private` ones only with the same caller. */
export const CACHE_SCOPES = ["public", "private"] as const;
export type CacheScope = (typeof CACHE_SCOPES)[number];

/** The longest TTL an announced rule may give (a day): the shared bucket keeps nothing longer. */
export const MAX_CACHE_TTL_MS = 24 * 3600_000;

const CacheRule = z.looseObject({
  pattern: z.string().min(1).max(512).describe("a tool name or resource URI as the upstream knows it; * matches any run of characters, ? one"),
  ttl_ms: z.number().int().positive().max(MAX_CACHE_TTL_MS).describe("how long an answer is served from the cache"),
  scope: z.enum(CACHE_SCOPES).default("private").describe("public: one answer for every caller; private: one per caller identity"),
});
export type CacheRule = z.infer<typeof CacheRule>;

/**
 * The announcement's `cache` field: opt-in TTLs for tools the upstream marks `readOnlyHint: true` and
 * for resources, for upstreams that give no `ttlMs` themselves. The first matching rule decides.
 */
export const CachePlan = z.looseObject({
  rules: z.array(CacheRule).max(256).default([]),
});
export type CachePlan = z.infer<typeof CachePlan>;

/** A purge notice (`subjects.cachePurge()`): every gateway drops the entries it names from its local cache. */
export const CachePurgeNotice = z.looseObject({
  service: z.string().min(1).max(128).optional().describe("the service whose entries go; absent: every entry"),
  target: z.string().min(1).max(64).optional().describe("with service: only the entries of one tool or URI (its key part)"),
  sender: z.string().max(256).optional().describe("the gateway or command that purged"),
});
export type CachePurgeNotice = z.infer<typeof CachePurgeNotice>;

/** The gateway cache's settings: `dmcp wrap`'s opt-in TTLs (announced to gateways) and `dmcp gateway`'s bounds and off switch. */
import * as z from "zod";
import { MAX_CACHE_TTL_MS, type CachePlan, type CacheRule, type CacheScope } from "../protocol/index.js";
import { parseDuration, parseSize, UsageError } from "./args.js";

const Size = z.union([z.number().int().positive(), z.string().regex(/^\d+(\.\d+)?\s*([kmgKMG]i?[bB]|[bB])?$/, "a size such as 64MB or 1GiB")]);
const Duration = z.union([z.number().int().positive(), z.string().regex(/^\d+(\.\d+)?\s*(ms|s|m|h|d)?$/, "a duration such as 500ms, 30s or 15m")]);

/** The key a config file's server entry may have for the cache (docs/caching.md; the table of docs/configuration.md). */
export const CacheConfigFields = {
  cache: z
    .record(z.string().min(1).max(512), z.union([Duration, z.strictObject({ ttl: Duration, scope: z.enum(["private", "public"]).default("private") })]))
    .default({})
    .describe(
      "opt-in cache TTLs where the server gives no ttlMs: by tool name or resource URI pattern (* and ?), a duration or { ttl, scope }; tools only if marked readOnlyHint; the first matching entry decides",
    ),
};

/** The gateway's `cache` key of a config file. */
export const GatewayCacheConfig = z
  .strictObject({
    enabled: z.boolean().default(true).describe("false: no cache at all (every call reaches the upstream)"),
    maxBytes: Size.optional().describe("the local tier's bound (default 64MiB)"),
    sharedMaxBytes: Size.optional().describe("the shared bucket's bound, set on the bucket (default 256MiB for a bucket without one); when full, its oldest answers go"),
  })
  .default({ enabled: true });

export const cacheOptionSpec = {
  "cache-ttl": { type: "string", multiple: true },
  "cache-public-ttl": { type: "string", multiple: true },
} as const;

export const cacheHelp = `  --cache-ttl PATTERN=DURATION
                        gateways serve the answers of the tools matching PATTERN (those the server
                        marks readOnlyHint only) and of the resources matching it (URIs; * and ?)
                        from their cache for DURATION, per caller identity, when the server gives
                        no ttlMs itself (repeatable; the first match decides)
  --cache-public-ttl PATTERN=DURATION
                        the same, one answer shared by every caller
`;

export const gatewayCacheHelp = `  --cache-max-bytes S   bound of the gateway cache's local tier, e.g. 64MB (default: 64MiB)
  --cache-shared-max-bytes S
                        bound of the cache bucket on the bus that gateways share, set on the bucket
                        (default: 256MiB for a bucket that has none); when full, its oldest answers go
  --no-cache            no gateway cache: every call reaches its upstream
`;

/** The cache plan `dmcp wrap`'s flags give, or undefined without any. */
export function cacheFromFlags(values: { "cache-ttl"?: string[] | undefined; "cache-public-ttl"?: string[] | undefined }): CachePlan | undefined {
  const rules = [
    ...(values["cache-ttl"] ?? []).map((pair) => ruleOf(pair, "private", "--cache-ttl")),
    ...(values["cache-public-ttl"] ?? []).map((pair) => ruleOf(pair, "public", "--cache-public-ttl")),
  ];
  return rules.length > 0 ? { rules } : undefined;
}

/** The cache plan of a config file's server entry, or undefined when it has none. */
export function cacheFromConfig(cache: z.infer<(typeof CacheConfigFields)["cache"]>, path: string): CachePlan | undefined {
  const rules = Object.entries(cache).map(([pattern, entry]) => {
    const { ttl, scope } = typeof entry === "object" ? entry : { ttl: entry, scope: "private" as const };
    return rule(pattern, typeof ttl === "string" ? parseDuration(ttl, `${path}.${pattern}`) : ttl, scope, `${path}.${pattern}`);
  });
  return rules.length > 0 ? { rules } : undefined;
}

/** A gateway's cache: on unless `enabled` is false; its local tier's bound, and the shared bucket's. */
export interface GatewayCacheSettings {
  enabled: boolean;
  maxBytes?: number;
  sharedMaxBytes?: number;
}

/** `dmcp gateway`'s cache settings from --cache-max-bytes, --cache-shared-max-bytes and --no-cache. */
export function gatewayCacheFromFlags(values: {
  "cache-max-bytes"?: string | undefined;
  "cache-shared-max-bytes"?: string | undefined;
  "no-cache"?: boolean | undefined;
}): GatewayCacheSettings {
  for (const flag of ["cache-max-bytes", "cache-shared-max-bytes"] as const) {
    if (values["no-cache"] && values[flag] !== undefined) throw new UsageError(`--${flag} does not go with --no-cache`);
  }
  const size = (flag: "cache-max-bytes" | "cache-shared-max-bytes") => {
    const bytes = values[flag] === undefined ? undefined : parseSize(values[flag], `--${flag}`);
    if (bytes === 0) throw new UsageError(`--${flag} must be more than 0 (--no-cache turns the cache off)`);
    return bytes;
  };
  return settings(values["no-cache"] !== true, size("cache-max-bytes"), size("cache-shared-max-bytes"));
}

/** The gateway's cache settings of a config file. */
export function gatewayCacheFromConfig(cache: z.infer<typeof GatewayCacheConfig>): GatewayCacheSettings {
  const size = (value: number | string | undefined, key: string) => (typeof value === "string" ? parseSize(value, `gateway.cache.${key}`) : value);
  return settings(cache.enabled, size(cache.maxBytes, "maxBytes"), size(cache.sharedMaxBytes, "sharedMaxBytes"));
}

function settings(enabled: boolean, maxBytes: number | undefined, sharedMaxBytes: number | undefined): GatewayCacheSettings {
  return { enabled, ...(maxBytes === undefined ? {} : { maxBytes }), ...(sharedMaxBytes === undefined ? {} : { sharedMaxBytes }) };
}

function ruleOf(pair: string, scope: CacheScope, flag: string): CacheRule {
  const equals = pair.lastIndexOf("=");
  if (equals <= 0 || equals === pair.length - 1) throw new UsageError(`${flag} needs PATTERN=DURATION, got ${JSON.stringify(pair)}`);
  return rule(pair.slice(0, equals).trim(), parseDuration(pair.slice(equals + 1), flag), scope, flag);
}

function rule(pattern: string, ttlMs: number, scope: CacheScope, where: string): CacheRule {
  if (!(ttlMs > 0) || ttlMs > MAX_CACHE_TTL_MS) throw new UsageError(`${where}: a cache TTL is between 1ms and 24h, got ${ttlMs}ms`);
  return { pattern, ttl_ms: ttlMs, scope };
}

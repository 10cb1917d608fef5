/**
 * The gateway cache (docs/caching.md): answers of read-only calls served without a bus hop. A local
 * tier bounded in bytes (lru.ts) in front of the shared one in a KV bucket on the bus, which every
 * gateway reads and writes; concurrent misses for one key go upstream once, at this gateway
 * (single-flight.ts) and across gateways (claims.ts, by a claim in the bucket). What
 * may be kept and for how long is policy.ts's; keys are key.ts's. Invalidation: a resource's update,
 * a service's new catalog, and purges (this gateway's, or any other's by a purge notice on the bus).
 */
import type { CacheScope, CachePurgeNotice } from "../../protocol/index.js";
import { META_CACHE } from "../../protocol/index.js";
import { readBusJson, type Bus, type SharedCache } from "../../bus/index.js";
import type { CacheCounts } from "../../metrics/index.js";
import { isJsonObject, type Logger } from "../../util/index.js";
import type { Identity } from "../access/policy.js";
import type { ServiceCatalog } from "../catalog/catalog.js";
import { cacheKeysOf, keyOfScope, resourceTarget, type CacheKeys } from "./key.js";
import { ByteLru, type CachedEntry } from "./lru.js";
import { decide, lifetimeOf, neverCached, ServiceCacheRules, type CacheDecision } from "./policy.js";
import { SingleFlight } from "./single-flight.js";
import { SharedFlights, type ClaimTiming, type Fetched } from "./claims.js";

export const DEFAULT_CACHE_MAX_BYTES = 64 * 1024 * 1024;

/** What a call tells the cache: the forwarded method and params, who asks, and whether its answer travels sealed. */
export interface CacheableCall {
  method: string;
  /** The client's params (for the task check). */
  params: Record<string, unknown>;
  transport: string;
  identity: Identity;
  /** `2026` for a 2026-07-28 request, `2025` for one of a session: the answers differ in shape. */
  stateless: boolean;
  signal: AbortSignal;
  /** The call's deadline from now: a wait for another gateway's fetch ends then. */
  timeoutMs?: number | undefined;
}

export interface CacheRoute {
  service: string;
  params: Record<string, unknown>;
}

/** Counts of what the cache did, for /metrics and the dashboard; `shared`: whether it uses the bucket on the bus. */
export interface CacheStats extends CacheCounts {
  shared: boolean;
}

export interface GatewayCacheOptions {
  logger: Logger;
  /** The local tier's bound (default 64 MiB). */
  maxBytes?: number | undefined;
  /** This gateway's id, named in the purge notices it sends. */
  id: string;
  /** Whether a call to `service` travels sealed: its answer is never cached (the shared tier is on the broker). */
  sealed: (service: string) => boolean;
  /** How claims of concurrent misses across gateways are kept and given up (claims.ts; tests shorten them). */
  claimTiming?: ClaimTiming | undefined;
}

/** What a shared entry holds: its expiry and age, and the result. */
interface SharedEntry {
  e: number;
  s: number;
  r: unknown;
}

export class GatewayCache {
  private readonly local: ByteLru;
  private readonly flights = new SingleFlight<Record<string, unknown>>();
  private rules = new Map<string, ServiceCacheRules>();
  private fingerprints = new Map<string, string>();
  /** Bumped by each invalidation of a service: a fetch that started before one is not stored. */
  private readonly epochs = new Map<string, number>();
  /** The shared tier's purge under way for each service, which reads of that service wait for. */
  private readonly purging = new Map<string, Promise<void>>();
  private shared: SharedCache | undefined;
  /** Counts a shared entry that is not one (any gateway writes the bucket). */
  private bus: Pick<Bus, "dropped"> | undefined;
  private sharedFlights: SharedFlights | undefined;
  /** When each answer a fetch gave was stored (kept here, or read from the bucket): those the callers that joined it get marked. */
  private readonly keptAt = new WeakMap<object, number>();
  private readonly counts = { local: 0, sharedHits: 0, inflight: 0, misses: 0, stores: 0, invalidations: 0 };

  constructor(private readonly options: GatewayCacheOptions) {
    this.local = new ByteLru(options.maxBytes ?? DEFAULT_CACHE_MAX_BYTES);
  }

  /** Uses the shared tier on the bus from now on, and follows the purge notices of every gateway. */
  attachShared(shared: SharedCache, bus: Pick<Bus, "dropped">): void {
    this.shared = shared;
    this.bus = bus;
    this.sharedFlights = new SharedFlights(shared, this.options.id, this.options.logger, this.options.claimTiming);
    shared.onPurgeNotice((notice) => this.onPurgeNotice(notice));
  }

  /**
   * How the call may be cached, or undefined when it never is: then the caller fetches it as usual,
   * and nothing was allocated for it here.
   */
  decide(call: CacheableCall, route: CacheRoute): CacheDecision | undefined {
    const decision = decide(this.rules.get(route.service), call.method, route.params);
    if (!decision || neverCached(call.params, call.transport) || this.options.sealed(route.service)) return undefined;
    return decision;
  }

  /** The services' catalogs as announced now: their rules, and a service with a new catalog loses its entries. */
  servicesChanged(catalogs: ReadonlyMap<string, ServiceCatalog>): void {
    const rules = new Map<string, ServiceCacheRules>();
    const fingerprints = new Map<string, string>();
    for (const [service, catalog] of catalogs) {
      const compiled = new ServiceCacheRules(catalog);
      if (!compiled.empty) rules.set(service, compiled);
      fingerprints.set(service, JSON.stringify(catalog.catalog));
    }
    for (const [service, fingerprint] of this.fingerprints) {
      // Every gateway sees the announcement: each drops its own entries and the shared ones.
      if (fingerprints.get(service) !== fingerprint) void this.invalidate(service, undefined, "catalog");
    }
    this.rules = rules;
    this.fingerprints = fingerprints;
  }

  /** An upstream said a resource changed: its entries go here, in the shared tier, and (by a notice) at every gateway. */
  resourceUpdated(service: string, uri: string): void {
    const target = resourceTarget(service, uri);
    // The notice goes once the shared tier is purged: a gateway that dropped its copy earlier could
    // read the old answer back from the bucket and keep it.
    void this.invalidate(service, target, "resource updated").then(() =>
      this.shared?.announcePurge({ service, target: target.slice(service.length + 1), sender: this.options.id }),
    );
  }

  stats(): CacheStats {
    return {
      hits: { local: this.counts.local, shared: this.counts.sharedHits, inflight: this.counts.inflight },
      misses: this.counts.misses,
      stores: this.counts.stores,
      evictions: this.local.evictions,
      invalidations: this.counts.invalidations,
      bytes: this.local.bytes,
      entries: this.local.size,
      maxBytes: this.local.maxBytes,
      shared: this.shared !== undefined,
    };
  }

  /** The call's answer through the cache (`decision`: what decide() said), fetched with `fetch` on a miss. */
  async serve(call: CacheableCall, route: CacheRoute, decision: CacheDecision, fetch: () => Promise<Record<string, unknown>>): Promise<Record<string, unknown>> {
    const keys = cacheKeysOf(route.service, call.method, route.params, call.identity, call.stateless ? "2026" : "2025");
    // A rule knows its scope; an upstream's word comes with the answer, which may be for this caller or for all.
    const candidates = decision.rule ? [keyOfScope(keys, decision.rule.scope)] : [keys.private, keys.public];
    const now = Date.now();
    for (const key of candidates) {
      const entry = this.local.get(key, now);
      if (entry) {
        this.counts.local += 1;
        return served(entry, "local", now);
      }
    }
    const lead = () => this.fetchThrough(call, keys, candidates, decision, fetch);
    // A caller that joined the call gets its answer; it is marked as the cache's only if the cache keeps it.
    const follow = (result: Record<string, unknown>) => {
      const keptAt = this.keptAt.get(result);
      if (keptAt === undefined) return structuredClone(result);
      this.counts.inflight += 1;
      return withMarker(structuredClone(result), "inflight", Date.now() - keptAt);
    };
    return this.flights.run(candidates[0]!, lead, follow, fetch, call.signal);
  }

  /** A miss here: the shared tier, else the upstream, whose answer is kept if it may be. */
  private async fetchThrough(
    call: CacheableCall,
    keys: CacheKeys,
    candidates: string[],
    decision: CacheDecision,
    fetch: () => Promise<Record<string, unknown>>,
  ): Promise<Record<string, unknown>> {
    // A purge of the service under way: the bucket may still hold what it removes.
    await this.purging.get(keys.service);
    const epoch = this.epochs.get(keys.service) ?? 0;
    const lookup = () => this.readShared(candidates, keys.service, epoch);
    // The claim of a miss across gateways travels with the look in the bucket.
    const claim = this.sharedFlights?.begin(candidates[0]!);
    const found = await lookup();
    if (found) {
      if (claim) this.sharedFlights!.drop(claim);
      return found;
    }
    const fetchAndStore = async (): Promise<Fetched<Record<string, unknown>>> => {
      this.counts.misses += 1;
      const result = await fetch();
      const lifetime = lifetimeOf(call.method, result, decision);
      // An invalidation while the call ran: its answer may be the old one.
      if (!lifetime || (this.epochs.get(keys.service) ?? 0) !== epoch) return { result, stored: Promise.resolve() };
      return { result, stored: this.store(keyOfScope(keys, lifetime.scope), result, lifetime.ttlMs, lifetime.scope) };
    };
    if (!claim) return (await fetchAndStore()).result;
    const deadline = call.timeoutMs === undefined ? undefined : Date.now() + call.timeoutMs;
    return this.sharedFlights!.run(claim, { lookup, fetch: fetchAndStore, signal: call.signal, deadline });
  }

  /** The first live entry of `candidates` in the shared tier; kept locally unless the service was invalidated meanwhile. */
  private async readShared(candidates: string[], service: string, epoch: number): Promise<Record<string, unknown> | undefined> {
    const { shared, bus } = this;
    if (!shared || !bus) return undefined;
    const values = await Promise.all(candidates.map((key) => shared.get(key)));
    const now = Date.now();
    for (const [index, value] of values.entries()) {
      const entry = value && readBusJson(bus, "cache-entry", value, sharedEntryOf, "invalid_entry");
      if (!entry || entry.expiresAt <= now) continue;
      if ((this.epochs.get(service) ?? 0) === epoch) this.local.set(candidates[index]!, entry);
      this.counts.sharedHits += 1;
      const result = served(entry, "shared", now);
      this.keptAt.set(result, entry.storedAt);
      return result;
    }
    return undefined;
  }

  /** Keeps the answer here and in the shared tier; resolves once the shared tier has it (or failed to take it: a full bucket, no bus). */
  private store(key: string, result: Record<string, unknown>, ttlMs: number, scope: CacheScope): Promise<void> {
    const json = JSON.stringify(result);
    const storedAt = Date.now();
    const entry: CachedEntry = { json, storedAt, expiresAt: storedAt + ttlMs, bytes: Buffer.byteLength(json) };
    this.local.set(key, entry);
    this.keptAt.set(result, storedAt);
    this.counts.stores += 1;
    const shared: SharedEntry = { e: entry.expiresAt, s: storedAt, r: result };
    if (!this.shared) return Promise.resolve();
    return this.shared
      .put(key, new TextEncoder().encode(JSON.stringify(shared)), ttlMs)
      .catch((err: unknown) => this.options.logger.debug({ err, scope }, "could not store a cached answer on the bus"));
  }

  /** Drops a service's entries (or one target's), here and in the shared tier; resolves once the shared tier is purged (or failed to be). */
  private invalidate(service: string, target: string | undefined, why: string): Promise<void> {
    this.dropLocal(service, target);
    if (!this.shared) return Promise.resolve();
    const purged = this.shared
      .purge(target ?? service)
      .catch((err: unknown) => this.options.logger.debug({ err, service, why }, "could not purge cached answers on the bus"))
      .finally(() => {
        if (this.purging.get(service) === purged) this.purging.delete(service);
      });
    this.purging.set(service, purged);
    return purged;
  }

  private dropLocal(service: string | undefined, target: string | undefined): void {
    if (service === undefined) {
      for (const known of this.fingerprints.keys()) this.epochs.set(known, (this.epochs.get(known) ?? 0) + 1);
    } else {
      this.epochs.set(service, (this.epochs.get(service) ?? 0) + 1);
    }
    this.counts.invalidations += 1;
    this.local.deletePrefix(service === undefined ? undefined : `${target ?? service}.`);
  }

  private onPurgeNotice(notice: CachePurgeNotice): void {
    if (notice.service === undefined) this.dropLocal(undefined, undefined);
    else this.dropLocal(notice.service, notice.target ? `${notice.service}.${notice.target}` : undefined);
  }
}

/** A shared entry as the local tier keeps it, when `json` is one (`{ "e": <expiry>, "s": <stored at>, "r": <the result object> }`). */
function sharedEntryOf(json: Record<string, unknown>): CachedEntry | undefined {
  const { e: expiresAt, s: storedAt, r: result } = json as Partial<SharedEntry>;
  if (typeof expiresAt !== "number" || typeof storedAt !== "number" || !isJsonObject(result)) return undefined;
  const text = JSON.stringify(result);
  return { json: text, storedAt, expiresAt, bytes: Buffer.byteLength(text) };
}

/** A fresh copy of a cached answer, marked as served from the cache; a `ttlMs` it carries counts down. */
function served(entry: CachedEntry, tier: "local" | "shared", now: number): Record<string, unknown> {
  const result = JSON.parse(entry.json) as Record<string, unknown>;
  if (typeof result.ttlMs === "number") result.ttlMs = Math.max(0, entry.expiresAt - now);
  return withMarker(result, tier, now - entry.storedAt);
}

function withMarker(result: Record<string, unknown>, tier: "local" | "shared" | "inflight", ageMs: number): Record<string, unknown> {
  const meta = typeof result._meta === "object" && result._meta !== null && !Array.isArray(result._meta) ? (result._meta as Record<string, unknown>) : {};
  result._meta = { ...meta, [META_CACHE]: { hit: true, tier, age_ms: Math.max(0, ageMs) } };
  return result;
}

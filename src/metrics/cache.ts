/** The gateway cache's metrics: read from its counts when /metrics is scraped, so that a hit costs nothing here. */
import { Counter, Gauge, type Registry } from "prom-client";

/** What the cache reports (the gateway's CacheStats has these fields). */
export interface CacheCounts {
  hits: { local: number; shared: number; inflight: number };
  misses: number;
  stores: number;
  evictions: number;
  invalidations: number;
  bytes: number;
  entries: number;
  maxBytes: number;
}

export function instrumentCache(registry: Registry, stats: () => CacheCounts): void {
  const counter = (name: string, help: string, value: (counts: CacheCounts) => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(value(stats()));
      },
    });
  const gauge = (name: string, help: string, value: (counts: CacheCounts) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(value(stats()));
      },
    });
  new Counter({
    name: "dmcp_gateway_cache_hits_total",
    help: "Calls answered by the gateway cache, by tier: local (this gateway), shared (the bucket on the bus), inflight (joined a concurrent miss)",
    labelNames: ["tier"],
    registers: [registry],
    collect() {
      this.reset();
      const { hits } = stats();
      for (const tier of ["local", "shared", "inflight"] as const) this.inc({ tier }, hits[tier]);
    },
  });
  counter("dmcp_gateway_cache_misses_total", "Cacheable calls that went to the upstream", (counts) => counts.misses);
  counter("dmcp_gateway_cache_stores_total", "Answers the gateway cache kept", (counts) => counts.stores);
  counter("dmcp_gateway_cache_evictions_total", "Entries dropped from the local tier to stay within its size bound", (counts) => counts.evictions);
  counter("dmcp_gateway_cache_invalidations_total", "Invalidations: resource updates, new catalogs, purges", (counts) => counts.invalidations);
  gauge("dmcp_gateway_cache_bytes", "Bytes of the answers in the local tier (their JSON text)", (counts) => counts.bytes);
  gauge("dmcp_gateway_cache_entries", "Entries in the local tier", (counts) => counts.entries);
  gauge("dmcp_gateway_cache_max_bytes", "The local tier's size bound", (counts) => counts.maxBytes);
}

/** Prometheus metrics (the bus's and the calls') and the probe server that serves them with /healthz and /readyz. */
export { BusMetrics, CallMetrics, createMetricsRegistry, outcomeOf, shared } from "./registry.js";
export { type ProbeServer, serveProbes } from "./server.js";
export { instrumentCache, type CacheCounts } from "./cache.js";

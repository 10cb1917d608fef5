/**
 * dmcp-gateway's public API: the protocol, the bus, the gateway and executor cores. The adapters are
 * not re-exported (importing the package root does not load express): they are the package's
 * `dmcp-gateway/adapters/inbound` and `dmcp-gateway/adapters/outbound`.
 */
export * from "./protocol/index.js";
export * from "./bus/index.js";
export * from "./gateway/index.js";
export * from "./executor/index.js";
export * from "./agent/index.js";
export * from "./metrics/index.js";
export * from "./tracing/index.js";
export * from "./security/index.js";
export { createLogger, silentLogger, type Logger } from "./util/logger.js";

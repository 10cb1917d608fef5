/** dmcp-gateway's public API: the protocol, the bus, the gateway and executor cores, and the adapters. */
export * from "./protocol/index.js";
export * from "./bus/index.js";
export * from "./gateway/index.js";
export * from "./executor/index.js";
export * from "./agent/index.js";
export * from "../adapters/inbound/index.js";
export * from "../adapters/outbound/index.js";
export * from "./metrics/index.js";
export * from "./tracing/index.js";
export * from "./security/index.js";
export { createLogger, silentLogger, type Logger } from "./util/logger.js";

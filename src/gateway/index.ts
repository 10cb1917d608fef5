export * from "./gateway.js";
export * from "./calls/core.js";
export * from "./sessions/session.js";
export * from "./catalog/catalog.js";
export * from "./context-service.js";
export * from "../../adapters/inbound/dashboard/monitor.js";
export * from "./access/policy.js";

export * from "./gateway.js";
export * from "./calls/core.js";
export * from "./sessions/session.js";
export type { InboundMessageInfo, InboundTransport } from "./sessions/inbound-transport.js";
export * from "./catalog/catalog.js";
export * from "./context-service.js";
export * from "../../adapters/inbound/dashboard/monitor.js";
export * from "./access/policy.js";
export * from "./sessions/stateless.js";

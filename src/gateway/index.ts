export * from "./gateway.js";
export * from "./core.js";
export * from "./session.js";
export * from "./catalog.js";
export * from "./context-service.js";
export * from "./monitor.js";
export * from "./policy.js";
export * from "./stateless.js";

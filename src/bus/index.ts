export * from "./connection.js";
export * from "./rpc.js";
export * from "./registry.js";
export * from "./nats-server.js";
export * from "./context.js";
export * from "./endpoint.js";
export * from "./discovery.js";

export * from "./delivery.js";
export * from "./envelope.js";
export * from "./errors.js";
export * from "./jsonrpc.js";
export * from "./mapping.js";
export * from "./subjects.js";
export { jsonSchemas } from "./json-schema.js";
export * from "./mcp-meta.js";
export * from "./param-headers.js";

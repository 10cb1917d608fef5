/** Outbound adapters: an existing MCP server as the upstream of an executor (a connector per transport). */
export { stdioConnector, type StdioServerSpec } from "./stdio/index.js";
export { httpConnector, type HttpServerSpec } from "./http/index.js";
export { nostrConnector, type NostrServerSpec } from "./nostr/index.js";

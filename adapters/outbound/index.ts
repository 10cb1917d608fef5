/**
 * Outbound adapters: an existing MCP server as the upstream of an executor (a connector per transport).
 * The Nostr one (./nostr/index.js) is not re-exported here: it loads the ContextVM SDK, which only
 * `dmcp wrap --nostr` needs, so the CLI imports it when asked for.
 */
export { stdioConnector, type StdioServerSpec } from "./stdio/index.js";
export { httpConnector, type HttpServerSpec } from "./http/index.js";

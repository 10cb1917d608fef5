/** Inbound adapters: the gateway as an MCP server, each transport handing client messages to a gateway session (InboundTransport). */
export { DEFAULT_MAX_LINE_BYTES, LineStdioServerTransport, serveStdio } from "./stdio/index.js";
export {
  AuthError,
  createAuthenticator,
  followTokensFile,
  HTTP_TIMEOUTS,
  parseRateLimit,
  parseTokens,
  protectedResourceMetadata,
  readTokensFile,
  serveHttp,
  StaticTokens,
  type Authenticate,
  type AuthOptions,
  type HttpGatewayServer,
  type HttpServeOptions,
  type HttpTimeouts,
  type Identity,
  type RateLimit,
  type TokensFile,
} from "./http/index.js";
export { serveNostr, type NostrGatewayServer, type NostrServeOptions } from "./nostr/index.js";
export { DASHBOARD_PATH, GatewayMonitor, mountDashboard, type Dashboard, type DashboardOptions, type DashboardState, type MonitorOptions, type MonitorUpdate } from "./dashboard/index.js";

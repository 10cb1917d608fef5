/**
 * Inbound adapters: the gateway as an MCP server, each transport handing client messages to a gateway session (InboundTransport).
 * The Nostr one (./nostr/index.js) is not re-exported here: it loads the ContextVM SDK, which only
 * `dmcp gateway --nostr` needs, so the CLI imports it when asked for.
 */
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
export {
  DASHBOARD_PATH,
  GatewayMonitor,
  mountDashboard,
  type Dashboard,
  type DashboardOptions,
  type DashboardState,
  type MonitorOptions,
  type MonitorUpdate,
} from "./dashboard/index.js";

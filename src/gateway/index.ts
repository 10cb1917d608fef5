/** The gateway: the MCP-facing core, its client sessions and what they are built from. */
export { Gateway, type GatewayOptions } from "./gateway.js";
export { DEFAULT_CALL_TIMEOUT_MS, GatewayCore, type GatewayCoreOptions } from "./core.js";
export { GatewaySession, type SessionOptions, type SharedState } from "./sessions/session.js";
export { SharedSessions, type SessionChanges } from "./sessions/shared-sessions.js";
export { RATE_SHARE_INTERVAL_MS, RateSharing, type RateShare } from "./access/rate-sharing.js";
export type { SessionState } from "./sessions/session-state.js";
export type { EventFollow, FollowStart, LoggedStream, SessionEventLog, StoredEvent, StreamCall } from "../bus/index.js";
export { GET_STREAM } from "../bus/index.js";
export type { InboundMessageInfo, InboundTransport } from "./sessions/inbound-transport.js";
export { Call, type CallRequest, type CallSession, type NotificationSink, type UpstreamTie } from "./calls/call.js";
export { Dispatcher, type CallObserver, type CallStart, type DispatcherOptions } from "./calls/dispatcher.js";
export { SessionPins } from "./calls/session-pins.js";
export { DEFAULT_CACHE_MAX_BYTES, GatewayCache, type CacheStats } from "./cache/index.js";
export {
  AggregatedCatalog,
  catalogsByService,
  NAME_SEPARATOR,
  parseQualifiedUri,
  qualifyName,
  qualifyUri,
  type Collision,
  type ResourceRoute,
  type Route,
  type ServiceCatalog,
} from "./catalog/catalog.js";
export { CatalogKeeper, type CatalogKeeperOptions, type InvalidAnnouncementItem, type ListKind } from "./catalog/catalog-keeper.js";
export { routeOf, type CallRoute, type RoutedRequest, type Routing, type ServiceDirectory } from "./catalog/routing.js";
export { ContextService, GATEWAY_SERVICE, HISTORY_TOOL, PUBLISH_TOOL, type ContextServiceOptions } from "./context-service.js";
export { AccessControl, type AuthorizedCall } from "./access/access-control.js";
export {
  AccessPolicy,
  ALLOW_ALL,
  ANONYMOUS,
  callerAccess,
  globToRegExp,
  PolicySchema,
  type Access,
  type CallerAccess,
  type Identity,
  type ItemKind,
  type PolicyConfig,
  type PolicyTarget,
} from "./access/policy.js";

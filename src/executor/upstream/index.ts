export type { UpstreamConnector } from "./connector.js";
export { HttpStatusError, type UpstreamTransport } from "./transport.js";
export { CLIENT_INFO, UpstreamOpener, type OpensUpstream } from "./opener.js";
export { DEFAULT_BACKOFF, UpstreamSupervisor, type BackoffOptions, type SupervisorEvents } from "./supervisor.js";
export { StatelessLane } from "./stateless-lane.js";
export { DEFAULT_LISTEN_BACKOFF, listenFilter, ownStatelessMeta, UpstreamListen, type ListenBackoff } from "./upstream-listen.js";
export { fetchCatalog } from "./catalog.js";
export {
  DEFAULT_CLIENT_CAPABILITIES,
  describeError,
  McpUpstream,
  refusedSessions,
  statelessEnvelope,
  UPSTREAM_PROTOCOL_VERSION,
  type ServerRequestHandler,
  type UpstreamInfo,
  type UpstreamRequestOptions,
} from "./upstream.js";

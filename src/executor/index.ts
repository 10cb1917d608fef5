export { Executor, type ExecutorOptions } from "./executor.js";
export type { ClientSessionRef, ExecutorRequest, SessionRequest } from "./request.js";
export {
  CLIENT_INFO,
  DEFAULT_BACKOFF,
  DEFAULT_CLIENT_CAPABILITIES,
  describeError,
  fetchCatalog,
  HttpStatusError,
  McpUpstream,
  refusedSessions,
  statelessEnvelope,
  UPSTREAM_PROTOCOL_VERSION,
  UpstreamOpener,
  UpstreamSupervisor,
  type BackoffOptions,
  type OpensUpstream,
  type ServerRequestHandler,
  type SupervisorEvents,
  type UpstreamConnector,
  type UpstreamInfo,
  type UpstreamRequestOptions,
  type UpstreamTransport,
} from "./upstream/index.js";
export { patternMatcher, planDelivery, usesDurable, type DeliveryChoice, type DeliveryOptions, type ToolRule } from "../bus/index.js";

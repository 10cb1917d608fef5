/** The dMCP wire, pure: what travels on the bus and how it is checked, built, encoded and named. No I/O. */
export { CACHE_BUCKET, CACHE_SCOPES, CachePlan, CachePurgeNotice, MAX_CACHE_TTL_MS, META_CACHE, type CacheRule, type CacheScope } from "./cache.js";
export { cancellation, cancelReasonOf, type CancelSignal, MAX_CANCEL_REASON_CHARS } from "./cancellation.js";
export { decodeEnvelope, DEFAULT_MAX_ENVELOPE_BYTES, encodeEnvelope, MAX_REPORTED_ISSUES, salvageIds, validateEnvelope, type DecodeResult } from "./codec.js";
export { ACCEPTED_METHOD, CANCEL_METHOD, RELAYED_CLIENT_NOTIFICATIONS, SESSION_CLOSE_METHOD, STREAM_CLOSED_METHOD } from "./control-methods.js";
export { createEnvelope, type EnvelopeOptions } from "./create-envelope.js";
export { isoTime } from "./iso-time.js";
export {
  DeliveryPlan,
  DELIVERY_MODES,
  isPriorityLane,
  META_ATTEMPT,
  META_CORRELATION_ID,
  META_PRIORITY,
  PRIORITY_LANES,
  type DeliveryMode,
  type PriorityLane,
} from "./delivery.js";
export {
  AgentHeartbeat,
  AgentHeartbeatPayload,
  AgentProfile,
  AnnouncePayload,
  Caller,
  Catalog,
  ClientSession,
  ContextUpdate,
  ContextUpdatePayload,
  DMCP_VERSION,
  Envelope,
  ErrorNotification,
  ErrorNotificationPayload,
  HeartbeatPayload,
  InstanceStatus,
  isEnvelopeId,
  MAX_ENVELOPE_ID_CHARS,
  MESSAGE_TYPES,
  PromptRequest,
  PromptRequestPayload,
  PromptResponse,
  PromptResponsePayload,
  SealedEnvelope,
  Signature,
  ToolEntry,
  TopicName,
  type MessageType,
  type PayloadOf,
} from "./envelope.js";
export { ERROR_CODES, ErrorCode, jsonRpcCodeFor, JsonRpcErrorCode } from "./error-codes.js";
export {
  BusError,
  CallError,
  DmcpError,
  InternalError,
  isDmcpError,
  RequestError,
  SecurityError,
  UpstreamError,
  type BusErrorCode,
  type CallErrorCode,
  type DmcpErrorOptions,
  type InternalErrorCode,
  type RequestErrorCode,
  type SecurityErrorCode,
  type UpstreamErrorCode,
} from "./errors.js";
export { jsonSchemas } from "./json-schema.js";
export {
  errorResponse,
  isErrorResponse,
  isNotification,
  isRequest,
  isResponse,
  resultResponse,
  type JsonRpcErrorObject,
  type JsonRpcErrorResponse,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
  type JsonRpcResultResponse,
} from "./jsonrpc.js";
export {
  assertToken,
  CONTEXT_STREAM,
  CONTEXT_URI_PREFIX,
  contextUri,
  DEAD_LETTER_STREAM,
  InvalidSubjectTokenError,
  isValidToken,
  isValidTopic,
  parseHeartbeatSubject,
  parseRegistryKey,
  parseWorkSubject,
  REGISTRY_BUCKET,
  registryKey,
  RESULTS_BUCKET,
  SUBJECT_ROOT,
  subjects,
  TOPIC_PATTERN,
  topicOfSubject,
  topicOfUri,
  WORK_STREAM,
  workConsumer,
} from "./subjects.js";
export { asDmcpError, errorForCode, errorFromPayload, errorPayload, fromJsonRpcError, toJsonRpcError } from "./wire-errors.js";
export { formatIssues } from "./zod-issues.js";

// MCP revision rules (protocol/mcp/).
export { isJsonRpcId, isPlainObject, messageProblem, paramsProblem, type MessageProblem } from "./mcp/message-schema.js";
export { isCallNotificationForClient, SESSION_NOTIFICATIONS } from "./mcp/call-notifications.js";
export { mcpNameField, META, metaOf, requestedVersion, STATELESS_PROTOCOL_VERSIONS, StatelessErrorCode, TASK_METHODS, withoutStatelessMeta } from "./mcp/meta.js";
export {
  decodeParamValue,
  encodeParamValue,
  PARAM_HEADER_PREFIX,
  paramHeaderMismatch,
  paramHeadersOf,
  paramHeaderValues,
  type ParamHeader,
} from "./mcp/param-headers.js";
export { LATEST_SESSION_PROTOCOL_VERSION, negotiatedVersion, SESSION_PROTOCOL_VERSIONS, SUPPORTED_PROTOCOL_VERSIONS } from "./mcp/versions.js";
export {
  checkMetaKeys,
  checkStatelessMeta,
  checkVersion,
  isCacheableMethod,
  parseSubscriptionFilter,
  REMOVED_METHODS,
  statelessResult,
  TASKS_EXTENSION,
  wantsLogMessage,
  type SubscriptionFilter,
} from "./mcp/stateless.js";

/**
 * Everything NATS: the only folder that talks to the server. Its users get the operations below, in
 * dMCP terms, and never the connection itself.
 */
// The connection and its operations.
export {
  connectBus,
  dropReason,
  instrumentBus,
  isPermissionDenied,
  seedUrls,
  type Bus,
  type BusConnectOptions,
  type BusSubscription,
  type DroppedSubject,
  type PermissionDenial,
  type BusSubscribeOptions,
} from "./connection.js";
export { readBusJson } from "./bus-json.js";
export type { BusMessage } from "./message.js";
export type { BusTap } from "./tap.js";
// How envelopes travel: the codec message security plugs in as.
export { JSON_CODEC, type DecodedEnvelope, type DecodeOptions, type EnvelopeCodec, type Seal, type StorePosition } from "./codec.js";
// Calling services, and serving one.
export { Requester, type CallOptions, type CallSignal, type RequestRoute } from "./requester.js";
export { CallCancellation } from "./call-cancellation.js";
export { DEFAULT_RECEIPT_DELAY_MS, ServiceEndpoint, type Delivery, type EndpointOptions, type EndpointStats, type RequestContext, type RequestHandler } from "./endpoint.js";
export { NatsServicesEndpoint, type NatsServicesOptions } from "./nats-services.js";
// The registry of services.
export {
  ANNOUNCE_REFRESH_MS,
  createRegistryBucket,
  DEFAULT_HEARTBEAT_MS,
  InstancePresence,
  MISSED_HEARTBEATS,
  REGISTRY_STREAM,
  REGISTRY_TTL_MS,
  RegistryView,
  type AnnouncementInput,
  type LiveInstance,
  type PresenceOptions,
  type RegistryProblem,
} from "./registry.js";
// Context streams.
export {
  CONTEXT_STREAM_SPEC,
  ContextStreams,
  DEFAULT_RETENTION,
  durableName,
  type BadContextMessage,
  type ContextEntry,
  type ContextRetention,
  type ReplayFrom,
} from "./context-streams.js";
// JetStream streams and KV buckets.
export {
  awaitStreams,
  checkStream,
  ensureStream,
  hasJetStream,
  kvStream,
  StreamConfigError,
  streamInfo,
  streamsExist,
  whenStreamsExist,
  type StreamSpec,
  type StreamWaitOptions,
} from "./streams.js";
export { ensureKvBucket, type KvBucket, type KvBucketOptions, type KvValue } from "./kv-bucket.js";
export { ensureTasksBucket, MAX_TASK_TTL_MS, TASKS_BUCKET } from "./tasks-bucket.js";
export { ensureCacheBucket, type SharedCache } from "./cache-bucket.js";
export { EventsDiscardedError } from "./follow-gaps.js";
export {
  GET_STREAM,
  openSessionEvents,
  SESSION_EVENTS_PER_STREAM,
  SESSION_EVENTS_STREAM,
  type EventFollow,
  type FollowStart,
  type LoggedStream,
  type SessionEventLog,
  type StoredEvent,
  type StreamCall,
} from "./session-events.js";
export { ensureSessionsBucket, SESSIONS_BUCKET, type SessionChange, type SessionsBucket } from "./sessions-bucket.js";
// Every stream and bucket at once, as `dmcp up` creates them before its executors start.
export { provisionStreams } from "./provision.js";
// Durable delivery.
export {
  backoffDelay,
  DEFAULT_DURABLE_SETTINGS,
  ensureLaneConsumer,
  ensureWorkStreams,
  provisionWorkStreams,
  serverFeatures,
  WORK_DUPLICATE_WINDOW_MS,
  WORK_STREAMS,
  type DurableSettings,
  type ServerFeatures,
} from "./durable/work-queue.js";
export {
  DEFAULT_RESULT_TTL_MS,
  deliveryOutcomes,
  isSuspect,
  markSuspect,
  recordDelivery,
  RESULTS_STREAM,
  resultKey,
  ResultStore,
  type DeliveryOutcome,
  type StoredAnswer,
} from "./durable/result-store.js";
export { DEAD_LETTER_HEADERS, DeadLetters, retriesExhausted, type DeadRequest } from "./durable/dead-letters.js";
export { DurableRoute } from "./durable/durable-route.js";
export { DurableWorker, type DurableWorkerOptions, type DurableWorkerStats } from "./durable/durable-worker.js";
export { DeliveryTable } from "./durable/delivery-table.js";
export { patternMatcher, planDelivery, usesDurable, type DeliveryChoice, type DeliveryOptions, type ToolRule } from "./durable/delivery-plan.js";
// The embedded nats-server.
export {
  findNatsServerBinary,
  NatsServerNotFoundError,
  NatsServerStartError,
  startNatsServer,
  type EmbeddedNats,
  type EmbeddedNatsOptions,
} from "./nats-server.js";

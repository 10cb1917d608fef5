/**
 * MCP 2026-07-28, the stateless revision: no initialize and no session; every request carries its
 * protocol version, client info and client capabilities in `params._meta`. These are the rules the
 * gateway applies to such a request on any transport (the HTTP adapter adds the header checks); the
 * gateway's sessions/stateless.ts dispatches by them.
 */
import { ErrorCode, JsonRpcErrorCode } from "../error-codes.js";
import { DmcpError } from "../errors.js";
import { META, metaOf, STATELESS_PROTOCOL_VERSIONS, StatelessErrorCode } from "./meta.js";
import { isPlainObject } from "./message-schema.js";

/** The tasks extension of 2026-07-28 (SEP-2663): a client declares it to get tasks; an upstream, to keep its own. */
export const TASKS_EXTENSION = "io.modelcontextprotocol/tasks";

/** Methods of the 2025 revisions that 2026-07-28 removed: a stateless client gets "method not found". */
export const REMOVED_METHODS = new Set(["initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"]);

/**
 * Results a 2026-07-28 client may cache: they carry `ttlMs` and `cacheScope`. An upstream's own hints
 * on a result that passes through (resources/read, the skills extension's methods) are kept; the
 * lists and discovery the gateway builds itself are `private` with `ttlMs: 0`, as they depend on the
 * caller's identity (access policy) and change whenever a service joins or leaves the bus.
 */
const CACHEABLE = new Set([
  "server/discover",
  "tools/list",
  "prompts/list",
  "resources/list",
  "resources/templates/list",
  "resources/read",
  "skills/list",
  "skills/get",
  "resources/directory/read",
]);

/** Whether MCP 2026-07-28 lets `method`'s results carry `ttlMs` and `cacheScope` (a cache may honour them). */
export function isCacheableMethod(method: string): boolean {
  return CACHEABLE.has(method);
}

/** A 2026 request (one that names `version` in its `_meta`) must name its capabilities too, and a version the gateway speaks statelessly. */
export function checkStatelessMeta(params: Record<string, unknown> | undefined, version: string): void {
  checkMetaKeys(params);
  checkVersion(version);
  checkClient(params);
  checkLogLevel(params);
}

/** The 2026-07-28 schema's client capabilities (an object) and client info (a name and a version). */
function checkClient(params: Record<string, unknown> | undefined): void {
  const meta = metaOf(params)!;
  if (!isPlainObject(meta[META.clientCapabilities])) throw invalidMeta(`_meta ${META.clientCapabilities} must be an object`);
  const info = meta[META.clientInfo];
  if (info !== undefined && !(isPlainObject(info) && typeof info.name === "string" && typeof info.version === "string")) {
    throw invalidMeta(`_meta ${META.clientInfo} must be an object with a string name and version`);
  }
}

function invalidMeta(what: string): DmcpError {
  return new DmcpError(ErrorCode.InvalidParams, `Invalid params: ${what}`, { jsonrpcCode: JsonRpcErrorCode.InvalidParams });
}

/** MCP's log levels, least severe first. */
const LOG_LEVELS = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"];

function checkLogLevel(params: Record<string, unknown> | undefined): void {
  const level = metaOf(params)?.[META.logLevel];
  if (level !== undefined && !LOG_LEVELS.includes(level as string)) throw invalidMeta(`_meta ${META.logLevel} must be one of ${LOG_LEVELS.join(", ")}`);
}

/**
 * Whether a log message of a 2026-07-28 request's call reaches its client: a request asks for log
 * messages per call (`_meta` logLevel) and gets those at or above that level, none without one. Applied
 * at the gateway because a 2025 upstream, which gets no such key, logs at its session's level.
 */
export function wantsLogMessage(requestParams: Record<string, unknown> | undefined, message: Record<string, unknown>): boolean {
  const threshold = LOG_LEVELS.indexOf(metaOf(requestParams)?.[META.logLevel] as string);
  if (threshold < 0) return false;
  const level = LOG_LEVELS.indexOf(message.level as string);
  return level < 0 || level >= threshold;
}

/** Throws INVALID_PARAMS (-32602) when `_meta` lacks the protocol version or the client capabilities. */
export function checkMetaKeys(params: Record<string, unknown> | undefined): void {
  const meta = metaOf(params);
  const missing = [META.protocolVersion, META.clientCapabilities].filter((key) => meta?.[key] === undefined);
  if (missing.length > 0) {
    throw new DmcpError(ErrorCode.InvalidParams, `Invalid params: missing _meta keys: ${missing.join(", ")}`, {
      jsonrpcCode: JsonRpcErrorCode.InvalidParams,
      data: { missing },
    });
  }
}

export function checkVersion(version: string): void {
  if (!STATELESS_PROTOCOL_VERSIONS.includes(version)) throw unsupportedVersion(version);
}

export function unsupportedVersion(requested: string): DmcpError {
  return new DmcpError(ErrorCode.InvalidParams, `Unsupported protocol version: ${requested}`, {
    jsonrpcCode: StatelessErrorCode.UnsupportedProtocolVersion,
    data: { supported: STATELESS_PROTOCOL_VERSIONS, requested },
  });
}

/** The 2026-07-28 result fields: `resultType`, and caching hints on cacheable results (per identity, so private). */
export function statelessResult(method: string, result: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...result };
  out.resultType ??= "complete";
  if (CACHEABLE.has(method)) {
    out.ttlMs ??= 0;
    out.cacheScope ??= "private";
  }
  return out;
}

/** What a `subscriptions/listen` client opts in to; anything else is never sent on its stream. */
export interface SubscriptionFilter {
  toolsListChanged?: boolean;
  promptsListChanged?: boolean;
  resourcesListChanged?: boolean;
  resourceSubscriptions?: string[];
}

export function parseSubscriptionFilter(params: Record<string, unknown>): SubscriptionFilter {
  const raw = params.notifications;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new DmcpError(ErrorCode.InvalidParams, "subscriptions/listen needs params.notifications (the notifications to receive)", {
      jsonrpcCode: JsonRpcErrorCode.InvalidParams,
    });
  }
  const filter = raw as Record<string, unknown>;
  const out: SubscriptionFilter = {};
  for (const key of ["toolsListChanged", "promptsListChanged", "resourcesListChanged"] as const) if (filter[key] === true) out[key] = true;
  if (filter.resourceSubscriptions !== undefined) {
    const uris = filter.resourceSubscriptions;
    if (!Array.isArray(uris) || !uris.every((uri) => typeof uri === "string")) {
      throw new DmcpError(ErrorCode.InvalidParams, "notifications.resourceSubscriptions must be an array of URIs", {
        jsonrpcCode: JsonRpcErrorCode.InvalidParams,
      });
    }
    out.resourceSubscriptions = uris as string[];
  }
  return out;
}

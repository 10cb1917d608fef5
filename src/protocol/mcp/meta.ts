/**
 * The `_meta` keys of MCP 2026-07-28, the stateless revision: every request names its protocol
 * version, client and capabilities there. Shared by the gateway (which serves such clients) and the
 * executor (which forwards their requests to upstream servers of either revision).
 */
export const STATELESS_PROTOCOL_VERSIONS = ["2026-07-28"];

export const META = {
  protocolVersion: "io.modelcontextprotocol/protocolVersion",
  clientInfo: "io.modelcontextprotocol/clientInfo",
  clientCapabilities: "io.modelcontextprotocol/clientCapabilities",
  logLevel: "io.modelcontextprotocol/logLevel",
  serverInfo: "io.modelcontextprotocol/serverInfo",
  subscriptionId: "io.modelcontextprotocol/subscriptionId",
} as const;

/** JSON-RPC codes 2026-07-28 defines for its own failures. */
export const StatelessErrorCode = {
  HeaderMismatch: -32020,
  MissingRequiredClientCapability: -32021,
  UnsupportedProtocolVersion: -32022,
} as const;

/** The keys a 2026-07-28 request adds that a session-based (2025) server does not expect. */
const PER_REQUEST_KEYS: readonly string[] = [META.protocolVersion, META.clientInfo, META.clientCapabilities, META.logLevel];

export function metaOf(params: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  const meta = params?._meta;
  return typeof meta === "object" && meta !== null && !Array.isArray(meta) ? (meta as Record<string, unknown>) : undefined;
}

/** The protocol version a request names in its `_meta`, if it names one (a 2026-07-28 request does). */
export function requestedVersion(params: Record<string, unknown> | undefined): string | undefined {
  const version = metaOf(params)?.[META.protocolVersion];
  return typeof version === "string" ? version : undefined;
}

/** The params without the 2026-07-28 per-request keys (for a server that speaks only a session-based revision). */
export function withoutStatelessMeta(params: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  const meta = metaOf(params);
  if (!meta || !PER_REQUEST_KEYS.some((key) => key in meta)) return params;
  const kept = Object.fromEntries(Object.entries(meta).filter(([key]) => !PER_REQUEST_KEYS.includes(key)));
  const { _meta: _dropped, ...rest } = params!;
  return Object.keys(kept).length > 0 ? { ...rest, _meta: kept } : rest;
}

/** The params field that the `Mcp-Name` header mirrors, per method (MCP 2026-07-28). */
const NAMED_BY: Readonly<Record<string, string>> = { "tools/call": "name", "prompts/get": "name", "resources/read": "uri" };

/** The methods of the tasks extension (SEP-2663), whose `Mcp-Name` header carries `params.taskId`. */
export const TASK_METHODS: ReadonlySet<string> = new Set(["tasks/get", "tasks/update", "tasks/cancel"]);

export function mcpNameField(method: string): string | undefined {
  return Object.hasOwn(NAMED_BY, method) ? NAMED_BY[method] : undefined;
}

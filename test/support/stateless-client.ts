/** A raw MCP 2026-07-28 HTTP client for tests: one POST per request, with the headers the revision asks for. */
export const STATELESS_VERSION = "2026-07-28";

export const STATELESS_META = {
  "io.modelcontextprotocol/protocolVersion": STATELESS_VERSION,
  "io.modelcontextprotocol/clientInfo": { name: "dmcp-test", version: "1" },
  "io.modelcontextprotocol/clientCapabilities": {},
};

const NAMED_BY: Record<string, string> = { "tools/call": "name", "prompts/get": "name", "resources/read": "uri" };

export interface StatelessAnswer {
  status: number;
  /** The JSON-RPC answer (the last message of an SSE stream). */
  body: Record<string, any>;
  /** Every message of an SSE answer, in order (empty for a JSON answer). */
  events: Record<string, any>[];
}

let nextId = 1;

/** POSTs one request; `headers` adds to (or, with "", removes) the standard ones; `meta` adds to `_meta`. */
export async function statelessPost(
  url: string,
  method: string,
  params: Record<string, unknown> = {},
  options: { headers?: Record<string, string>; meta?: Record<string, unknown> } = {},
): Promise<StatelessAnswer> {
  const headers = new Headers({
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    "mcp-protocol-version": STATELESS_VERSION,
    "mcp-method": method,
  });
  const named = params[NAMED_BY[method] ?? ""];
  if (typeof named === "string") headers.set("mcp-name", named);
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    if (value === "") headers.delete(name);
    else headers.set(name, value);
  }
  const body = JSON.stringify({ jsonrpc: "2.0", id: nextId++, method, params: { ...params, _meta: { ...STATELESS_META, ...options.meta } } });
  const response = await fetch(url, { method: "POST", headers, body });
  if (!(response.headers.get("content-type") ?? "").includes("text/event-stream"))
    return { status: response.status, body: (await response.json()) as Record<string, any>, events: [] };
  const events = (await response.text())
    .split("\n")
    .filter((line) => line.startsWith("data:") && line.length > 5)
    .map((line) => JSON.parse(line.slice(5).trim()) as Record<string, any>);
  return { status: response.status, body: events.at(-1)!, events };
}

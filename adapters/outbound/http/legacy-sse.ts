/** The legacy HTTP+SSE transport (MCP 2024-11-05), for servers that do not speak Streamable HTTP: the SDK's. */
import { SSEClientTransport } from "@modelcontextprotocol/client";
import type { UpstreamTransport } from "../../../src/executor/index.js";

export class LegacySseTransport extends SSEClientTransport implements UpstreamTransport {
  /** Its EventSource reconnects by itself into a new session that nobody initialized: an error ends the session instead. */
  readonly endsSessionOnError = true;

  constructor(url: URL, headers: Record<string, string> | undefined) {
    super(url, { requestInit: { headers: headers ?? {} }, eventSourceInit: { fetch: withHeaders(headers) } });
  }
}

/** The SSE GET must carry the same headers (e.g. Authorization) as the POSTs. */
function withHeaders(headers: Record<string, string> | undefined): typeof fetch {
  return (input, init) => {
    const merged = new Headers(init?.headers);
    for (const [key, value] of Object.entries(headers ?? {})) merged.set(key, value);
    return fetch(input, { ...init, headers: merged });
  };
}

/**
 * Outbound adapter: a remote MCP server over Streamable HTTP, falling back to the legacy HTTP+SSE
 * transport when the server does not take a Streamable HTTP POST (it answers 4xx other than 401/403).
 */
import { SSEClientTransport } from "@modelcontextprotocol/client";
import { CLIENT_INFO, McpUpstream, sessionOrStateless, type UpstreamConnector } from "../../../src/executor/index.js";
import type { Logger } from "../../../src/util/logger.js";
import { HttpStatusError, StreamableHttpClientTransport } from "./streamable-http.js";

export interface HttpServerSpec {
  url: string;
  headers?: Record<string, string>;
  /** `auto` tries Streamable HTTP first, then legacy SSE. */
  transport?: "auto" | "streamable-http" | "sse";
}

export function httpConnector(spec: HttpServerSpec): UpstreamConnector {
  const url = new URL(spec.url);
  const requestInit = { headers: spec.headers ?? {} };
  const mode = spec.transport ?? "auto";
  let useSse = mode === "sse";
  const connectStreamable = sessionOrStateless((logger) => new McpUpstream(new StreamableHttpClientTransport(url, spec.headers), logger));
  return {
    // Shown in logs, announcements and $SRV metadata: never the URL's credentials or query (tokens).
    get description() {
      return `${useSse ? "sse" : "http"}: ${url.origin}${url.pathname}`;
    },
    async connect(logger: Logger, capabilities?: Record<string, unknown>): Promise<McpUpstream> {
      if (!useSse) {
        try {
          return await connectStreamable(logger, capabilities);
        } catch (err) {
          if (mode !== "auto" || !looksLikeLegacyServer(err)) throw err;
          logger.info({ url: url.href }, "server does not speak Streamable HTTP; falling back to legacy SSE");
          useSse = true;
        }
      }
      // Its EventSource reconnects by itself into a new session that nobody initialized: end the
      // session on the first error instead, and let the supervisor start a proper one.
      const upstream = new McpUpstream(new SSEClientTransport(url, { requestInit, eventSourceInit: { fetch: withHeaders(spec.headers) } }), logger, {
        closeOnError: true,
      });
      await upstream.connect(CLIENT_INFO, capabilities);
      return upstream;
    },
  };
}

function looksLikeLegacyServer(err: unknown): boolean {
  const causes: unknown[] = [];
  for (let e: unknown = err; e instanceof Error && causes.length < 6; e = e.cause) causes.push(e);
  return causes.some((e) => e instanceof HttpStatusError && e.status >= 400 && e.status < 500 && e.status !== 401 && e.status !== 403);
}

/** The SSE GET must carry the same headers (e.g. Authorization) as the POSTs. */
function withHeaders(headers: Record<string, string> | undefined): typeof fetch {
  return (input, init) => {
    const merged = new Headers(init?.headers);
    for (const [key, value] of Object.entries(headers ?? {})) merged.set(key, value);
    return fetch(input, { ...init, headers: merged });
  };
}

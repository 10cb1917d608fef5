/**
 * Outbound adapter: a remote MCP server over Streamable HTTP, falling back to the legacy HTTP+SSE
 * transport when the server does not take a Streamable HTTP POST (it answers 4xx other than 401/403).
 */
import { HttpStatusError, type UpstreamConnector } from "../../../src/executor/index.js";
import { LegacySseTransport } from "./legacy-sse.js";
import { StreamableHttpClientTransport } from "./streamable-http.js";

export interface HttpServerSpec {
  url: string;
  headers?: Record<string, string>;
  /** `auto` tries Streamable HTTP first, then legacy SSE. */
  transport?: "auto" | "streamable-http" | "sse";
}

export function httpConnector(spec: HttpServerSpec): UpstreamConnector {
  const url = new URL(spec.url);
  const mode = spec.transport ?? "auto";
  let useSse = mode === "sse";
  return {
    // Shown in logs, announcements and $SRV metadata: never the URL's credentials or query (tokens).
    get description() {
      return `${useSse ? "sse" : "http"}: ${url.origin}${url.pathname}`;
    },
    openTransport: () => (useSse ? new LegacySseTransport(url, spec.headers) : new StreamableHttpClientTransport(url, spec.headers)),
    fallBack(err, logger) {
      if (useSse || mode !== "auto" || !looksLikeLegacyServer(err)) return false;
      logger.info({ url: url.href }, "server does not speak Streamable HTTP; falling back to legacy SSE");
      useSse = true;
      return true;
    },
  };
}

function looksLikeLegacyServer(err: unknown): boolean {
  const causes: unknown[] = [];
  for (let e: unknown = err; e instanceof Error && causes.length < 6; e = e.cause) causes.push(e);
  return causes.some((e) => e instanceof HttpStatusError && e.status >= 400 && e.status < 500 && e.status !== 401 && e.status !== 403);
}

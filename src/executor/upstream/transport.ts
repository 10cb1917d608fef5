/**
 * What the executor needs from a transport to its upstream MCP server, declared here and implemented
 * by the outbound adapters: the SDK's client `Transport`, plus the hooks through which a transport that
 * can tell more than messages says so. The executor's McpUpstream sets every hook; a transport that
 * cannot tell one (the SDK's legacy SSE transport tells none) simply never calls it.
 */
import type { JSONRPCMessage, Transport } from "@modelcontextprotocol/client";
import type { JsonRpcId } from "../../protocol/index.js";

export interface UpstreamTransport extends Transport {
  /**
   * A message that is not a JSON-RPC message (a line-based transport, stdio: the line, and why). When
   * it names a waiting request, the executor fails that call at once instead of at its deadline.
   */
  onunreadable?: ((line: string, reason: string) => void) | undefined;
  /**
   * The server's answer to request `requestId` cannot be read (not JSON, or no answer where one must
   * be), for a transport that can tell which request an answer belongs to: the call fails at once.
   */
  onrequestfailed?: ((requestId: JsonRpcId, error: Error) => void) | undefined;
  /**
   * A request's stream ended before its answer: `resuming` when the server closed a session's stream
   * to be polled (SEP-1699) and the transport picks it up again, so the answer comes later; otherwise
   * (a 2026-07-28 request's stream, with no session to resume in) the answer will not come.
   */
  onrequeststreamclosed?: ((requestId: JsonRpcId, resuming: boolean) => void) | undefined;
  /**
   * A notification that arrived with request `requestId` (on its stream), so it belongs to that call:
   * true when the executor took it; otherwise the transport hands it to `onmessage`.
   */
  onrequestnotification?: ((requestId: JsonRpcId, message: JSONRPCMessage) => boolean) | undefined;
  /** How the server ended, when the transport can tell (a child process: its exit code and last stderr line). */
  endedHow?: (() => string | undefined) | undefined;
  /** A listed tool's input schema by name, for a transport that mirrors arguments into `Mcp-Param-*` headers. */
  toolSchema?: ((name: string) => unknown) | undefined;
  /**
   * Set by a transport that reconnects by itself after an error, into a session nobody initialized
   * (the legacy SSE one): the executor ends the session on the first error after the handshake instead,
   * and its supervisor opens a proper one.
   */
  readonly endsSessionOnError?: boolean;
}

/**
 * How an HTTP transport rejects an answer that is not 2xx: `status` tells "not a Streamable HTTP
 * server" from other failures, and `body` may hold a JSON-RPC error (e.g. a refused `initialize`).
 */
export class HttpStatusError extends Error {
  readonly code = "HTTP_STATUS";
  constructor(
    readonly status: number,
    readonly body: string,
  ) {
    super(`HTTP ${status}${body ? `: ${body.slice(0, 300)}` : ""}`);
    this.name = "HttpStatusError";
  }
}

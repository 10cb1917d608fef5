/**
 * What an inbound adapter hands a gateway session: a transport of JSON-RPC messages, in and out, for
 * one MCP client connection (stdio) or session or exchange (Streamable HTTP). It is the part of the
 * SDK's server `Transport` the session uses, so any SDK transport fits; the adapters in
 * adapters/inbound implement it.
 */
import type { JSONRPCMessage } from "@modelcontextprotocol/server";
import type { StreamCall } from "../../bus/index.js";
import type { JsonRpcId } from "../../protocol/index.js";

/** Reads a request's headers by name (a Fetch `Headers` is one). */
export interface HeaderReader {
  get(name: string): string | null;
}

/** What the adapter knows of a message beyond its body. */
export interface InboundMessageInfo {
  /** The HTTP request it came in (its headers carry the caller's trace); none over stdio. */
  request?: { readonly headers: HeaderReader } | undefined;
  /** Closes this request's SSE stream for the client to resume it (HTTP with an event store only). */
  closeSSEStream?: (() => void) | undefined;
}

export interface InboundTransport {
  /** Set by the session: each message from the client, with what the adapter knows of it. */
  onmessage?: ((message: JSONRPCMessage, extra?: InboundMessageInfo) => void) | undefined;
  /** Set by the session: a problem the adapter met (a bad line, a broken stream); the connection may go on. */
  onerror?: ((error: Error) => void) | undefined;
  /** Set by the session: the client's connection ended (also after close()). */
  onclose?: (() => void) | undefined;
  /** The MCP session id the transport gave the client, where it gives one (Streamable HTTP, after initialize). */
  readonly sessionId?: string | undefined;
  start(): Promise<void>;
  /**
   * A message to the client. `relatedRequestId`: the client's request it belongs to (a notification
   * during a call, or the call's answer), which a transport with a stream per request sends it on.
   * `sealed`: it came over the bus sealed (PROTOCOL.md §16), so what the transport keeps of it on the
   * bus stays sealed (§19.3): outside any call, to `listenerKey` (the caller key of the gateway the
   * session's record names as following its GET stream, when that is another) or else to its own key.
   */
  send(message: JSONRPCMessage, options?: { relatedRequestId?: JsonRpcId | undefined; sealed?: boolean | undefined; listenerKey?: string | undefined }): Promise<void>;
  close(): Promise<void>;
  /** The revision the session negotiated at initialize, for a transport that wants to know it. */
  setProtocolVersion?: ((version: string) => void) | undefined;
  /**
   * Told of each call of a client's request that left on the bus, for a transport that records it
   * with the request's stream, so that another gateway finds its answer (PROTOCOL.md §19.4).
   */
  callSent?: ((call: StreamCall) => void) | undefined;
  /**
   * Set by the session: the answer (a JSON-RPC response) of a call of this session that another
   * gateway sent and died before answering, for a transport on which the client resumed its stream;
   * undefined when the client cancelled the call (nothing is sent).
   */
  onrecover?: ((call: StreamCall, signal: AbortSignal) => Promise<JSONRPCMessage | undefined>) | undefined;
}

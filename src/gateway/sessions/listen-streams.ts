/**
 * The MCP 2026-07-28 listen streams of one client session (`subscriptions/listen`): each is
 * acknowledged first with what the gateway will honor, then gets the opted-in notifications tagged
 * with the stream's id, until the client goes away (no answer) or the gateway stops (an empty result
 * ends it gracefully).
 */
import {
  CallError,
  DmcpError,
  ErrorCode,
  InternalError,
  META,
  parseSubscriptionFilter,
  topicOfUri,
  type JsonRpcId,
  type JsonRpcMessage,
  type SubscriptionFilter,
} from "../../protocol/index.js";
import type { Call } from "../calls/call.js";

interface OpenStream {
  id: string;
  filter: SubscriptionFilter;
  end: () => void;
}

export class ListenStreams {
  /** By the id of their subscriptions/listen request. */
  private readonly open = new Map<JsonRpcId, OpenStream>();

  constructor(
    /** Sends on the stream of the request `related`. */
    private readonly send: (message: JsonRpcMessage, related: JsonRpcId) => void,
    /** Whether the session's identity may read a resource (resource subscriptions are honored only then). */
    private readonly mayRead: (uri: string) => boolean,
  ) {}

  /** Serves one subscriptions/listen request; settles when its stream ends. */
  listen(call: Call): Promise<Record<string, unknown>> {
    const { requestId, signal } = call;
    if (requestId === undefined) throw new InternalError(ErrorCode.Internal, "a listen stream belongs to a client's request");
    const filter = parseSubscriptionFilter(call.params);
    // Updates exist for context topics only; the acknowledgement names the URIs that will get them.
    const uris = (filter.resourceSubscriptions ?? []).filter((uri) => topicOfUri(uri) !== undefined && this.mayRead(uri));
    const honored: SubscriptionFilter = { ...filter, ...(filter.resourceSubscriptions ? { resourceSubscriptions: uris } : {}) };
    const subscriptionId = String(requestId);
    this.send(
      { jsonrpc: "2.0", method: "notifications/subscriptions/acknowledged", params: { notifications: honored, _meta: { [META.subscriptionId]: subscriptionId } } },
      requestId,
    );
    return new Promise((resolve, reject) => {
      const end = () => {
        this.open.delete(requestId);
        resolve({});
      };
      this.open.set(requestId, { id: subscriptionId, filter: honored, end });
      signal.addEventListener(
        "abort",
        () => {
          this.open.delete(requestId);
          reject(signal.reason instanceof DmcpError ? signal.reason : new CallError(ErrorCode.Cancelled, "the listen stream was closed"));
        },
        { once: true },
      );
    });
  }

  /** Sends a notification on every open stream whose filter `wants` it. */
  notify(method: string, wants: (filter: SubscriptionFilter) => boolean, params: Record<string, unknown> = {}): void {
    for (const [requestId, stream] of this.open) {
      if (!wants(stream.filter)) continue;
      this.send({ jsonrpc: "2.0", method, params: { ...params, _meta: { [META.subscriptionId]: stream.id } } }, requestId);
    }
  }

  /** Ends every open stream gracefully (the gateway is stopping). */
  endAll(): void {
    for (const stream of [...this.open.values()]) stream.end();
  }
}

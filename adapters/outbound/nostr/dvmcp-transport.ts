/**
 * The upstream transport of a DVMCP server (spec 2025-03-26): requests go out as kind-25910 events
 * with DVMCP's simplified content, answers come back as kind-26910 events tied to them by an `e`
 * tag, notifications both ways as kind-21316 events. All in the clear (the executor speaks no DVMCP
 * encryption), over only the relays given, behind the guard. The server's identifier (the `d` tag of
 * its answer to `initialize`) goes in the `s` tag of every later request, as DVMCP asks.
 */
import type { JSONRPCMessage } from "@modelcontextprotocol/client";
import { ApplesauceRelayPool } from "@contextvm/sdk/relay";
import { finalizeEvent, type NostrEvent } from "nostr-tools";
import type { UpstreamTransport } from "../../../src/executor/index.js";
import {
  answerOf,
  DVMCP_NOTIFICATION_KIND,
  DVMCP_REQUEST_KIND,
  DVMCP_RESPONSE_KIND,
  dvmcpContent,
  EventGuard,
  GuardedRelays,
  isObject,
  notificationOf,
  publicKeyOf,
} from "../../../src/nostr/index.js";
import type { Logger } from "../../../src/util/index.js";

import type { NostrClientOptions } from "./transport.js";

/** A publication no relay takes within this fails the send (the relay pool would otherwise retry it forever). */
const PUBLISH_TIMEOUT_MS = 10_000;
/** Requests whose answers never came are forgotten past this many. */
const REMEMBERED = 1_000;

type JsonRpcId = string | number;

interface SentRequest {
  id: JsonRpcId;
  method: string;
  progressToken: unknown;
}

export class DvmcpUpstreamTransport implements UpstreamTransport {
  onmessage?: (message: JSONRPCMessage) => void;
  onclose?: () => void;
  onerror?: (error: Error) => void;
  private readonly relays: GuardedRelays;
  private readonly secret: Uint8Array;
  private readonly publicKey: string;
  /** Requests sent and not yet answered, by the id of the event that carried them. */
  private readonly sent = new Map<string, SentRequest>();
  private readonly eventOf = new Map<JsonRpcId, string>();
  private serverId: string | undefined;
  private unsubscribe: (() => void) | undefined;
  private closed = false;

  constructor(
    private readonly options: NostrClientOptions,
    private readonly logger: Logger,
  ) {
    this.secret = Uint8Array.from(Buffer.from(options.secretKey, "hex"));
    this.publicKey = publicKeyOf(options.secretKey);
    const guard = new EventGuard({ secretKey: options.secretKey, encryption: "disabled", dialect: "dvmcp", author: options.serverPubkey, logger });
    this.relays = new GuardedRelays(new ApplesauceRelayPool([...options.relays]), guard);
  }

  async start(): Promise<void> {
    await this.relays.connect();
    this.unsubscribe = await this.relays.subscribe(
      [{ kinds: [DVMCP_RESPONSE_KIND, DVMCP_NOTIFICATION_KIND], authors: [this.options.serverPubkey], "#p": [this.publicKey] }],
      (event) => this.receive(event),
    );
  }

  async send(message: JSONRPCMessage): Promise<void> {
    if (this.closed) throw new Error("the DVMCP transport is closed");
    if (!("method" in message)) return; // An answer to a server's request: DVMCP servers send none.
    const params = (message as { params?: Record<string, unknown> }).params;
    if ("id" in message) {
      const event = this.sign(DVMCP_REQUEST_KIND, dvmcpContent(message.method, params), message.method);
      this.remember(event.id, { id: message.id, method: message.method, progressToken: params?._meta && (params._meta as { progressToken?: unknown }).progressToken });
      await this.publish(event);
      return;
    }
    // A server knows a request by the id of its event: a cancellation names that, and points at it.
    const cancelled = message.method === "notifications/cancelled" ? this.eventOf.get(params?.requestId as JsonRpcId) : undefined;
    const content = dvmcpContent(message.method, cancelled ? { ...params, requestId: cancelled } : params);
    await this.publish(this.sign(DVMCP_NOTIFICATION_KIND, content, message.method, cancelled ? [["e", cancelled]] : []));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe?.();
    await this.relays.disconnect();
    this.onclose?.();
  }

  private publish(event: NostrEvent): Promise<void> {
    return this.relays.publish(event, { abortSignal: AbortSignal.timeout(PUBLISH_TIMEOUT_MS) });
  }

  private sign(kind: number, content: string, method: string, extraTags: string[][] = []): NostrEvent {
    const tags = [["p", this.options.serverPubkey], ["method", method], ...(this.serverId ? [["s", this.serverId]] : []), ...extraTags];
    return finalizeEvent({ kind, created_at: Math.floor(Date.now() / 1000), tags, content }, this.secret);
  }

  private remember(eventId: string, request: SentRequest): void {
    this.sent.set(eventId, request);
    this.eventOf.set(request.id, eventId);
    if (this.sent.size > REMEMBERED) this.forget(this.sent.keys().next().value as string);
  }

  private forget(eventId: string): void {
    const request = this.sent.get(eventId);
    this.sent.delete(eventId);
    if (request) this.eventOf.delete(request.id);
  }

  /** An event the guard let through: a response or a notification from the server. */
  private receive(event: NostrEvent): void {
    const requestEvent = event.tags.find((tag) => tag[0] === "e")?.[1];
    const request = requestEvent ? this.sent.get(requestEvent) : undefined;
    // The guard let only JSON objects through, and empty notifications (a status told in tags).
    const content = event.content === "" ? undefined : (JSON.parse(event.content) as unknown);
    if (!isObject(content)) return;
    if (event.kind === DVMCP_NOTIFICATION_KIND) {
      // Every session of the executor sees every event to its key: one about a request is for the session that sent it.
      if (requestEvent && !request) return;
      const notification = notificationOf(content, request?.progressToken);
      if (notification) this.onmessage?.(notification);
      else this.logger.debug({ eventId: event.id }, "a DVMCP notification that MCP has no form for was left out");
      return;
    }
    if (!request || !requestEvent) {
      this.logger.debug({ eventId: event.id, requestEvent }, "a DVMCP response to no request of this session was left out");
      return;
    }
    this.forget(requestEvent);
    if (request.method === "initialize") this.serverId = event.tags.find((tag) => tag[0] === "d")?.[1] ?? this.serverId;
    this.onmessage?.(answerOf(request.id, content));
  }
}

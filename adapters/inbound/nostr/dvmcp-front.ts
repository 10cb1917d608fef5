/**
 * The gateway to DVMCP clients (spec 2025-03-26), next to the ContextVM server on the same key and
 * relays: their requests are kind-25910 events with a simplified message (`{ method, params }`, the
 * event id standing for the JSON-RPC id), their notifications kind-21316 events; answers go back as
 * kind-26910 events (the result itself, or `{ error }`; the answer to initialize carries the server's
 * `d` tag) and notifications as kind-21316 events, all in the clear. Each client key gets a gateway
 * session of its own, as a ContextVM client does; a client that found the server by its
 * announcements and calls at once (DVMCP lets it skip initialize) is initialized by the front.
 */
import type { JSONRPCMessage } from "@modelcontextprotocol/server";
import type { RelayHandler } from "@contextvm/sdk/core";
import { finalizeEvent, type NostrEvent } from "nostr-tools";
import type { Gateway } from "../../../src/gateway/index.js";
import { DVMCP_NOTIFICATION_KIND, DVMCP_RESPONSE_KIND, dvmcpContent, dvmcpMessageOf, MESSAGE_KIND, publicKeyOf, responseContent } from "../../../src/nostr/index.js";
import type { JsonRpcId } from "../../../src/protocol/index.js";
import type { Logger } from "../../../src/util/index.js";
import { PUBLISH_TIMEOUT_MS } from "./announcer.js";
import { NostrClientConnection } from "./client-connection.js";

export interface DvmcpFrontOptions {
  secretKey: string;
  /** The server's identifier: the `d` tag of its announcement and of its answer to initialize. */
  serverId: string;
  logger: Logger;
}

/** DVMCP client keys with a session at most: past that, the session of the one heard from longest ago is closed. */
const MAX_CLIENTS = 1_000;

/** The id of the initialize the front sends for a client that did not. */
const IMPLICIT_INITIALIZE = "dvmcp-implicit-initialize";

export class DvmcpFront {
  private readonly secret: Uint8Array;
  private readonly clients = new Map<string, DvmcpClientConnection>();
  private relays: RelayHandler | undefined;

  constructor(
    private readonly gateway: Gateway,
    private readonly options: DvmcpFrontOptions,
  ) {
    this.secret = Uint8Array.from(Buffer.from(options.secretKey, "hex"));
  }

  /** Starts taking DVMCP notifications (the requests come with ContextVM's subscription, kind 25910). */
  async start(relays: RelayHandler): Promise<void> {
    this.relays = relays;
    await relays.subscribe([{ kinds: [DVMCP_NOTIFICATION_KIND], "#p": [publicKeyOf(this.options.secretKey)] }], () => undefined);
  }

  /** Takes `event` when it is a DVMCP client's (the guard let it through); false for ContextVM's. */
  take(event: NostrEvent): boolean {
    if (event.kind !== MESSAGE_KIND && event.kind !== DVMCP_NOTIFICATION_KIND) return false;
    const message = dvmcpMessageOf(event.content);
    if (!message) return false;
    const connection = this.connectionOf(event.pubkey, message.method);
    if (event.kind === MESSAGE_KIND) {
      connection.receive({ jsonrpc: "2.0", id: event.id, method: message.method, ...(message.params ? { params: message.params } : {}) } as JSONRPCMessage);
      return true;
    }
    // A cancellation names the request's event, in its requestId or its e tag.
    const requestEvent = event.tags.find((tag) => tag[0] === "e")?.[1];
    const params = message.method === "notifications/cancelled" && requestEvent ? { requestId: requestEvent, ...message.params } : message.params;
    connection.receive({ jsonrpc: "2.0", method: message.method, ...(params ? { params } : {}) } as JSONRPCMessage);
    return true;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.clients.values()].map((client) => client.close()));
  }

  private connectionOf(clientPubkey: string, method: string): DvmcpClientConnection {
    const known = this.clients.get(clientPubkey);
    // Map order is the order last heard from: a client that speaks moves to the end.
    this.clients.delete(clientPubkey);
    if (known && method !== "initialize") {
      this.clients.set(clientPubkey, known);
      return known;
    }
    void known?.close();
    const oldest = this.clients.size >= MAX_CLIENTS ? this.clients.entries().next().value : undefined;
    if (oldest) {
      this.clients.delete(oldest[0]);
      void oldest[1].close();
    }
    const connection = new DvmcpClientConnection(clientPubkey, (kind, content, tags) => this.publish(kind, content, tags), this.options.serverId);
    this.clients.set(clientPubkey, connection);
    this.gateway.connect(connection, "nostr", { kind: "nostr", subject: clientPubkey }).then(
      (session) => session.closed.then(() => this.clients.get(clientPubkey) === connection && this.clients.delete(clientPubkey)),
      (err: unknown) => {
        this.options.logger.warn({ err, clientPubkey }, "could not open a gateway session for a DVMCP client");
        this.clients.delete(clientPubkey);
      },
    );
    if (method !== "initialize") connection.initializeImplicitly();
    return connection;
  }

  private async publish(kind: number, content: string, tags: string[][]): Promise<void> {
    if (!this.relays) throw new Error("the DVMCP front has not started");
    const event = finalizeEvent({ kind, created_at: Math.floor(Date.now() / 1000), tags, content }, this.secret);
    await this.relays.publish(event, { abortSignal: AbortSignal.timeout(PUBLISH_TIMEOUT_MS) });
  }
}

type Publish = (kind: number, content: string, tags: string[][]) => Promise<void>;

class DvmcpClientConnection extends NostrClientConnection {
  /** The event ids of this client's initialize requests: their answers carry the server's d tag. */
  private readonly initializeEvents = new Set<JsonRpcId>();

  constructor(
    clientPubkey: string,
    private readonly publishEvent: Publish,
    private readonly serverId: string,
  ) {
    super(clientPubkey);
  }

  override receive(message: JSONRPCMessage): void {
    if ("method" in message && "id" in message && message.method === "initialize") this.initializeEvents.add(message.id);
    super.receive(message);
  }

  /** The handshake DVMCP lets a client skip: its answer is not published. */
  initializeImplicitly(): void {
    super.receive({
      jsonrpc: "2.0",
      id: IMPLICIT_INITIALIZE,
      method: "initialize",
      params: { protocolVersion: "2025-03-26", capabilities: {}, clientInfo: { name: "dvmcp-client", version: "0" } },
    } as JSONRPCMessage);
    super.receive({ jsonrpc: "2.0", method: "notifications/initialized" } as JSONRPCMessage);
  }

  protected async publish(message: JSONRPCMessage, related: JsonRpcId | undefined): Promise<void> {
    if ("id" in message && ("result" in message || "error" in message)) {
      if (message.id === IMPLICIT_INITIALIZE) return;
      const tags = [
        ["e", String(message.id)],
        ["p", this.clientPubkey],
      ];
      if (message.id !== undefined && this.initializeEvents.delete(message.id)) tags.push(["d", this.serverId]);
      await this.publishEvent(DVMCP_RESPONSE_KIND, responseContent(message as { result?: unknown; error?: unknown }), tags);
      return;
    }
    if (!("method" in message)) return;
    const tags = [["p", this.clientPubkey], ["method", message.method], ...(typeof related === "string" ? [["e", related]] : [])];
    await this.publishEvent(DVMCP_NOTIFICATION_KIND, dvmcpContent(message.method, (message as { params?: unknown }).params), tags);
  }
}

/**
 * One Nostr client (a public key) as a connection of the gateway: the messages the server transport
 * took from that key come in here, and what the gateway sends goes back to that key. Requests carry
 * the id of their Nostr event (the SDK's server transport swaps the client's id for it and swaps it
 * back in the answer), so the answers of all clients can share the one transport.
 *
 * Requests to the client (sampling, elicitation, roots) are answered here with an error at once: the
 * ContextVM SDK's client transport drops requests from a server, so one sent would never be answered.
 */
import type { JSONRPCMessage } from "@modelcontextprotocol/server";
import type { NostrServerTransport } from "@contextvm/sdk/transport";
import type { InboundTransport } from "../../../src/gateway/index.js";
import type { JsonRpcId } from "../../../src/protocol/index.js";

type SdkMessage = Parameters<NostrServerTransport["send"]>[0];

export class NostrClientConnection implements InboundTransport {
  onmessage: InboundTransport["onmessage"];
  onerror: InboundTransport["onerror"];
  onclose: InboundTransport["onclose"];
  /** Messages that came before the session started. */
  private early: JSONRPCMessage[] | undefined = [];
  private closed = false;
  /** The last send: each waits for the one before, so a call's progress is published before its result. */
  private sending: Promise<void> = Promise.resolve();

  constructor(
    readonly clientPubkey: string,
    private readonly transport: NostrServerTransport,
  ) {}

  async start(): Promise<void> {
    const early = this.early ?? [];
    this.early = undefined;
    for (const message of early) this.onmessage?.(message);
  }

  /** A message from the client. */
  receive(message: JSONRPCMessage): void {
    if (this.closed) return;
    if (this.early) this.early.push(message);
    else this.onmessage?.(message);
  }

  /**
   * Sends in the order the session sent: the session does not wait for one send before the next, and
   * each one (encrypting, publishing) takes its own time, so a result could overtake its last progress.
   */
  send(message: JSONRPCMessage, options?: { relatedRequestId?: JsonRpcId | undefined }): Promise<void> {
    const sent = this.sending.then(() => this.publish(message, options));
    this.sending = sent.catch(() => undefined);
    return sent;
  }

  private async publish(message: JSONRPCMessage, options?: { relatedRequestId?: JsonRpcId | undefined }): Promise<void> {
    if (this.closed) return;
    if ("method" in message && "id" in message) {
      this.refuse(message.id, message.method);
      return;
    }
    if ("id" in message && ("result" in message || "error" in message)) {
      await this.transport.send(message as SdkMessage);
      return;
    }
    // A notification (tied to the request whose event it answers, when it belongs to one) or a request.
    const related = options?.relatedRequestId;
    await this.transport.sendNotification(this.clientPubkey, message as SdkMessage, typeof related === "string" ? related : undefined);
  }

  private refuse(id: JsonRpcId, method: string): void {
    const message = `${method} cannot reach a Nostr client: ContextVM clients take no requests from the server`;
    queueMicrotask(() => this.onmessage?.({ jsonrpc: "2.0", id, error: { code: -32601, message } } as JSONRPCMessage));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onclose?.();
  }
}

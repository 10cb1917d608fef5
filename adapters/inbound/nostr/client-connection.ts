/**
 * One Nostr client (a public key) as a connection of the gateway: the messages taken from that key
 * come in here, and what the gateway sends goes back to that key, in the order the session sent it.
 * Subclasses say how a message is published: ContextVM's (through the SDK's server transport) or
 * DVMCP's.
 *
 * Requests to the client (sampling, elicitation, roots) are answered here with an error at once:
 * the ContextVM SDK's client transport drops requests from a server, and DVMCP has none, so one
 * sent would never be answered.
 */
import type { JSONRPCMessage } from "@modelcontextprotocol/server";
import type { InboundTransport } from "../../../src/gateway/index.js";
import type { JsonRpcId } from "../../../src/protocol/index.js";

export abstract class NostrClientConnection implements InboundTransport {
  onmessage: InboundTransport["onmessage"];
  onerror: InboundTransport["onerror"];
  onclose: InboundTransport["onclose"];
  /** Messages that came before the session started. */
  private early: JSONRPCMessage[] | undefined = [];
  protected closed = false;
  /** The last send: each waits for the one before, so a call's progress is published before its result. */
  private sending: Promise<void> = Promise.resolve();

  constructor(readonly clientPubkey: string) {}

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
    const sent = this.sending.then(() => {
      if (this.closed) return;
      if ("method" in message && "id" in message) return this.refuse(message.id, message.method);
      return this.publish(message, options?.relatedRequestId);
    });
    this.sending = sent.catch(() => undefined);
    return sent;
  }

  /** Publishes an answer or a notification (tied to request `related`, when it belongs to one) to the client. */
  protected abstract publish(message: JSONRPCMessage, related: JsonRpcId | undefined): Promise<void>;

  private refuse(id: JsonRpcId, method: string): void {
    const message = `${method} cannot reach a Nostr client: ContextVM and DVMCP clients take no requests from the server`;
    queueMicrotask(() => this.onmessage?.({ jsonrpc: "2.0", id, error: { code: -32601, message } } as JSONRPCMessage));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onclose?.();
  }
}

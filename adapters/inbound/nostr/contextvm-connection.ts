/**
 * A ContextVM client as a connection of the gateway. Requests carry the id of their Nostr event (the
 * SDK's server transport swaps the client's id for it and swaps it back in the answer), so the
 * answers of all clients can share the one transport.
 */
import type { JSONRPCMessage } from "@modelcontextprotocol/server";
import type { NostrServerTransport } from "@contextvm/sdk/transport";
import type { JsonRpcId } from "../../../src/protocol/index.js";
import { NostrClientConnection } from "./client-connection.js";

type SdkMessage = Parameters<NostrServerTransport["send"]>[0];

export class ContextVmClientConnection extends NostrClientConnection {
  constructor(
    clientPubkey: string,
    private readonly transport: NostrServerTransport,
  ) {
    super(clientPubkey);
  }

  protected async publish(message: JSONRPCMessage, related: JsonRpcId | undefined): Promise<void> {
    if ("id" in message && ("result" in message || "error" in message)) {
      await this.transport.send(message as SdkMessage);
      return;
    }
    await this.transport.sendNotification(this.clientPubkey, message as SdkMessage, typeof related === "string" ? related : undefined);
  }
}

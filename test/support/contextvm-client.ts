/**
 * Test helper: a client as ContextVM users write one: the MCP SDK's Client over the ContextVM SDK's
 * client transport, on one relay only.
 */
import { ApplesauceRelayPool } from "@contextvm/sdk/relay";
import { PrivateKeySigner } from "@contextvm/sdk/signer";
import { NostrClientTransport } from "@contextvm/sdk/transport";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { ClientCapabilities } from "@modelcontextprotocol/sdk/types.js";
import { generateSecretKey } from "nostr-tools";

export async function contextVmClient(relayUrl: string, serverPubkey: string, secret = generateSecretKey(), capabilities: ClientCapabilities = {}): Promise<Client> {
  const transport = new NostrClientTransport({
    signer: new PrivateKeySigner(Buffer.from(secret).toString("hex")),
    relayHandler: new ApplesauceRelayPool([relayUrl]),
    serverPubkey,
    logLevel: "silent",
  });
  const client = new Client({ name: "contextvm-test-client", version: "1.0.0" }, { capabilities });
  await client.connect(transport);
  return client;
}

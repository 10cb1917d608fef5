/**
 * Test helper: a ContextVM server as its SDK makes one (an MCP SDK server on the ContextVM SDK's
 * NostrServerTransport), in this process, on the given relays only, with tools that show calls,
 * progress, errors and cancellation.
 */
import { EncryptionMode } from "@contextvm/sdk/core";
import { ApplesauceRelayPool } from "@contextvm/sdk/relay";
import { PrivateKeySigner } from "@contextvm/sdk/signer";
import { NostrServerTransport } from "@contextvm/sdk/transport";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { generateSecretKey, getPublicKey } from "nostr-tools";
import { type FixtureToolEvents, registerNostrFixtureTools } from "./nostr-fixture-tools.js";

export interface ContextVmServer extends FixtureToolEvents {
  readonly pubkey: string;
  /** Its secret key, for tests that forge what only the server could sign. */
  readonly secretKey: Uint8Array;
  stop(): Promise<void>;
}

export async function startContextVmServer(relayUrl: string, options: { encryption?: EncryptionMode; announced?: boolean } = {}): Promise<ContextVmServer> {
  const secret = generateSecretKey();
  const server = new McpServer({ name: "nostr-fixture", version: "1.0.0" });
  const { waiting, cancelled } = registerNostrFixtureTools(server);

  const transport = new NostrServerTransport({
    signer: new PrivateKeySigner(Buffer.from(secret).toString("hex")),
    relayHandler: new ApplesauceRelayPool([relayUrl]),
    encryptionMode: options.encryption ?? EncryptionMode.OPTIONAL,
    isAnnouncedServer: options.announced ?? false,
    bootstrapRelayUrls: [],
    publishRelayList: false,
    serverInfo: { name: "nostr-fixture" },
    logLevel: "silent",
  });
  await server.connect(transport);
  return {
    pubkey: getPublicKey(secret),
    secretKey: secret,
    cancelled,
    waiting,
    stop: () => server.close(),
  };
}

/**
 * Inbound adapter: the gateway as a ContextVM server on Nostr relays. The ContextVM SDK's server
 * transport takes the requests (one transport for all clients, over only the relays given, behind
 * the guard); each client public key gets a gateway session of its own, whose identity is that key
 * (kind "nostr"), so the access policy applies per key. DVMCP's clients are served too, by the
 * DVMCP front, on the same key and relays. The catalog is announced, and re-announced as it changes.
 */
import { EncryptionMode } from "@contextvm/sdk/core";
import { ApplesauceRelayPool } from "@contextvm/sdk/relay";
import { PrivateKeySigner } from "@contextvm/sdk/signer";
import { NostrServerTransport } from "@contextvm/sdk/transport";
import type { JSONRPCMessage } from "@modelcontextprotocol/server";
import type { Gateway } from "../../../src/gateway/index.js";
import { EventGuard, type EncryptionPolicy, GuardedRelays, publicKeyOf } from "../../../src/nostr/index.js";
import type { Logger } from "../../../src/util/index.js";
import { CatalogAnnouncer } from "./announcer.js";
import { ContextVmClientConnection } from "./contextvm-connection.js";
import { DvmcpFront } from "./dvmcp-front.js";
import { RequestEvents } from "./request-events.js";

export interface NostrServeOptions {
  relays: readonly string[];
  /** The gateway's secret key (hex): its public half is the server's Nostr identity. */
  secretKey: string;
  encryption?: EncryptionPolicy;
  /** The server name announced (default: dmcp-gateway). */
  name?: string;
  logger: Logger;
}

export interface NostrGatewayServer {
  readonly pubkey: string;
  close(): Promise<void>;
}

const ENCRYPTION_MODES: Record<EncryptionPolicy, EncryptionMode> = {
  optional: EncryptionMode.OPTIONAL,
  required: EncryptionMode.REQUIRED,
  disabled: EncryptionMode.DISABLED,
};

export async function serveNostr(gateway: Gateway, options: NostrServeOptions): Promise<NostrGatewayServer> {
  const { logger } = options;
  const encryption = options.encryption ?? "optional";
  const pubkey = publicKeyOf(options.secretKey);
  const requestEvents = new RequestEvents();
  const name = options.name ?? "dmcp-gateway";
  // DVMCP's clients speak in the clear: with encryption required, only ContextVM's are served.
  const dvmcp = encryption === "required" ? undefined : new DvmcpFront(gateway, { secretKey: options.secretKey, serverId: name, logger });
  const guard = new EventGuard({ secretKey: options.secretKey, encryption, dvmcpRequests: dvmcp !== undefined, logger, onMessage: (message) => requestEvents.note(message) });
  const relays = new GuardedRelays(new ApplesauceRelayPool([...options.relays]), guard, (event) => dvmcp?.take(event) ?? false);
  const clients = new Map<string, ContextVmClientConnection>();
  const transport = new NostrServerTransport({
    signer: new PrivateKeySigner(options.secretKey),
    relayHandler: relays,
    encryptionMode: ENCRYPTION_MODES[encryption],
    // The announcer below announces the catalog; the SDK's own announcements and relay list would go
    // to its default public relays too.
    isAnnouncedServer: false,
    publishRelayList: false,
    bootstrapRelayUrls: [],
    serverInfo: { name },
    logLevel: logger.level === "debug" || logger.level === "trace" ? "debug" : logger.level === "silent" ? "silent" : "error",
    onClientSessionEvicted: ({ clientPubkey }) => void clients.get(clientPubkey)?.close(),
  });

  const connectionOf = (clientPubkey: string, message: JSONRPCMessage): ContextVmClientConnection => {
    const known = clients.get(clientPubkey);
    // A client that initializes again starts a new session.
    if (known && !("method" in message && message.method === "initialize")) return known;
    void known?.close();
    const connection = new ContextVmClientConnection(clientPubkey, transport);
    clients.set(clientPubkey, connection);
    gateway.connect(connection, "nostr", { kind: "nostr", subject: clientPubkey }).then(
      (session) => session.closed.then(() => clients.get(clientPubkey) === connection && clients.delete(clientPubkey)),
      (err: unknown) => {
        logger.warn({ err, clientPubkey }, "could not open a gateway session for a Nostr client");
        clients.delete(clientPubkey);
      },
    );
    return connection;
  };
  transport.onmessageWithContext = (message, { clientPubkey }) =>
    connectionOf(clientPubkey, message as JSONRPCMessage).receive(requestEvents.naming(clientPubkey, message as JSONRPCMessage));
  transport.onerror = (err) => logger.warn({ err }, "Nostr server transport");

  await transport.start();
  await dvmcp?.start(relays);
  const announcer = new CatalogAnnouncer(gateway, { secretKey: options.secretKey, relays, name, encryption, logger });
  await announcer.start();
  logger.info({ pubkey, relays: options.relays }, "serving MCP on Nostr");
  return {
    pubkey,
    async close() {
      await announcer.stop();
      await Promise.allSettled([...clients.values()].map((client) => client.close()));
      await dvmcp?.close();
      await transport.close();
    },
  };
}

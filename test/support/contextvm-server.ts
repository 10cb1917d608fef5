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
import * as z from "zod";

export interface ContextVmServer {
  readonly pubkey: string;
  /** Its secret key, for tests that forge what only the server could sign. */
  readonly secretKey: Uint8Array;
  /** Resolves with the reason once a `wait` call was cancelled. */
  readonly cancelled: Promise<unknown>;
  /** Resolves once a `wait` call runs. */
  readonly waiting: Promise<void>;
  stop(): Promise<void>;
}

export async function startContextVmServer(relayUrl: string, options: { encryption?: EncryptionMode; announced?: boolean } = {}): Promise<ContextVmServer> {
  const secret = generateSecretKey();
  const server = new McpServer({ name: "nostr-fixture", version: "1.0.0" });
  let markWaiting!: () => void;
  const waiting = new Promise<void>((resolve) => (markWaiting = resolve));
  let markCancelled!: (reason: unknown) => void;
  const cancelled = new Promise<unknown>((resolve) => (markCancelled = resolve));

  server.registerTool("echo", { description: "says the text back", inputSchema: { text: z.string() } }, async ({ text }) => ({
    content: [{ type: "text", text: `echo: ${text}` }],
  }));
  server.registerTool("count", { description: "reports progress up to n", inputSchema: { n: z.number() } }, async ({ n }, extra) => {
    const progressToken = extra._meta?.progressToken;
    for (let i = 1; i <= n && progressToken !== undefined; i++) {
      await extra.sendNotification({ method: "notifications/progress", params: { progressToken, progress: i, total: n } });
    }
    return { content: [{ type: "text", text: `counted to ${n}` }] };
  });
  server.registerTool("fail", { description: "a tool error", inputSchema: {} }, async () => ({
    isError: true,
    content: [{ type: "text", text: "the fixture failed on purpose" }],
  }));
  server.registerTool("wait", { description: "waits until cancelled", inputSchema: {} }, (_args, extra) => {
    markWaiting();
    return new Promise((resolve) => {
      extra.signal.addEventListener("abort", () => {
        markCancelled(extra.signal.reason);
        resolve({ content: [{ type: "text", text: "stopped" }] });
      });
    });
  });

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

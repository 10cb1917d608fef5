/**
 * The upstream transport of a ContextVM server: the ContextVM SDK's client transport (its messages are
 * MCP's JSON-RPC, typed by the MCP SDK it is built on), over only the relays given, behind the guard.
 */
import type { JSONRPCMessage } from "@modelcontextprotocol/client";
import { EncryptionMode } from "@contextvm/sdk/core";
import { ApplesauceRelayPool } from "@contextvm/sdk/relay";
import { NostrClientTransport } from "@contextvm/sdk/transport";
import type { UpstreamTransport } from "../../../src/executor/index.js";
import { EventGuard, type EncryptionPolicy, GuardedRelays } from "../../../src/nostr/index.js";
import type { Logger } from "../../../src/util/index.js";
import { RequestEventSigner } from "./request-events.js";

export interface NostrClientOptions {
  serverPubkey: string;
  relays: readonly string[];
  secretKey: string;
  encryption: EncryptionPolicy;
}

const ENCRYPTION_MODES: Record<EncryptionPolicy, EncryptionMode> = {
  optional: EncryptionMode.OPTIONAL,
  required: EncryptionMode.REQUIRED,
  disabled: EncryptionMode.DISABLED,
};

export class NostrUpstreamTransport implements UpstreamTransport {
  onmessage?: (message: JSONRPCMessage) => void;
  onclose?: () => void;
  onerror?: (error: Error) => void;
  private readonly inner: NostrClientTransport;
  private readonly signer: RequestEventSigner;

  constructor(options: NostrClientOptions, logger: Logger) {
    const guard = new EventGuard({ secretKey: options.secretKey, encryption: options.encryption, author: options.serverPubkey, logger });
    this.signer = new RequestEventSigner(options.secretKey);
    this.inner = new NostrClientTransport({
      signer: this.signer,
      relayHandler: new GuardedRelays(new ApplesauceRelayPool([...options.relays]), guard),
      serverPubkey: options.serverPubkey,
      encryptionMode: ENCRYPTION_MODES[options.encryption],
      logLevel: sdkLogLevel(logger),
    });
    this.inner.onmessage = (message) => {
      if ("id" in message && ("result" in message || "error" in message)) this.signer.answered(message.id);
      this.onmessage?.(message as JSONRPCMessage);
    };
    this.inner.onclose = () => this.onclose?.();
    this.inner.onerror = (error) => this.onerror?.(error);
  }

  start(): Promise<void> {
    return this.inner.start();
  }

  send(message: JSONRPCMessage): Promise<void> {
    return this.inner.send(this.namingRequestEvents(message) as Parameters<NostrClientTransport["send"]>[0]);
  }

  /** A cancellation names the request's event, which is how the server knows the request. */
  private namingRequestEvents(message: JSONRPCMessage): JSONRPCMessage {
    if (!("method" in message) || message.method !== "notifications/cancelled" || "id" in message) return message;
    const eventId = this.signer.eventOf(message.params?.requestId);
    return eventId ? { ...message, params: { ...message.params, requestId: eventId } } : message;
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * The SDK logs to stderr on its own: errors only, unless ours logs debug. Its warnings are mostly about
 * answers meant for the executor's other sessions (all of them use one key, so all see every answer).
 */
export function sdkLogLevel(logger: Logger): "debug" | "error" | "silent" {
  if (logger.level === "silent") return "silent";
  return logger.level === "debug" || logger.level === "trace" ? "debug" : "error";
}

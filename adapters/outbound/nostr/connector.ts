/** Outbound adapter: a ContextVM server on Nostr relays, reached with the ContextVM SDK's client transport. */
import type { UpstreamConnector } from "../../../src/executor/index.js";
import type { EncryptionPolicy } from "../../../src/nostr/index.js";
import { NostrUpstreamTransport } from "./transport.js";

export interface NostrServerSpec {
  /** The server's public key, hex. */
  serverPubkey: string;
  /** The only relays used: never the SDK's discovery or bootstrap relays. */
  relays: readonly string[];
  /** The executor's own secret key (hex), which signs its requests and opens the server's gift wraps. */
  secretKey: string;
  /** optional (default): encrypt when the server does; required: only gift wraps; disabled: only plain events. */
  encryption?: EncryptionPolicy;
}

export function nostrConnector(spec: NostrServerSpec): UpstreamConnector {
  if (spec.relays.length === 0) throw new Error("a Nostr server needs at least one relay");
  const options = { ...spec, encryption: spec.encryption ?? "optional" };
  return {
    description: `nostr: ${spec.serverPubkey} via ${spec.relays.join(", ")}`,
    // Each transport is a client session of its own, all signed with the one key: the server's access
    // policy sees one identity, and each transport takes only the answers to its own requests.
    openTransport: (logger) => new NostrUpstreamTransport(options, logger),
  };
}

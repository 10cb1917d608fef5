/** Outbound adapter: a ContextVM server (the ContextVM SDK's client transport) or a DVMCP server on Nostr relays. */
import type { UpstreamConnector } from "../../../src/executor/index.js";
import type { EncryptionPolicy, NostrDialect } from "../../../src/nostr/index.js";
import { probeDialect } from "./dialect-probe.js";
import { DvmcpUpstreamTransport } from "./dvmcp-transport.js";
import { NostrUpstreamTransport } from "./transport.js";

export interface NostrServerSpec {
  /** The server's public key, hex. */
  serverPubkey: string;
  /** The only relays used: never the SDK's discovery or bootstrap relays. */
  relays: readonly string[];
  /** The executor's own secret key (hex), which signs its requests and opens the server's gift wraps. */
  secretKey: string;
  /** optional (default): encrypt when the server does; required: only gift wraps; disabled: only plain events. A DVMCP server: plain events always (required is refused). */
  encryption?: EncryptionPolicy;
  /** contextvm (default) or dvmcp: the form of the server's messages; auto: told by the server's announcements. */
  dialect?: NostrDialect | "auto";
}

export async function nostrConnector(spec: NostrServerSpec): Promise<UpstreamConnector> {
  if (spec.relays.length === 0) throw new Error("a Nostr server needs at least one relay");
  const dialect = spec.dialect === "auto" ? await probeDialect(spec.serverPubkey, spec.relays) : (spec.dialect ?? "contextvm");
  if (dialect === "dvmcp" && spec.encryption === "required") throw new Error("a DVMCP server is reached in the clear: encryption required cannot be met");
  const options = { ...spec, encryption: spec.encryption ?? "optional" };
  return {
    description: `${dialect === "dvmcp" ? "nostr (DVMCP)" : "nostr"}: ${spec.serverPubkey} via ${spec.relays.join(", ")}`,
    // Each transport is a client session of its own, all signed with the one key: the server's access
    // policy sees one identity, and each transport takes only the answers to its own requests.
    openTransport: (logger) => (dialect === "dvmcp" ? new DvmcpUpstreamTransport(options, logger) : new NostrUpstreamTransport(options, logger)),
  };
}

/**
 * The MCP revisions the gateway speaks, of both eras: the session-based ones (2024-10-07 to
 * 2025-11-25), agreed once per session at `initialize`, and the stateless 2026-07-28, which every
 * request names in its own `_meta` (meta.ts).
 */
import { STATELESS_PROTOCOL_VERSIONS } from "./meta.js";

/** The session-based revisions, newest first. */
export const SESSION_PROTOCOL_VERSIONS = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05", "2024-10-07"];
export const LATEST_SESSION_PROTOCOL_VERSION = SESSION_PROTOCOL_VERSIONS[0]!;

/** Every revision the gateway speaks (server/discover lists them): the stateless ones first. */
export const SUPPORTED_PROTOCOL_VERSIONS = [...STATELESS_PROTOCOL_VERSIONS, ...SESSION_PROTOCOL_VERSIONS];

/** The revision of a session: the one `initialize` asked for when the gateway speaks it, else the latest. */
export function negotiatedVersion(requested: unknown): string {
  return typeof requested === "string" && SESSION_PROTOCOL_VERSIONS.includes(requested) ? requested : LATEST_SESSION_PROTOCOL_VERSION;
}

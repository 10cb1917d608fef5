/**
 * The DVMCP (spec 2025-03-26) twins of the ContextVM announcements, for clients that discover
 * servers by DVMCP's kinds: the server (31316), tools (31317), resources (31318) and prompts (31319),
 * addressable events named by a `d` tag, the lists tied to the server by an `s` tag and naming their
 * items in `cap` tags. DVMCP has no kind for resource templates: those are announced by ContextVM's
 * 11319 only.
 */
import { DVMCP_ANNOUNCEMENT_KINDS, DVMCP_REQUEST_KIND } from "../../../src/nostr/index.js";

export type AnnouncedList = "tools" | "resources" | "resourceTemplates" | "prompts";

export interface DvmcpAnnouncement {
  kind: number;
  tags: string[][];
}

/** The DVMCP server announcement of a server known by `serverId` (its `d` tag). */
export function dvmcpServerAnnouncement(serverId: string, name: string): DvmcpAnnouncement {
  return {
    kind: DVMCP_ANNOUNCEMENT_KINDS.server,
    tags: [
      ["d", serverId],
      ["k", String(DVMCP_REQUEST_KIND)],
      ["name", name],
    ],
  };
}

/** The DVMCP announcement of one list, or undefined when DVMCP has no kind for it. */
export function dvmcpListAnnouncement(list: AnnouncedList, items: readonly unknown[], serverId: string): DvmcpAnnouncement | undefined {
  if (list === "resourceTemplates") return undefined;
  const method = list === "tools" ? "tools/list" : list === "resources" ? "resources/list" : "prompts/list";
  const caps = items.map((item) => (item as { name?: unknown }).name).filter((name): name is string => typeof name === "string");
  return {
    kind: DVMCP_ANNOUNCEMENT_KINDS[list],
    tags: [["d", `${serverId}/${method}`], ["s", serverId], ...caps.map((name) => ["cap", name])],
  };
}

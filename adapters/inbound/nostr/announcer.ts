/**
 * ContextVM announcements of the gateway's catalog: the server (kind 11316, the gateway's initialize
 * result) and its tools, resources, resource templates and prompts (11317–11320, each list whole),
 * published at start and again whenever the gateway says a list changed (services coming and going),
 * each with its DVMCP twin (31316–31319) where DVMCP has a kind for it. What they list is what the
 * access policy grants a Nostr client that no rule names by its key.
 * They are replaceable events: each replaces the previous one of its kind on the relays. A publication
 * that no relay takes within PUBLISH_TIMEOUT_MS is given up with a warning (the relay pool would
 * otherwise retry it forever, and hold the gateway's start and stop with it).
 */
import { finalizeEvent } from "nostr-tools";
import type { RelayHandler } from "@contextvm/sdk/core";
import { ANNOUNCEMENT_KINDS, type EncryptionPolicy } from "../../../src/nostr/index.js";
import type { Gateway, GatewaySession, Identity } from "../../../src/gateway/index.js";
import type { Logger } from "../../../src/util/index.js";
import { type AnnouncedList as ListName, dvmcpListAnnouncement, dvmcpServerAnnouncement } from "./dvmcp-announcements.js";
import { LocalClient } from "./local-client.js";

/**
 * Whom the announcements are for: any Nostr client. A rule for kind "nostr" with no subjects (or a
 * subject pattern like "*" that matches the empty key) applies to it; a rule naming keys does not.
 */
export const UNNAMED_NOSTR_CLIENT: Identity = { kind: "nostr", subject: "" };

const LISTS: Record<ListName, { method: string; field: string }> = {
  tools: { method: "tools/list", field: "tools" },
  resources: { method: "resources/list", field: "resources" },
  resourceTemplates: { method: "resources/templates/list", field: "resourceTemplates" },
  prompts: { method: "prompts/list", field: "prompts" },
};

const CHANGED: Record<string, ListName[]> = {
  "notifications/tools/list_changed": ["tools"],
  "notifications/resources/list_changed": ["resources", "resourceTemplates"],
  "notifications/prompts/list_changed": ["prompts"],
};

/** Pages of one list fetched at most, so that a gateway that keeps paging cannot hold the announcer. */
const MAX_PAGES = 100;
export const PUBLISH_TIMEOUT_MS = 10_000;

export interface AnnouncerOptions {
  secretKey: string;
  relays: RelayHandler;
  name: string;
  encryption: EncryptionPolicy;
  logger: Logger;
}

export class CatalogAnnouncer {
  private readonly client = new LocalClient();
  private session: GatewaySession | undefined;
  private readonly secret: Uint8Array;
  private readonly lastCreatedAt = new Map<number, number>();
  private readonly queues = new Map<ListName, Promise<void>>();
  private first: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly gateway: Gateway,
    private readonly options: AnnouncerOptions,
  ) {
    this.secret = Uint8Array.from(Buffer.from(options.secretKey, "hex"));
  }

  /** Opens the announcer's session; the first announcements go out in the background. */
  async start(): Promise<void> {
    this.client.onnotification = (method) => {
      for (const list of CHANGED[method] ?? []) this.refresh(list);
    };
    // What the announcements show is what the access policy lets any Nostr client see.
    this.session = await this.gateway.connect(this.client, "nostr-announcer", UNNAMED_NOSTR_CLIENT);
    const initialized = await this.client.request("initialize", {
      protocolVersion: "2025-11-25",
      capabilities: {},
      clientInfo: { name: "dmcp-nostr-announcer", version: "1.0.0" },
    });
    this.client.notify("notifications/initialized");
    this.first = Promise.all([
      this.announceServer(initialized).catch((err: unknown) => this.options.logger.warn({ err }, "could not announce the server on Nostr")),
      ...(Object.keys(LISTS) as ListName[]).map((list) => this.refresh(list)),
    ]);
  }

  async stop(): Promise<void> {
    await this.first;
    await this.client.close();
    await this.session?.closed;
  }

  /** Publishes `list` anew, after any publication of it still under way. */
  private refresh(list: ListName): Promise<void> {
    const next = (this.queues.get(list) ?? Promise.resolve()).then(() => this.announceList(list));
    this.queues.set(list, next);
    return next;
  }

  private async announceList(list: ListName): Promise<void> {
    const { method, field } = LISTS[list];
    try {
      const items: unknown[] = [];
      let cursor: unknown;
      for (let page = 0; page < MAX_PAGES; page++) {
        const result = await this.client.request(method, typeof cursor === "string" ? { cursor } : {});
        items.push(...((result[field] as unknown[] | undefined) ?? []));
        cursor = result.nextCursor;
        if (typeof cursor !== "string") break;
      }
      const content = { [field]: items };
      const dvmcp = dvmcpListAnnouncement(list, items, this.options.name);
      await Promise.all([this.publish(ANNOUNCEMENT_KINDS[list], content, []), dvmcp && this.publish(dvmcp.kind, content, dvmcp.tags)]);
    } catch (err) {
      this.options.logger.warn({ err, list }, "could not announce a list of the catalog on Nostr");
    }
  }

  private async announceServer(initialized: unknown): Promise<void> {
    const dvmcp = dvmcpServerAnnouncement(this.options.name, this.options.name);
    await Promise.all([this.publish(ANNOUNCEMENT_KINDS.server, initialized, this.serverTags()), this.publish(dvmcp.kind, initialized, dvmcp.tags)]);
  }

  private serverTags(): string[][] {
    const tags = [["name", this.options.name]];
    if (this.options.encryption !== "disabled") tags.push(["support_encryption"], ["support_encryption_ephemeral"]);
    return tags;
  }

  private async publish(kind: number, content: unknown, tags: string[][]): Promise<void> {
    // A replaceable event must be newer than the one it replaces: never two of a kind in one second.
    const createdAt = Math.max(Math.floor(Date.now() / 1000), (this.lastCreatedAt.get(kind) ?? 0) + 1);
    this.lastCreatedAt.set(kind, createdAt);
    const event = finalizeEvent({ kind, created_at: createdAt, tags, content: JSON.stringify(content) }, this.secret);
    await this.options.relays.publish(event, { abortSignal: AbortSignal.timeout(PUBLISH_TIMEOUT_MS) });
    this.options.logger.debug({ kind, eventId: event.id }, "announced on Nostr");
  }
}

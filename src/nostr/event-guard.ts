/**
 * What a Nostr process lets through from its relays, before any SDK sees it: an event must be well
 * formed, within the size limit, of a message kind, addressed to this key, correctly signed and not
 * seen before; inside a gift wrap, the same holds for the wrapped event, and its content must be a
 * JSON-RPC message. Anything else is dropped with a log line (events for other keys quietly: relays
 * that do not filter by tag send them). A DVMCP client takes DVMCP's answers and notifications
 * instead: plain events whose content is a simplified message (a JSON object), or, for a
 * notification, empty (a status told in tags).
 */
import { getPublicKey, nip44, validateEvent, verifyEvent, type NostrEvent } from "nostr-tools";
import type { Logger } from "../util/index.js";
import { dvmcpMessageOf } from "./dvmcp-messages.js";
import { DVMCP_NOTIFICATION_KIND, DVMCP_RESPONSE_KIND, EPHEMERAL_GIFT_WRAP_KIND, GIFT_WRAP_KIND, MESSAGE_KIND } from "./kinds.js";

/** A message event larger than this (its JSON text) is dropped. */
export const DEFAULT_MAX_EVENT_BYTES = 512 * 1024;
/** How many event ids are remembered to tell a replay. */
const SEEN_IDS = 10_000;

export type EncryptionPolicy = "optional" | "required" | "disabled";
/** The form of the messages: ContextVM's (JSON-RPC, maybe gift-wrapped) or DVMCP's (simplified, plain, as its client takes them). */
export type NostrDialect = "contextvm" | "dvmcp";

export interface EventGuardOptions {
  /** This process's secret key (hex): events must be addressed to its public half, gift wraps are opened with it. */
  secretKey: string;
  encryption: EncryptionPolicy;
  /** contextvm (the default) or dvmcp: the latter for a DVMCP client, and then `encryption` is not used. */
  dialect?: NostrDialect;
  /**
   * For a ContextVM server that serves DVMCP clients too: also let through their requests and
   * notifications, plain events of kind 25910 or 21316 holding a simplified message (`{ method }`).
   */
  dvmcpRequests?: boolean;
  /** When set, only messages signed by this public key are let through (a client talks to one server). */
  author?: string;
  maxEventBytes?: number;
  logger: Logger;
  /** Each message let through: the event that carries it (inside its gift wrap, if wrapped). */
  onMessage?: (message: NostrEvent) => void;
}

export class EventGuard {
  private readonly publicKey: string;
  private readonly secret: Uint8Array;
  private readonly seen = new Set<string>();
  private readonly maxEventBytes: number;

  constructor(private readonly options: EventGuardOptions) {
    this.secret = Uint8Array.from(Buffer.from(options.secretKey, "hex"));
    this.publicKey = getPublicKey(this.secret);
    this.maxEventBytes = options.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES;
  }

  /** Whether `event` may be handed on; logs why not. Never throws. */
  admit(event: unknown): event is NostrEvent {
    try {
      const reason = this.refusal(event);
      if (reason === undefined) return true;
      if (reason !== NOT_FOR_US) this.drop(event, reason);
      return false;
    } catch (err) {
      this.drop(event, `cannot be read: ${(err as Error).message}`);
      return false;
    }
  }

  private refusal(event: unknown): string | undefined {
    if (!validateEvent(event)) return "not a well-formed event";
    const outer = event as NostrEvent;
    if (JSON.stringify(outer).length > this.maxEventBytes) return `larger than ${this.maxEventBytes} bytes`;
    if (!this.outerKinds().includes(outer.kind)) return `kind ${outer.kind} is not a message kind accepted here`;
    if (!addressedTo(outer, this.publicKey)) return NOT_FOR_US;
    if (!verifyEvent(outer)) return "forged: its id or signature does not check";
    if (!this.firstSight(outer.id)) return "replayed: this event was seen before";
    const message = outer.kind === GIFT_WRAP_KIND || outer.kind === EPHEMERAL_GIFT_WRAP_KIND ? this.unwrap(outer) : outer;
    if (typeof message === "string") return message;
    if (this.options.author && message.pubkey !== this.options.author) return `signed by ${message.pubkey}, not by the expected ${this.options.author}`;
    const refused = this.options.dialect === "dvmcp" ? dvmcpRefusal(message) : message === outer && this.isDvmcpRequest(message) ? undefined : jsonRpcRefusal(message.content);
    if (refused === undefined) this.options.onMessage?.(message);
    return refused;
  }

  /** A DVMCP client's request or notification, in the clear, for a server that takes them. */
  private isDvmcpRequest(message: NostrEvent): boolean {
    return this.options.dvmcpRequests === true && (message.kind === MESSAGE_KIND || message.kind === DVMCP_NOTIFICATION_KIND) && dvmcpMessageOf(message.content) !== undefined;
  }

  private outerKinds(): number[] {
    if (this.options.dialect === "dvmcp") return [DVMCP_RESPONSE_KIND, DVMCP_NOTIFICATION_KIND];
    if (this.options.dvmcpRequests && this.options.encryption !== "required") return [...this.contextVmKinds(), DVMCP_NOTIFICATION_KIND];
    return this.contextVmKinds();
  }

  private contextVmKinds(): number[] {
    switch (this.options.encryption) {
      case "required":
        return [GIFT_WRAP_KIND, EPHEMERAL_GIFT_WRAP_KIND];
      case "disabled":
        return [MESSAGE_KIND];
      default:
        return [MESSAGE_KIND, GIFT_WRAP_KIND, EPHEMERAL_GIFT_WRAP_KIND];
    }
  }

  /** The event inside a gift wrap, checked like an outer one; or why it is refused. */
  private unwrap(wrap: NostrEvent): NostrEvent | string {
    let inner: unknown;
    try {
      inner = JSON.parse(nip44.v2.decrypt(wrap.content, nip44.v2.utils.getConversationKey(this.secret, wrap.pubkey)));
    } catch (err) {
      return `gift wrap cannot be opened: ${(err as Error).message}`;
    }
    if (!validateEvent(inner)) return "gift wrap holds no well-formed event";
    const event = inner as NostrEvent;
    if (event.kind !== MESSAGE_KIND) return `gift wrap holds an event of kind ${event.kind}, not ${MESSAGE_KIND}`;
    if (!addressedTo(event, this.publicKey)) return "gift wrap holds a message addressed to another key";
    if (!verifyEvent(event)) return "gift wrap holds a forged event: its id or signature does not check";
    if (!this.firstSight(event.id)) return "replayed: the wrapped event was seen before";
    return event;
  }

  private firstSight(id: string): boolean {
    if (this.seen.has(id)) return false;
    this.seen.add(id);
    // A Set iterates in insertion order: the oldest id goes first.
    if (this.seen.size > SEEN_IDS) this.seen.delete(this.seen.values().next().value as string);
    return true;
  }

  private drop(event: unknown, reason: string): void {
    const e = (typeof event === "object" && event !== null ? event : {}) as Partial<NostrEvent>;
    this.options.logger.warn({ eventId: clip(e.id), kind: e.kind, pubkey: clip(e.pubkey), reason }, "dropped a Nostr event");
  }
}

const NOT_FOR_US = "\0not for us";

function addressedTo(event: NostrEvent, publicKey: string): boolean {
  return event.tags.some((tag) => tag[0] === "p" && tag[1] === publicKey);
}

function jsonRpcRefusal(content: string): string | undefined {
  let message: unknown;
  try {
    message = JSON.parse(content);
  } catch {
    return "content is not JSON";
  }
  if (typeof message !== "object" || message === null || Array.isArray(message) || (message as { jsonrpc?: unknown }).jsonrpc !== "2.0") {
    return "content is not a JSON-RPC message";
  }
  return undefined;
}

function dvmcpRefusal(event: NostrEvent): string | undefined {
  if (event.content === "" && event.kind === DVMCP_NOTIFICATION_KIND) return undefined;
  let message: unknown;
  try {
    message = JSON.parse(event.content);
  } catch {
    return "content is not JSON";
  }
  return typeof message === "object" && message !== null && !Array.isArray(message) ? undefined : "content is not a DVMCP message (a JSON object)";
}

function clip(value: unknown): unknown {
  return typeof value === "string" && value.length > 80 ? `${value.slice(0, 80)}…` : value;
}

/**
 * A ContextVM server knows a request by the id of the Nostr event that carried it (its SDK swaps the
 * JSON-RPC id for the event id), so a cancellation must name that event. This signer signs with the
 * executor's key and remembers which event carried which request, for the transport to translate.
 */
import type { NostrSigner } from "@contextvm/sdk/core";
import { PrivateKeySigner } from "@contextvm/sdk/signer";
import { MESSAGE_KIND } from "../../../src/nostr/index.js";

/** Requests whose answers never came are forgotten past this many. */
const REMEMBERED = 1_000;

type RequestId = string | number;

export class RequestEventSigner implements NostrSigner {
  readonly nip44: NostrSigner["nip44"];
  private readonly signer: PrivateKeySigner;
  private readonly events = new Map<RequestId, string>();

  constructor(secretKey: string) {
    this.signer = new PrivateKeySigner(secretKey);
    this.nip44 = this.signer.nip44;
  }

  getPublicKey(): Promise<string> {
    return this.signer.getPublicKey();
  }

  async signEvent(template: Parameters<NostrSigner["signEvent"]>[0]): ReturnType<NostrSigner["signEvent"]> {
    const event = await this.signer.signEvent(template as Parameters<PrivateKeySigner["signEvent"]>[0]);
    const id = event.kind === MESSAGE_KIND ? requestIdOf(event.content) : undefined;
    if (id !== undefined) {
      this.events.set(id, event.id);
      if (this.events.size > REMEMBERED) this.events.delete(this.events.keys().next().value as RequestId);
    }
    return event;
  }

  /** The id of the event that carried request `id`, if it was sent and not yet answered. */
  eventOf(id: unknown): string | undefined {
    return typeof id === "string" || typeof id === "number" ? this.events.get(id) : undefined;
  }

  answered(id: unknown): void {
    if (typeof id === "string" || typeof id === "number") this.events.delete(id);
  }
}

function requestIdOf(content: string): RequestId | undefined {
  try {
    const message = JSON.parse(content) as { id?: unknown; method?: unknown };
    return typeof message.method === "string" && (typeof message.id === "string" || typeof message.id === "number") ? message.id : undefined;
  } catch {
    return undefined;
  }
}

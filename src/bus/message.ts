/** The messages the bus hands out: their bytes as they came, and the way to answer them. */
import type { Msg } from "@nats-io/transport-node";
import type { Envelope } from "../protocol/index.js";
import type { EnvelopeCodec } from "./codec.js";

/** One message received on the bus: its bytes as they came (decode them with the bus's codec). */
export interface BusMessage {
  readonly subject: string;
  readonly data: Uint8Array;
  /** Where the sender waits for an answer, if it does. */
  readonly reply: string | undefined;
  /** The server's own answer to a request that nothing subscribes to (a 503 status, no envelope). */
  readonly noResponders: boolean;
  /** Answers on `reply`: an envelope (encoded by the bus's codec) or bytes encoded already. False without a reply subject. */
  respond(message: Envelope | Uint8Array): boolean;
}

/** A received NATS message as the bus hands it out. */
export class NatsMessage implements BusMessage {
  constructor(
    private readonly msg: Msg,
    private readonly codec: EnvelopeCodec,
  ) {}

  get subject(): string {
    return this.msg.subject;
  }

  get data(): Uint8Array {
    return this.msg.data;
  }

  get reply(): string | undefined {
    return this.msg.reply || undefined;
  }

  get noResponders(): boolean {
    return this.msg.headers?.hasError === true && this.msg.headers.code === 503;
  }

  respond(message: Envelope | Uint8Array): boolean {
    return this.msg.respond(message instanceof Uint8Array ? message : this.codec.encode(message));
  }
}

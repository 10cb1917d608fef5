/** Building a new envelope: a fresh id, the current time, and the ids ahead of the payload. */
import { randomUUID } from "node:crypto";
import type * as z from "zod";
import { DMCP_VERSION, type Caller, type Envelope, type MessageType } from "./envelope.js";
import { isoTime } from "./iso-time.js";

type InputPayloadOf<T extends MessageType> = z.input<typeof Envelope> extends infer E ? (E extends { type: T; payload: infer P } ? P : never) : never;

export interface EnvelopeOptions {
  sender: string;
  /** The message id; a fresh UUID unless given (a request correlates to its own id). */
  id?: string | undefined;
  correlationId?: string | undefined;
  sessionId?: string | undefined;
  /** A Date, an ISO 8601 string, or epoch milliseconds. */
  deadline?: Date | string | number | undefined;
  /** Who made the call (prompt_request only). */
  caller?: Caller | undefined;
}

/** Builds a new envelope with a fresh id and the current time. */
export function createEnvelope<T extends MessageType>(type: T, payload: InputPayloadOf<T>, options: EnvelopeOptions): Extract<Envelope, { type: T }> {
  // Ids come before the payload: a reader of an envelope too large to parse finds them in its head.
  const envelope: Record<string, unknown> = { dMCP_version: DMCP_VERSION, type, id: options.id ?? randomUUID() };
  if (options.correlationId !== undefined) envelope.correlation_id = options.correlationId;
  if (options.sessionId !== undefined) envelope.session_id = options.sessionId;
  envelope.timestamp = isoTime(Date.now());
  envelope.sender_id = options.sender;
  if (options.deadline !== undefined) {
    const { deadline } = options;
    envelope.deadline = typeof deadline === "string" ? deadline : isoTime(typeof deadline === "number" ? deadline : deadline.getTime());
  }
  if (options.caller !== undefined) envelope.caller = options.caller;
  envelope.payload = payload;
  return envelope as Extract<Envelope, { type: T }>;
}

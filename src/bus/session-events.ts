/**
 * The SSE events of HTTP sessions on the bus (PROTOCOL.md §19.3): every event a gateway writes on a
 * session's stream is also published to `dmcp.v1.sse.<session>.<stream>`, kept in the
 * DMCP_SESSION_EVENTS stream (the last 100 per session stream, for 15 minutes), so that another
 * gateway can replay a stream it did not send when the client resumes it there with Last-Event-ID,
 * and then follow it live (`follow`: what the sending gateway, or any other, writes on it later).
 * Publishing does not wait for JetStream: the gateway that sent the stream replays it from memory
 * while it holds it (until the call's answer reached the client). The events of a sealed call's stream
 * are published sealed to the gateway's own caller key (the codec's `sealToSelf`), so that only
 * gateways holding that key read them back. On the GET stream, which any gateway writes on, a sealed
 * event may be sealed by one gateway to another's key (the one following it, `sealTo`).
 */
import { DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType, type ConsumerMessages, type JetStreamClient, type MsgRequest } from "@nats-io/jetstream";
import { isEnvelopeId, isValidToken, subjects } from "../protocol/index.js";
import type { Bus } from "./connection.js";
import type { EnvelopeCodec, SealedValue } from "./codec.js";
import { EventsDiscardedError, skippedBefore, type SubjectHistory } from "./follow-gaps.js";
import { jetStreamManagerOf, jetStreamOf, streamPlacementOf } from "./jetstream.js";
import { ensureStream, type StreamSpec } from "./streams.js";
import { jsonObjectOf } from "../util/index.js";

export const SESSION_EVENTS_STREAM = "DMCP_SESSION_EVENTS";
export const SESSION_EVENTS_PER_STREAM = 100;
export const SESSION_EVENTS_MAX_AGE_MS = 15 * 60_000;
const NANOS_PER_MS = 1_000_000;
/**
 * How long one pull of a follow waits on the server. Its heartbeats come every half of it, and two
 * missed make the consumer again: a follow whose consumer's server died goes on after about this long.
 */
const FOLLOW_PULL_MS = 4_000;
/** A follow whose consumer cannot be made again this many times in a row, this far apart, ends. */
const FOLLOW_REOPEN_TRIES = 10;
const FOLLOW_REOPEN_PAUSE_MS = 1_000;
/** How often a follow that delivered nothing asks after its consumer (what heartbeats and reconnects did not catch). */
const FOLLOW_QUIET_CHECK_MS = 30_000;

/** The stream id of a session's standalone `GET` stream (the SDK's, PROTOCOL.md §19.3). */
export const GET_STREAM = "_GET_stream";

export const SESSION_EVENTS_SPEC: StreamSpec = { name: SESSION_EVENTS_STREAM, subjects: [subjects.sessionEventsAll()], retention: RetentionPolicy.Limits };

/** One stored event: its SSE id and the JSON-RPC message it carried (`{}` for a priming event). */
export interface StoredEvent {
  id: string;
  /** Undefined when the event came sealed and this gateway cannot open it (`locked`). */
  message: unknown;
  /** Its sequence in the stream, when read from it (where a follow that continues a read starts). */
  seq?: number;
  /** Why the event, sealed to a key this gateway does not hold, cannot be read here. */
  locked?: string;
}

/**
 * A call whose answer belongs on a stream, as the gateway that sent it on the bus recorded it: what
 * another gateway needs to find the answer when the client resumes the stream there and the sending
 * gateway is gone (PROTOCOL.md §19.4). Never sent to the client.
 */
export interface StreamCall {
  /** The client's JSON-RPC request id. */
  requestId: string | number;
  service: string;
  correlationId: string;
  delivery: "direct" | "durable";
  /** When the sending gateway stops waiting for the answer (epoch ms). */
  deadline: number;
  /** The call travelled sealed: the public curve key the events of its stream are sealed to (the sending gateway's caller key). */
  sealedTo?: string | undefined;
}

/**
 * How an event is published: with the record of the call that opened its stream, sealed (the stream is a
 * sealed call's, or a sealed message goes on the GET stream), to `sealTo` (another gateway's caller key,
 * on the GET stream only) rather than to this gateway's own.
 */
export interface AppendOptions {
  call?: StreamCall | undefined;
  seal?: boolean | undefined;
  sealTo?: string | undefined;
}

/** A stream as the log keeps it: its events and the calls answered on it, oldest first. */
export interface LoggedStream {
  events: StoredEvent[];
  calls: StreamCall[];
}

/** A follow of one session stream under way. */
export interface EventFollow {
  /** Ends it (idempotent). */
  stop(): void;
  /** Settles when it ended: stopped, or the log could no longer be read (the error, then). */
  readonly ended: Promise<Error | undefined>;
}

/** Where a follow starts: right after a sequence read before, or with what is published from now on. */
export type FollowStart = { afterSeq: number } | "now";

export interface SessionEventLog {
  /**
   * Publishes an event of `stream` of `session` (without waiting for it to be stored), with the record
   * of `options.call` when given (one message); its message sealed with `options.seal` (when the bus's
   * codec can seal: with message security) to this gateway's caller key, or to `options.sealTo`.
   */
  append(session: string, stream: string, event: StoredEvent, options?: AppendOptions): void;
  /** Records a call whose answer belongs on `stream` of `session` (without waiting for it to be stored). */
  appendCall(session: string, stream: string, call: StreamCall): void;
  /** The events of `stream` of `session` still kept and the calls recorded on it. */
  readStream(session: string, stream: string): Promise<LoggedStream>;
  /**
   * Hands every event of `stream` of `session` stored from `start` on to `onEvent`, in order and once
   * each, until stopped (an ordered consumer: it survives a server lost in a cluster without a gap).
   * Resolves once the consumer exists: an event published after that is delivered. Ends with an
   * EventsDiscardedError when events after the last one it delivered were discarded unread.
   */
  follow(session: string, stream: string, start: FollowStart, onEvent: (event: StoredEvent) => void, onCall?: (call: StreamCall) => void): Promise<EventFollow>;
  /** Whether this gateway reads events sealed to `publicKey` (its own caller key). */
  opens(publicKey: string): boolean;
}

/** Creates the stream unless it exists (and checks it), and opens the log. */
export async function openSessionEvents(bus: Bus): Promise<SessionEventLog> {
  const jsm = await jetStreamManagerOf(bus);
  await ensureStream(
    jsm,
    SESSION_EVENTS_SPEC,
    (num_replicas) =>
      jsm.streams.add({
        name: SESSION_EVENTS_STREAM,
        subjects: SESSION_EVENTS_SPEC.subjects,
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        discard: DiscardPolicy.Old,
        max_msgs_per_subject: SESSION_EVENTS_PER_STREAM,
        max_age: SESSION_EVENTS_MAX_AGE_MS * NANOS_PER_MS,
        max_msg_size: bus.maxPayload,
        num_replicas,
      }),
    streamPlacementOf(bus),
  );
  const js: JetStreamClient = jetStreamOf(bus);
  // The follows under way, each by what makes its consumer again: after a reconnect, their server may be the one lost.
  const following = new Set<() => void>();
  bus.onReconnect(() => {
    for (const remake of following) remake();
  });
  /** The sequence the next event stored will have (a follow "from now" starts there). */
  const nextSeq = async () => (await jsm.streams.info(SESSION_EVENTS_STREAM)).state.last_seq + 1;
  /** A subject as the stream's leader holds it (message get and stream info are answered by the leader). */
  const historyOf = (subject: string): SubjectHistory => ({
    holds: async (seq) => (await jsm.streams.getMessage(SESSION_EVENTS_STREAM, { seq })) !== null,
    async firstFrom(seq) {
      // The server's message get takes `next_by_subj` (since 2.9); nats.js types it for direct get only.
      const held = await jsm.streams.getMessage(SESSION_EVENTS_STREAM, { seq, next_by_subj: subject } as unknown as MsgRequest);
      return held ? { seq: held.seq, data: held.data } : undefined;
    },
    count: async () => (await jsm.streams.info(SESSION_EVENTS_STREAM, { subjects_filter: subject })).state.subjects?.[subject] ?? 0,
  });
  const publish = (session: string, stream: string, record: unknown) => bus.publish(subjects.sessionEvents(session, stream), new TextEncoder().encode(JSON.stringify(record)));
  const { codec } = bus;
  const readStream = async (session: string, stream: string): Promise<LoggedStream> => {
    const consumer = await js.consumers.get(SESSION_EVENTS_STREAM, { filter_subjects: subjects.sessionEvents(session, stream) });
    const pending = (await consumer.info()).num_pending;
    const logged: LoggedStream = { events: [], calls: [] };
    if (pending === 0) return logged;
    const batch = await consumer.fetch({ max_messages: pending, expires: 5000 });
    for await (const msg of batch) {
      parseRecord(msg.data, msg.seq, logged, codec, stream);
      if (msg.info.pending === 0) break;
    }
    await batch.close().catch(() => undefined);
    return logged;
  };
  return {
    append: (session, stream, event, options = {}) => {
      const { call, seal } = options;
      // A priming event's message ({}) holds nothing to hide: it stays in clear.
      const sealed = seal && !isEmpty(event.message) ? sealEvent(codec, event.message, stream === GET_STREAM ? options.sealTo : undefined) : undefined;
      const body = sealed ? { id: event.id, sealed } : { id: event.id, message: event.message };
      publish(session, stream, call ? { ...body, call: callRecord(call) } : body);
    },
    opens: (publicKey) => codec.isCallerKey?.(publicKey) ?? false,
    appendCall: (session, stream, call) => publish(session, stream, { call: callRecord(call) }),
    readStream,
    async follow(session, stream, start, onEvent, onCall) {
      let next = start === "now" ? await nextSeq() : start.afterSeq + 1;
      let last = start === "now" ? undefined : start.afterSeq;
      const history = historyOf(subjects.sessionEvents(session, stream));
      const deliver = (seq: number, data: Uint8Array) => {
        next = seq + 1;
        last = seq;
        const logged: LoggedStream = { events: [], calls: [] };
        parseRecord(data, seq, logged, codec, stream);
        for (const call of logged.calls) onCall?.(call);
        for (const event of logged.events) onEvent(event);
      };
      let stopped = false;
      /** An ordered consumer from `next` on. nats.js makes it again when it learns it is gone, but not while its one server is down: that is left to us. */
      const open = async (): Promise<ConsumerMessages> => {
        const consumer = await js.consumers.get(SESSION_EVENTS_STREAM, {
          filter_subjects: subjects.sessionEvents(session, stream),
          deliver_policy: DeliverPolicy.StartSequence,
          opt_start_seq: next,
        });
        const opened = await consumer.consume({ max_messages: SESSION_EVENTS_PER_STREAM, expires: FOLLOW_PULL_MS });
        // Missed heartbeats: nats.js would go on asking a consumer whose server is gone; it is made again.
        void (async () => {
          for await (const status of opened.status()) if (status.type === "heartbeats_missed") opened.stop();
        })().catch(() => undefined);
        // A quiet consumer is asked after itself now and then: one that does not answer is made again.
        let seen = next;
        const check = setInterval(() => {
          if (next === seen) void consumer.info().catch(() => opened.stop());
          seen = next;
        }, FOLLOW_QUIET_CHECK_MS);
        check.unref();
        // An ordered consumer lingers on the server for minutes unless deleted.
        void opened.closed().finally(() => {
          clearInterval(check);
          void consumer.delete().catch(() => undefined);
        });
        return opened;
      };
      let messages = await open();
      const remake = () => messages.stop();
      following.add(remake);
      const ended = (async (): Promise<Error | undefined> => {
        for (;;) {
          try {
            for await (const msg of messages) {
              // A consumer on a copy of the stream still catching up starts at its end: before `next`.
              if (msg.seq < next) continue;
              // A new consumer (made again by us or by nats.js) may start past events not yet handed on.
              if (msg.info.deliverySequence === 1) {
                const position = { next, last, keptPerSubject: SESSION_EVENTS_PER_STREAM };
                for (const held of await skippedBefore(history, msg.seq, position)) deliver(held.seq, held.data);
              }
              deliver(msg.seq, msg.data);
            }
          } catch (err) {
            messages.stop();
            if (err instanceof EventsDiscardedError) return err;
            // Made again below, from the next sequence; not at once (the leader may not answer yet).
            await new Promise((resolve) => setTimeout(resolve, FOLLOW_REOPEN_PAUSE_MS).unref());
          }
          for (let failures = 1; !stopped; failures++) {
            try {
              messages = await open();
              break;
            } catch (err) {
              if (failures >= FOLLOW_REOPEN_TRIES) return err as Error;
              await new Promise((resolve) => setTimeout(resolve, FOLLOW_REOPEN_PAUSE_MS).unref());
            }
          }
          if (stopped) {
            messages.stop();
            return undefined;
          }
        }
      })().finally(() => following.delete(remake));
      return {
        stop() {
          if (stopped) return;
          stopped = true;
          messages.stop();
        },
        ended,
      };
    },
  };
}

/** `message` sealed to this process's caller key, or to `to` (another's); undefined when the codec cannot seal. */
function sealEvent(codec: EnvelopeCodec, message: unknown, to: string | undefined): SealedValue | undefined {
  if (to !== undefined && !codec.isCallerKey?.(to)) return codec.sealFromSelf?.({ message }, to);
  return codec.sealToSelf?.({ message });
}

function isEmpty(message: unknown): boolean {
  return typeof message === "object" && message !== null && Object.keys(message).length === 0;
}

function callRecord(call: StreamCall): Record<string, unknown> {
  return {
    request_id: call.requestId,
    service: call.service,
    correlation_id: call.correlationId,
    delivery: call.delivery,
    deadline: new Date(call.deadline).toISOString(),
    ...(call.sealedTo ? { sealed_to: call.sealedTo } : {}),
  };
}

/**
 * Adds an event or a call record of `stream` to `into`; anything else on the subject (any gateway may
 * publish there) is skipped. A sealed event is opened with `codec`; one it cannot open is added `locked`.
 */
function parseRecord(data: Uint8Array, seq: number, into: LoggedStream, codec: EnvelopeCodec, stream: string): void {
  const record = jsonObjectOf(data);
  if (!record) return;
  const call = parseCall(record.call);
  if (call) into.calls.push(call);
  if (typeof record.id !== "string") return;
  if ("sealed" in record) into.events.push(openEvent(record.id, record.sealed, seq, codec, stream === GET_STREAM));
  else if (typeof record.message === "object" && record.message !== null) into.events.push({ id: record.id, message: record.message, seq });
}

/**
 * A sealed event opened, or locked with the reason it cannot be. On a call's stream only a box from
 * and to this gateway's key opens (nobody else can make one); on the GET stream, where any gateway may
 * write in clear too (`fromAnyKey`), a box to its key from another gateway's opens as well.
 */
function openEvent(id: string, sealed: unknown, seq: number, codec: EnvelopeCodec, fromAnyKey: boolean): StoredEvent {
  const open = fromAnyKey ? codec.openToSelf : codec.openFromSelf;
  if (!open) return { id, message: undefined, seq, locked: "the event is sealed, and this gateway runs without message security" };
  try {
    const { message } = open.call(codec, sealed);
    if (typeof message === "object" && message !== null) return { id, message, seq };
    return { id, message: undefined, seq, locked: "the sealed event holds no message" };
  } catch (err) {
    return { id, message: undefined, seq, locked: (err as Error).message };
  }
}

function parseCall(value: unknown): StreamCall | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const { request_id: requestId, service, correlation_id: correlationId, delivery, deadline, sealed_to: sealedTo } = value as Record<string, unknown>;
  const at = typeof deadline === "string" ? Date.parse(deadline) : Number.NaN;
  if ((typeof requestId !== "string" && typeof requestId !== "number") || typeof service !== "string" || !isValidToken(service)) return undefined;
  if (!isEnvelopeId(correlationId)) return undefined;
  if ((delivery !== "direct" && delivery !== "durable") || Number.isNaN(at)) return undefined;
  if (sealedTo !== undefined && (typeof sealedTo !== "string" || !/^X[A-Z2-7]{55}$/.test(sealedTo))) return undefined;
  return { requestId, service, correlationId, delivery, deadline: at, ...(sealedTo ? { sealedTo } : {}) };
}

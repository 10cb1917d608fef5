/**
 * A bounded in-memory SSE event store: what lets a 2025 client resume a dropped stream with
 * `Last-Event-ID` (SEP-1699). The bounds keep a long-running gateway's memory flat: the oldest
 * streams are forgotten first, and a stream keeps only its latest events (a client that fell further
 * behind gets what is left).
 *
 * A call's stream whose answer was written to the client's open connection is forgotten then
 * (`finished`): what stays is the streams of calls still running, and of calls whose client was away
 * at the answer.
 *
 * One store serves every session, but each session sees only its own streams (`forSession`): the SDK
 * names every session's GET stream alike, and an event id that leaked out of one session must not
 * replay its stream (another identity's results) to another. Event ids are
 * `<origin>-<session>/<stream>:<sequence>`, `<origin>` a random tag of this store, so that the ids
 * of gateways writing on one session's stream (its GET stream) never collide.
 *
 * With the bus's event log, every event is also published under the session's HTTP id and its stream
 * (PROTOCOL.md §19.3): a stream this gateway does not hold (it did not send it, or forgot it once
 * answered), and every GET stream (which any gateway writes on), resumes from there (`resumption`), looked up under the session it serves only, so an id
 * from another session finds nothing there either. The events of a stream that carries a sealed call
 * (its record names the key they are sealed to) are published sealed, from the call's record on; a
 * resumption here of such a stream that this gateway cannot read is `locked`.
 */
import { randomBytes } from "node:crypto";
import type { EventId, EventStore, JSONRPCMessage, StreamId } from "@modelcontextprotocol/server";
import { GET_STREAM, type SessionEventLog, type StoredEvent, type StreamCall } from "../../../src/gateway/index.js";

/** The SDK's id of a session's standalone (GET) stream. */
export const STANDALONE_STREAM = GET_STREAM;

/**
 * How a GET with Last-Event-ID resumes: from this gateway's memory (the SDK's replay: a call's stream
 * it sent), or from the bus's log: `replay` (the events after the id), then a follow of the stream
 * from the sequence after `afterSeq`; `unanswered` are the calls recorded on the stream with no answer among its events (PROTOCOL.md §19.4).
 * `locked`, when the stream's events are sealed to a key this gateway does not hold: why (its unanswered calls then fail with DECRYPTION_FAILED).
 */
export type Resumption = { from: "memory" } | { from: "log"; streamId: StreamId; replay: StoredEvent[]; afterSeq: number; unanswered: StreamCall[]; locked?: string | undefined };

export const EVENT_STORE_MAX_STREAMS = 1000;
export const EVENT_STORE_MAX_EVENTS_PER_STREAM = 100;

interface StoredStream {
  session: number;
  streamId: StreamId;
  events: { id: EventId; sequence: number; message: JSONRPCMessage }[];
}

/** The store as one session sees it; `forget` drops its streams when the session closes. */
export interface SessionEventStore extends EventStore {
  getStreamIdForEventId(eventId: EventId): Promise<StreamId | undefined>;
  /** Where the stream `lastEventId` names resumes from; undefined when it names no stream of this session. Rejects when the log cannot be read. */
  resumption(lastEventId: EventId): Promise<Resumption | undefined>;
  /** Stores an event at once (and publishes it to the log, with the record of `call` when given): its id. */
  storeNow(streamId: StreamId, message: JSONRPCMessage, call?: StreamCall): EventId;
  /** Records on the log a call whose answer belongs on `streamId` (PROTOCOL.md §19.4). */
  recordCall(streamId: StreamId, call: StreamCall): void;
  /**
   * A call's stream ended with its answer written to the client's open connection: its events go
   * from memory (a gateway keeps nothing of a call once it is over). With the bus's log a client that
   * resumes it anyway is served from there, as on any other gateway; without one they stay (bounded).
   */
  finished(streamId: StreamId): void;
  /**
   * `message`, when it goes on the GET stream, goes on the bus sealed (it came sealed: PROTOCOL.md §16,
   * §19.3): to the caller key `to` (the gateway following the GET stream), or to this gateway's own.
   */
  sealOnGet(message: JSONRPCMessage, to?: string | undefined): void;
  forget(): void;
}

export class MemoryEventStore {
  /** By `<session>/<stream>`, oldest first. */
  private readonly streams = new Map<string, StoredStream>();
  private sequence = 0;
  private sessions = 0;
  private readonly origin = randomBytes(4).toString("hex");

  constructor(
    private readonly maxStreams = EVENT_STORE_MAX_STREAMS,
    private readonly maxEventsPerStream = EVENT_STORE_MAX_EVENTS_PER_STREAM,
  ) {}

  /** `httpSession` names the session on the bus once it has an id; `log` is the bus's event log, if any. */
  forSession(httpSession: () => string | undefined = () => undefined, log?: SessionEventLog): SessionEventStore {
    const session = ++this.sessions;
    // The streams of this session that carry a sealed call: their events go on the bus sealed.
    const sealed = new Set<StreamId>();
    // Messages of the GET stream that came sealed, with the key they go sealed to (the SDK stores the very object it was given).
    const sealedOnGet = new WeakMap<JSONRPCMessage, { to?: string | undefined }>();
    const noteCall = (streamId: StreamId, call: StreamCall | undefined) => {
      if (!call?.sealedTo) return;
      sealed.add(streamId);
      // Bounded like the streams kept: the oldest go first (a stream is dropped here once answered).
      if (sealed.size > this.maxStreams) sealed.delete(sealed.values().next().value!);
    };
    const owned = (eventId: EventId) => {
      const stream = this.streams.get(eventId.slice(0, eventId.lastIndexOf(":")));
      return stream?.session === session ? stream : undefined;
    };
    const storeNow = (streamId: StreamId, message: JSONRPCMessage, call?: StreamCall) => {
      const sessionId = httpSession();
      noteCall(streamId, call);
      // A GET stream is only ever read back from the log (every gateway writes on it): not kept here then.
      const kept = !(log && sessionId && streamId === STANDALONE_STREAM);
      const id = this.store(session, streamId, kept ? message : undefined);
      const onGet = streamId === STANDALONE_STREAM ? sealedOnGet.get(message) : undefined;
      const seal = sealed.has(streamId) || onGet !== undefined;
      if (log && sessionId) log.append(sessionId, streamId, { id, message }, { call, seal, sealTo: onGet?.to });
      return id;
    };
    return {
      storeEvent: async (streamId, message) => storeNow(streamId, message),
      storeNow,
      sealOnGet: (message, to) => void sealedOnGet.set(message, { to }),
      recordCall: (streamId, call) => {
        const sessionId = httpSession();
        noteCall(streamId, call);
        if (log && sessionId) log.appendCall(sessionId, streamId, call);
      },
      getStreamIdForEventId: async (eventId) => owned(eventId)?.streamId,
      resumption: async (eventId) => {
        const held = owned(eventId);
        if (held && held.streamId !== STANDALONE_STREAM) return { from: "memory" };
        const streamId = held?.streamId ?? eventId.slice(eventId.indexOf("/") + 1, eventId.lastIndexOf(":"));
        const id = httpSession();
        if (!log || !id || !/^[A-Za-z0-9_-]{1,128}$/.test(streamId)) return undefined;
        const { events, calls } = await log.readStream(id, streamId);
        const at = events.findIndex((event) => event.id === eventId);
        if (at < 0) return undefined;
        // What this gateway publishes on the stream (answers it finds) is sealed as the call's own events are.
        for (const call of calls) noteCall(streamId, call);
        // The GET stream's sealed events are sealed to its follower's key (PROTOCOL.md §19.3): one there that cannot be read is skipped.
        const locked = streamId === STANDALONE_STREAM ? undefined : lockedReason(events, calls, log);
        const replay = events.slice(at + 1).filter((event) => event.locked === undefined);
        return { from: "log", streamId, replay, afterSeq: events.at(-1)?.seq ?? 0, unanswered: unansweredCalls(events, calls), locked };
      },
      replayEventsAfter: async (lastEventId, { send }) => {
        const stream = owned(lastEventId);
        if (!stream) throw new Error("Last-Event-ID names no stream of this session held here");
        const after = Number(lastEventId.slice(lastEventId.lastIndexOf(":") + 1));
        for (const event of stream.events) if (event.sequence > after) await send(event.id, event.message);
        return stream.streamId;
      },
      finished: (streamId) => {
        sealed.delete(streamId);
        if (log && streamId !== STANDALONE_STREAM) this.streams.delete(`${this.origin}-${session}/${streamId}`);
      },
      forget: () => {
        sealed.clear();
        for (const [key, stream] of this.streams) if (stream.session === session) this.streams.delete(key);
      },
    };
  }

  /** How many streams have events held here (every session's). */
  get streamCount(): number {
    return this.streams.size;
  }

  /** The next event id of the stream, keeping `message` under it when given. */
  private store(session: number, streamId: StreamId, message: JSONRPCMessage | undefined): EventId {
    const key = `${this.origin}-${session}/${streamId}`;
    const sequence = ++this.sequence;
    const id = `${key}:${sequence}`;
    if (message === undefined) return id;
    let stream = this.streams.get(key);
    if (!stream) {
      stream = { session, streamId, events: [] };
      this.streams.set(key, stream);
      if (this.streams.size > this.maxStreams) this.streams.delete(this.streams.keys().next().value!);
    }
    stream.events.push({ id, sequence, message });
    if (stream.events.length > this.maxEventsPerStream) stream.events.shift();
    return id;
  }
}

/** The stream an event id names: ids are `<origin>-<session>/<stream>:<sequence>`. */
export function streamOfEventId(eventId: EventId): StreamId {
  return eventId.slice(eventId.indexOf("/") + 1, eventId.lastIndexOf(":"));
}

/** Why this gateway cannot read the stream: an event it cannot open, or a call sealed to a key it does not hold; undefined when it can. */
function lockedReason(events: StoredEvent[], calls: StreamCall[], log: SessionEventLog): string | undefined {
  const call = calls.find((each) => each.sealedTo !== undefined && !log.opens(each.sealedTo));
  if (call)
    return `the events of call ${call.correlationId} to "${call.service}" are sealed to ${call.sealedTo}, the key of the gateway that sent it, which this gateway does not hold`;
  return events.find((each) => each.locked !== undefined)?.locked;
}

/** The calls recorded on a stream whose answers are not among its events (those it can read). */
export function unansweredCalls(events: StoredEvent[], calls: StreamCall[]): StreamCall[] {
  const answered = new Set<unknown>();
  for (const { message } of events) {
    const m = message as Record<string, unknown> | undefined;
    if (m && !("method" in m) && ("result" in m || "error" in m)) answered.add(m.id);
  }
  const pending = new Map<string | number, StreamCall>();
  for (const call of calls) if (!answered.has(call.requestId)) pending.set(call.requestId, call);
  return [...pending.values()];
}

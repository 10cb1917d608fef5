/**
 * A bounded in-memory SSE event store: what lets a 2025 client resume a dropped stream with
 * `Last-Event-ID` (SEP-1699). The bounds keep a long-running gateway's memory flat: the oldest
 * streams are forgotten first, and a stream keeps only its latest events (a client that fell further
 * behind gets what is left).
 *
 * One store serves every session, but each session sees only its own streams (`forSession`): the SDK
 * names every session's GET stream alike, and an event id that leaked out of one session must not
 * replay its stream (another identity's results) to another. Event ids are `<session>/<stream>:<sequence>`.
 *
 * With the bus's event log, every event is also published under the session's HTTP id and its stream
 * (PROTOCOL.md §19.3): a gateway that did not send a stream replays it from there, looked up under
 * the session it serves only, so an id from another session finds nothing there either.
 */
import type { EventId, EventStore, JSONRPCMessage, StreamId } from "@modelcontextprotocol/server";
import { ErrorCode, RequestError } from "../../../src/protocol/index.js";
import type { LoggedStream, SessionEventLog, StoredEvent, StreamCall } from "../../../src/gateway/index.js";

export const EVENT_STORE_MAX_STREAMS = 1000;
export const EVENT_STORE_MAX_EVENTS_PER_STREAM = 100;

interface StoredStream {
  session: number;
  streamId: StreamId;
  events: { id: EventId; sequence: number; message: JSONRPCMessage }[];
}

/** A stream of the session as the bus's log has it, for one that another gateway sent. */
export interface LoggedSessionStream extends LoggedStream {
  streamId: StreamId;
}

/** The store as one session sees it; `forget` drops its streams when the session closes. */
export interface SessionEventStore extends EventStore {
  getStreamIdForEventId(eventId: EventId): Promise<StreamId | undefined>;
  /** Stores an event at once (and publishes it to the log, with the record of `call` when given): its id. */
  storeNow(streamId: StreamId, message: JSONRPCMessage, call?: StreamCall): EventId;
  /** Records on the log a call whose answer belongs on `streamId` (PROTOCOL.md §19.4). */
  recordCall(streamId: StreamId, call: StreamCall): void;
  /** Whether this gateway holds the stream of `eventId` in memory (it sent it). */
  holds(eventId: EventId): boolean;
  /** The stream of `eventId` as the log has it, when the id is among its events. */
  logged(eventId: EventId): Promise<LoggedSessionStream | undefined>;
  forget(): void;
}

export class MemoryEventStore {
  /** By `<session>/<stream>`, oldest first. */
  private readonly streams = new Map<string, StoredStream>();
  private sequence = 0;
  private sessions = 0;

  constructor(
    private readonly maxStreams = EVENT_STORE_MAX_STREAMS,
    private readonly maxEventsPerStream = EVENT_STORE_MAX_EVENTS_PER_STREAM,
  ) {}

  /** `httpSession` names the session on the bus once it has an id; `log` is the bus's event log, if any. */
  forSession(httpSession: () => string | undefined = () => undefined, log?: SessionEventLog): SessionEventStore {
    const session = ++this.sessions;
    const owned = (eventId: EventId) => {
      const stream = this.streams.get(eventId.slice(0, eventId.lastIndexOf(":")));
      return stream?.session === session ? stream : undefined;
    };
    // A stream another gateway sent, as the log has it: read once per resumption (lookup, then replay).
    let remote: (LoggedSessionStream & { eventId: EventId }) | undefined;
    const fromLog = async (eventId: EventId) => {
      const id = httpSession();
      const streamId = streamOfEventId(eventId);
      if (!log || !id || !/^[A-Za-z0-9_-]{1,128}$/.test(streamId)) return undefined;
      if (remote?.eventId === eventId) return remote;
      const { events, calls } = await log.readStream(id, streamId);
      remote = events.some((event) => event.id === eventId) ? { eventId, streamId, events, calls } : undefined;
      return remote;
    };
    const storeNow = (streamId: StreamId, message: JSONRPCMessage, call?: StreamCall) => {
      const id = this.store(session, streamId, message);
      const sessionId = httpSession();
      if (log && sessionId) log.append(sessionId, streamId, { id, message }, call);
      return id;
    };
    return {
      storeEvent: async (streamId, message) => storeNow(streamId, message),
      storeNow,
      recordCall: (streamId, call) => {
        const sessionId = httpSession();
        if (log && sessionId) log.appendCall(sessionId, streamId, call);
      },
      holds: (eventId) => owned(eventId) !== undefined,
      logged: fromLog,
      getStreamIdForEventId: async (eventId) => owned(eventId)?.streamId ?? (await fromLog(eventId))?.streamId,
      replayEventsAfter: async (lastEventId, { send }) => {
        const stream = owned(lastEventId);
        if (!stream) return replayRemote(await fromLog(lastEventId), lastEventId, send);
        const after = Number(lastEventId.slice(lastEventId.lastIndexOf(":") + 1));
        for (const event of stream.events) if (event.sequence > after) await send(event.id, event.message);
        return stream.streamId;
      },
      forget: () => {
        for (const [key, stream] of this.streams) if (stream.session === session) this.streams.delete(key);
      },
    };
  }

  private store(session: number, streamId: StreamId, message: JSONRPCMessage): EventId {
    const key = `${session}/${streamId}`;
    let stream = this.streams.get(key);
    if (!stream) {
      stream = { session, streamId, events: [] };
      this.streams.set(key, stream);
      if (this.streams.size > this.maxStreams) this.streams.delete(this.streams.keys().next().value!);
    }
    const sequence = ++this.sequence;
    const id = `${key}:${sequence}`;
    stream.events.push({ id, sequence, message });
    if (stream.events.length > this.maxEventsPerStream) stream.events.shift();
    return id;
  }
}

/** The stream an event id names: ids are `<session>/<stream>:<sequence>`. */
export function streamOfEventId(eventId: EventId): StreamId {
  return eventId.slice(eventId.indexOf("/") + 1, eventId.lastIndexOf(":"));
}

/** Replays what followed `lastEventId` in a stream read from the bus's log. */
async function replayRemote(
  remote: { streamId: StreamId; events: StoredEvent[] } | undefined,
  lastEventId: EventId,
  send: (eventId: EventId, message: JSONRPCMessage) => Promise<void>,
): Promise<StreamId> {
  if (!remote) throw new RequestError(ErrorCode.InvalidParams, "Last-Event-ID names no stream of this session");
  const from = remote.events.findIndex((event) => event.id === lastEventId);
  for (const event of remote.events.slice(from + 1)) await send(event.id, event.message as JSONRPCMessage);
  return remote.streamId;
}

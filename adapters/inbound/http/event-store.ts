/**
 * A bounded in-memory SSE event store: what lets a 2025 client resume a dropped stream with
 * `Last-Event-ID` (SEP-1699). The bounds keep a long-running gateway's memory flat: the oldest
 * streams are forgotten first, and a stream keeps only its latest events (a client that fell further
 * behind gets what is left).
 *
 * One store serves every session, but each session sees only its own streams (`forSession`): the SDK
 * names every session's GET stream alike, and an event id that leaked out of one session must not
 * replay its stream (another identity's results) to another. Event ids are `<session>/<stream>:<sequence>`.
 */
import type { EventId, EventStore, JSONRPCMessage, StreamId } from "@modelcontextprotocol/server";
import { ErrorCode, RequestError } from "../../../src/protocol/index.js";

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

  forSession(): SessionEventStore {
    const session = ++this.sessions;
    const owned = (eventId: EventId) => {
      const stream = this.streams.get(eventId.slice(0, eventId.lastIndexOf(":")));
      return stream?.session === session ? stream : undefined;
    };
    return {
      storeEvent: async (streamId, message) => this.store(session, streamId, message),
      getStreamIdForEventId: async (eventId) => owned(eventId)?.streamId,
      replayEventsAfter: async (lastEventId, { send }) => {
        const stream = owned(lastEventId);
        if (!stream) throw new RequestError(ErrorCode.InvalidParams, "Last-Event-ID names no stream of this session");
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

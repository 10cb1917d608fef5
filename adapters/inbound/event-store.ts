/**
 * A bounded in-memory SSE event store: what lets a 2025 client resume a dropped stream with
 * `Last-Event-ID` (SEP-1699). Event ids are `<stream>:<sequence>`, so an id names its stream. The
 * bounds keep a long-running gateway's memory flat: the oldest streams are forgotten first, and a
 * stream keeps only its latest events (a client that fell further behind gets what is left).
 */
import type { EventId, EventStore, JSONRPCMessage, StreamId } from "@modelcontextprotocol/server";

export const EVENT_STORE_MAX_STREAMS = 1000;
export const EVENT_STORE_MAX_EVENTS_PER_STREAM = 100;

export class MemoryEventStore implements EventStore {
  private readonly streams = new Map<StreamId, { id: EventId; message: JSONRPCMessage }[]>();
  private sequence = 0;

  constructor(
    private readonly maxStreams = EVENT_STORE_MAX_STREAMS,
    private readonly maxEventsPerStream = EVENT_STORE_MAX_EVENTS_PER_STREAM,
  ) {}

  async storeEvent(streamId: StreamId, message: JSONRPCMessage): Promise<EventId> {
    const id = `${streamId}:${++this.sequence}`;
    let events = this.streams.get(streamId);
    if (!events) {
      events = [];
      this.streams.set(streamId, events);
      if (this.streams.size > this.maxStreams) this.streams.delete(this.streams.keys().next().value!);
    }
    events.push({ id, message });
    if (events.length > this.maxEventsPerStream) events.shift();
    return id;
  }

  async getStreamIdForEventId(eventId: EventId): Promise<StreamId | undefined> {
    const streamId = eventId.slice(0, eventId.lastIndexOf(":"));
    return this.streams.has(streamId) ? streamId : undefined;
  }

  async replayEventsAfter(lastEventId: EventId, { send }: { send: (eventId: EventId, message: JSONRPCMessage) => Promise<void> }): Promise<StreamId> {
    const streamId = (await this.getStreamIdForEventId(lastEventId)) ?? "";
    const events = this.streams.get(streamId) ?? [];
    const sequence = Number(lastEventId.slice(lastEventId.lastIndexOf(":") + 1));
    for (const event of events) if (Number(event.id.slice(event.id.lastIndexOf(":") + 1)) > sequence) await send(event.id, event.message);
    return streamId;
  }
}

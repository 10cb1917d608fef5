/**
 * A call's stream resumed on a gateway that did not send it, with calls whose answers the bus's log
 * does not have: the gateway that sent them died with them in flight (or is cut off from the client).
 * This gateway replays what the log kept after Last-Event-ID, then finds each call's answer where the
 * bus keeps it (the session's `onrecover`: the result store for a durable call, the instance that ran
 * a direct one), writes it as the stream's next event (stored, so that a later resumption on any
 * gateway finds it) and ends the stream, as the first gateway would have (PROTOCOL.md §19.4).
 */
import type { ServerResponse } from "node:http";
import type { JSONRPCMessage } from "@modelcontextprotocol/server";
import type { LoggedStream, StreamCall } from "../../../src/gateway/index.js";
import type { LoggedSessionStream, SessionEventStore } from "./event-store.js";
import { sseEvent, startSse } from "./sse-writing.js";

/** A comment line this often keeps a quiet stream from being cut by a proxy while an answer is awaited. */
const KEEPALIVE_MS = 15_000;

export interface RecoveredStreamOptions {
  sessionId: string;
  events: SessionEventStore;
  /** The answer of one call (a JSON-RPC response); aborting `signal` stops the wait. */
  recover: (call: StreamCall, signal: AbortSignal) => Promise<JSONRPCMessage>;
}

/** The calls recorded on a stream whose answers are not among its events. */
export function unansweredCalls(stream: LoggedStream): StreamCall[] {
  const answered = new Set<unknown>();
  for (const { message } of stream.events) {
    const m = message as Record<string, unknown>;
    if (!("method" in m) && ("result" in m || "error" in m)) answered.add(m.id);
  }
  const pending = new Map<string | number, StreamCall>();
  for (const call of stream.calls) if (!answered.has(call.requestId)) pending.set(call.requestId, call);
  return [...pending.values()];
}

/** Serves the resumed stream: the events after `lastEventId`, then the answers of `pending` as they are found. */
export async function serveRecoveredStream(
  res: ServerResponse,
  lastEventId: string,
  stream: LoggedSessionStream,
  pending: StreamCall[],
  options: RecoveredStreamOptions,
): Promise<void> {
  startSse(res, options.sessionId);
  const from = stream.events.findIndex((event) => event.id === lastEventId);
  for (const event of stream.events.slice(from + 1)) {
    const priming = Object.keys(event.message as object).length === 0;
    res.write(priming ? `id: ${event.id}\ndata: \n\n` : sseEvent(event.message, event.id));
  }
  const gone = new AbortController();
  res.on("close", () => gone.abort());
  const keepalive = setInterval(() => res.write(": keepalive\n\n"), KEEPALIVE_MS);
  try {
    await Promise.all(
      pending.map(async (call) => {
        const answer = await options.recover(call, gone.signal);
        // The client left: it resumes again, and the answer is looked for again then.
        if (gone.signal.aborted) return;
        res.write(sseEvent(answer, options.events.storeNow(stream.streamId, answer)));
      }),
    );
  } finally {
    clearInterval(keepalive);
  }
  if (!res.writableEnded) res.end();
}

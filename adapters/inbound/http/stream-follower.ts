/**
 * SSE streams of one HTTP session served from the bus's event log (PROTOCOL.md §19.3), whichever
 * gateway writes on them: every standalone GET stream, and a call's stream that another gateway sent,
 * resumed here with Last-Event-ID. What the log holds after the client's last event is replayed, then
 * the stream is followed live: each event published on it later (by the gateway running the call, or
 * by any gateway for a GET stream) is written to the client once the log has stored it. A call's
 * stream ends after the call's answer; any stream ends when the client goes away, the session closes
 * here, or the log cannot be read any more (the client then resumes it, here or elsewhere).
 *
 * A call's stream whose events are sealed to a key this gateway does not hold (another gateway's own
 * caller key, PROTOCOL.md §19.3) cannot be passed on: its calls without an answer are answered with
 * DECRYPTION_FAILED and the stream ends, at once when the resumption finds it so (`locked`), or at
 * the first such event the follow meets. Such an event on the GET stream (sealed to the key of the
 * gateway that followed it when it was written) is skipped.
 *
 * The API the rest of the gateway uses: `serve(res, plan)` for one GET, `holds(stream)` (whether the
 * stream is open here), `closeAll()` when the session ends here.
 */
import type { ServerResponse } from "node:http";
import type { EventFollow, FollowStart, SessionEventLog, StoredEvent, StreamCall } from "../../../src/gateway/index.js";
import { ErrorCode, errorResponse, JsonRpcErrorCode, SecurityError, toJsonRpcError } from "../../../src/protocol/index.js";
import { STANDALONE_STREAM, unansweredCalls } from "./event-store.js";

/** How often an idle stream gets an SSE comment, so that proxies keep it open (the SDK's interval). */
export const FOLLOW_KEEP_ALIVE_MS = 15_000;
/** A client that reads slower than its stream fills: the stream ends past this much unsent, and it resumes. */
const MAX_UNSENT_BYTES = 1024 * 1024;

/** What one GET gets: the events to replay, then the follow of `streamId` from `start`. */
export interface FollowPlan {
  streamId: string;
  replay: StoredEvent[];
  start: FollowStart;
  /** The calls recorded on the stream without an answer among its events before the replay (failed when the stream turns out locked). */
  calls?: StreamCall[] | undefined;
  /** The stream's events cannot be read here: why (its unanswered calls are failed at once). */
  locked?: string | undefined;
}

export class FollowedStreams {
  /** The streams followed here, by stream id: how to end each. */
  private readonly open = new Map<string, () => void>();

  constructor(
    private readonly log: SessionEventLog,
    /** The session's HTTP id (the log's subjects are named by it). */
    private readonly sessionId: () => string | undefined,
    private readonly keepAliveMs = FOLLOW_KEEP_ALIVE_MS,
  ) {}

  /** Whether the stream `streamId` (e.g. the GET stream) is open on this gateway. */
  holds(streamId: string): boolean {
    return this.open.has(streamId);
  }

  /** Serves one GET of the stream `plan` names; settles once its headers (or its refusal) are written. */
  async serve(res: ServerResponse, plan: FollowPlan): Promise<void> {
    const session = this.sessionId();
    if (session === undefined) return refuse(res, 400, "Bad Request: the session has no id yet");
    if (this.open.has(plan.streamId)) {
      const what = plan.streamId === STANDALONE_STREAM ? "Only one SSE stream is allowed per session" : "Stream already has an active connection";
      return refuse(res, 409, `Conflict: ${what}`);
    }
    const endsCall = plan.streamId !== STANDALONE_STREAM;
    // What the stream holds, as far as the follow has read it: for a stream that turns out locked.
    const calls = [...(plan.calls ?? [])];
    const read = [...plan.replay];
    if (endsCall && plan.locked !== undefined) {
      open(res, session);
      for (const message of lockedAnswers(unansweredCalls(read, calls), plan.locked)) res.write(sseMessage(message));
      res.end();
      return;
    }
    const answered = endsCall ? plan.replay.findIndex((event) => isAnswer(event.message)) : -1;
    if (answered >= 0) {
      // The call's answer is in the replay: nothing will follow it.
      open(res, session);
      for (const event of plan.replay.slice(0, answered + 1)) res.write(sseEvent(event));
      res.end();
      return;
    }
    // Events of the follow wait until the replay is written (they come after it).
    let backlog: StoredEvent[] | undefined = [];
    let finished = false;
    let follow: EventFollow | undefined;
    let keepAlive: NodeJS.Timeout | undefined;
    const finish = () => {
      if (finished) return;
      finished = true;
      follow?.stop();
      clearInterval(keepAlive);
      if (this.open.get(plan.streamId) === finish) this.open.delete(plan.streamId);
      if (!res.writableEnded) res.end();
    };
    const write = (event: StoredEvent) => {
      if (finished) return;
      if (event.locked !== undefined) {
        if (!endsCall) return;
        for (const message of lockedAnswers(unansweredCalls(read, calls), event.locked)) res.write(sseMessage(message));
        return finish();
      }
      // Only a call's stream needs what it wrote (to tell its answered calls); a GET stream runs for hours.
      if (endsCall) read.push(event);
      res.write(sseEvent(event));
      if ((endsCall && isAnswer(event.message)) || res.writableLength > MAX_UNSENT_BYTES) finish();
    };
    this.open.set(plan.streamId, finish);
    try {
      follow = await this.log.follow(
        session,
        plan.streamId,
        plan.start,
        (event) => (backlog ? backlog.push(event) : write(event)),
        (call) => endsCall && calls.push(call),
      );
    } catch {
      this.open.delete(plan.streamId);
      return logUnavailable(res);
    }
    void follow.ended.then(finish);
    res.on("close", finish);
    if (finished || res.destroyed) return finish();
    open(res, session);
    for (const event of [...plan.replay, ...backlog]) write(event);
    backlog = undefined;
    keepAlive = setInterval(() => res.write(": keepalive\n\n"), this.keepAliveMs);
    keepAlive.unref();
  }

  /** Ends every stream followed here (the session closed here). */
  closeAll(): void {
    for (const finish of [...this.open.values()]) finish();
  }
}

/** A JSON-RPC response (result or error): what ends a call's stream. */
function isAnswer(message: unknown): boolean {
  const m = message as Record<string, unknown> | undefined;
  return m !== undefined && !("method" in m) && "id" in m && ("result" in m || "error" in m);
}

/** DECRYPTION_FAILED answers for the calls of a stream this gateway cannot read, as the client would get from a sealed answer it cannot open (PROTOCOL.md §19.4). */
function lockedAnswers(calls: StreamCall[], reason: string): unknown[] {
  return calls.map((call) => {
    const error = new SecurityError(ErrorCode.DecryptionFailed, `the stream of this call cannot be read on this gateway: ${reason} (PROTOCOL.md §19.3)`, {
      data: { service: call.service, ...(call.sealedTo ? { sealed_to: call.sealedTo } : {}) },
    });
    return errorResponse(call.requestId, toJsonRpcError(error));
  });
}

/** A message written without an event id: not on the log, so nothing to resume from. */
function sseMessage(message: unknown): string {
  return `event: message\ndata: ${JSON.stringify(message)}\n\n`;
}

function open(res: ServerResponse, session: string): void {
  res.writeHead(200, {
    "content-type": "text/event-stream",
    "cache-control": "no-cache, no-transform",
    connection: "keep-alive",
    "x-accel-buffering": "no",
    "mcp-session-id": session,
  });
  res.flushHeaders();
}

/** An event as the SDK writes it; a priming event (`{}`) has an id and no data. */
function sseEvent(event: StoredEvent): string {
  const message = event.message as Record<string, unknown>;
  if (Object.keys(message).length === 0) return `id: ${event.id}\ndata: \n\n`;
  return `event: message\nid: ${event.id}\ndata: ${JSON.stringify(message)}\n\n`;
}

/** Answers a GET whose stream cannot be read from the log now (the bus is down or slow). */
export function logUnavailable(res: ServerResponse): void {
  res.setHeader("retry-after", "1");
  refuse(res, 503, "Service unavailable: the session's event log cannot be read; retry", JsonRpcErrorCode.BusUnavailable);
}

function refuse(res: ServerResponse, status: number, message: string, code: number = JsonRpcErrorCode.InvalidRequest): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(errorResponse(null, { code, message })));
}

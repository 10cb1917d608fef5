/**
 * The Streamable HTTP sessions this gateway holds, by `Mcp-Session-Id`: each an inbound transport
 * (session-transport.ts) and its gateway session. Any gateway on the bus serves any session: an id
 * unknown here is looked up in the sessions bucket (src/gateway/sessions/shared-sessions.ts) and the
 * session is taken up where another gateway left it; a session this gateway holds costs no lookup.
 * A DELETE ends the session on every gateway; a session idle here is only dropped here.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { JsonRpcErrorCode } from "../../../src/protocol/index.js";
import type { Gateway, GatewaySession, Identity, SessionEventLog, SessionState, SharedSessions } from "../../../src/gateway/index.js";
import type { Logger } from "../../../src/util/index.js";
import { sendRpcError } from "./middleware/index.js";
import { MemoryEventStore } from "./event-store.js";
import { HttpSessionTransport } from "./session-transport.js";
import { FollowedStreams } from "./stream-follower.js";

/** How long a client whose SSE stream dropped waits before it reconnects (the SSE `retry` field). */
const SSE_RETRY_MS = 1000;

export interface HttpSession {
  transport: HttpSessionTransport;
  lastUsed: number;
  /** When its state was last written to the sessions bucket. */
  lastShared: number;
  /** Set once the gateway session exists (right after the transport). */
  session?: GatewaySession;
}

export interface HttpSessionsOptions {
  gateway: Gateway;
  shared: SharedSessions;
  /** The SSE events on the bus: a stream resumes on any gateway. */
  events?: SessionEventLog | undefined;
  logger: Logger;
  /** Sessions with no request here and no call in flight here for this long are dropped here. */
  idleMs: number;
  jsonResponses?: boolean | undefined;
  ssePollMs?: number | undefined;
  /** A plain call still unanswered after this many ms gets a resumable stream (direct-answers.ts); 0: never. */
  resumableAfterMs?: number | undefined;
}

export class HttpSessions {
  private readonly sessions = new Map<string, HttpSession>();
  /** Lookups in the sessions bucket under way, so that requests arriving together restore a session once. */
  private readonly loading = new Map<string, Promise<HttpSession | undefined>>();
  // Session SSE streams get event ids, a priming event and a retry hint: a client that loses one
  // resumes it with Last-Event-ID (bounded memory, each session sees only its own streams: see event-store.ts).
  private readonly eventStore = new MemoryEventStore();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly options: HttpSessionsOptions) {
    // Twice per idle timeout at least: a busy session's record is written again before it can expire.
    this.sweeper = setInterval(() => this.sweep(), Math.min(options.idleMs / 2, 60_000));
    this.sweeper.unref();
  }

  /** Follows the sessions other gateways change or delete. */
  watch(): Promise<void> {
    return this.options.shared.watch({
      changed: (id, state) => this.sessions.get(id)?.session?.applyState(state),
      removed: (id) => {
        const entry = this.sessions.get(id);
        // The gateway that deleted it ended its upstream sessions.
        if (entry) void this.closeHere(id, entry, "closing a session deleted through another gateway", "elsewhere");
      },
    });
  }

  /** How many SSE streams have events held in memory, all sessions together. */
  get heldStreamCount(): number {
    return this.eventStore.streamCount;
  }

  get size(): number {
    return this.sessions.size;
  }

  /** Whether the session `id` is held here (no lookup on the bus). */
  holds(id: string): boolean {
    return this.sessions.has(id);
  }

  /** The session `id` when it is held here (no lookup on the bus). */
  held(id: string): HttpSession | undefined {
    return this.sessions.get(id);
  }

  /** The session `id`: held here, or taken up from the sessions bucket; undefined when no gateway has it. Rejects when the bucket cannot be read. */
  find(id: string): Promise<HttpSession | undefined> | HttpSession | undefined {
    const held = this.sessions.get(id);
    if (held) return held;
    let loading = this.loading.get(id);
    if (!loading) {
      loading = this.restore(id).finally(() => this.loading.delete(id));
      this.loading.set(id, loading);
    }
    return loading;
  }

  /** A new session for an initialize request of `identity`; it is held here once the transport gives it an id. */
  async open(identity: Identity): Promise<HttpSession> {
    return this.create(identity, undefined);
  }

  /**
   * A session belongs to the identity that opened it: a request with another identity's session id is
   * refused (a leaked session id is not a credential). The same subject may come back with a refreshed token.
   */
  admit(entry: HttpSession, identity: Identity, res: ServerResponse): boolean {
    const owner = entry.session?.identity;
    if (owner && (owner.kind !== identity.kind || owner.subject !== identity.subject)) {
      sendRpcError(res, 403, JsonRpcErrorCode.InvalidRequest, "Forbidden: this session belongs to another identity");
      return false;
    }
    if (entry.session) entry.session.identity = identity;
    this.used(entry, Date.now());
    return true;
  }

  /** The session is in use now: not idle here, and its record kept from expiring (its max age is the idle timeout). */
  private used(entry: HttpSession, now: number): void {
    entry.lastUsed = now;
    if (entry.session && now - entry.lastShared > this.options.shared.refreshMs) {
      entry.lastShared = now;
      void entry.session.shareState();
    }
  }

  /** Ends, on every gateway, the sessions of identities that may no longer come in. */
  async closeSessionsOf(revoked: (identity: Identity) => boolean): Promise<void> {
    const closing = [...this.sessions].filter(([, entry]) => entry.session && revoked(entry.session.identity));
    await Promise.allSettled(
      closing.map(async ([id, entry]) => {
        await this.closeHere(id, entry, "closing the session of an identity no longer accepted", "end");
        await this.remove(id);
      }),
    );
  }

  /** Drops every session here (they live on in the bucket, with their upstream sessions, for the other gateways). */
  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.options.shared.stop();
    await Promise.allSettled([...this.sessions.values()].map((entry) => (entry.session ? entry.session.leave("elsewhere") : entry.transport.close())));
    this.sessions.clear();
  }

  private async restore(id: string): Promise<HttpSession | undefined> {
    const state = await this.options.shared.load(id);
    if (!state) return undefined;
    // Another request may have restored it meanwhile (or it was initialized here).
    const held = this.sessions.get(id);
    if (held) return held;
    const entry = await this.create(state.owner, { id, state });
    this.options.logger.debug({ session: id, from: state.gateway }, "serving a session another gateway initialized");
    return entry;
  }

  private async create(identity: Identity, restored: { id: string; state: SessionState } | undefined): Promise<HttpSession> {
    const { gateway, shared, jsonResponses, ssePollMs, resumableAfterMs } = this.options;
    const log = this.options.events;
    const sessionId = (): string | undefined => transport.sessionId;
    const events = this.eventStore.forSession(sessionId, log);
    const transport = new HttpSessionTransport({
      sessionIdGenerator: () => randomUUID(),
      // SSE answers carry a call's progress notifications before its result; plain JSON answers are
      // cheaper but drop them, so they are opt-in.
      enableJsonResponse: jsonResponses ?? false,
      // Plain calls answer with JSON unless a message of theirs comes first; SSE polling needs every answer on a stream.
      directAnswers: !jsonResponses && ssePollMs === undefined,
      eventStore: events,
      resumableAfterMs,
      // GET streams come from the bus's log, followed live: any gateway's messages reach the client on them.
      ...(log ? { followed: new FollowedStreams(log, sessionId) } : {}),
      onstandalone: () => entry.session?.standaloneStreamOpened(),
      retryInterval: SSE_RETRY_MS,
      onsessioninitialized: (id) => {
        this.sessions.set(id, entry);
      },
      // A DELETE: the session ends on every gateway.
      onsessionclosed: async (id) => {
        this.sessions.delete(id);
        await this.remove(id);
      },
    });
    const now = Date.now();
    const entry: HttpSession = { transport, lastUsed: now, lastShared: now };
    if (restored) transport.adopt(restored.id);
    const session = await gateway.connect(transport, "http", identity, {
      ssePollMs,
      restored: restored?.state,
      share: (state) => {
        entry.lastShared = Date.now();
        return transport.sessionId ? shared.save(transport.sessionId, state) : Promise.resolve();
      },
    });
    entry.session = session;
    const onclose = session.onclose;
    session.onclose = () => {
      onclose?.();
      if (transport.sessionId && this.sessions.get(transport.sessionId) === entry) this.sessions.delete(transport.sessionId);
      events.forget();
    };
    if (restored) this.sessions.set(restored.id, entry);
    return entry;
  }

  private async remove(id: string): Promise<void> {
    try {
      await this.options.shared.remove(id);
    } catch (err) {
      this.options.logger.warn({ err, session: id }, "could not delete the session from the sessions bucket: other gateways serve it until it expires");
    }
  }

  /** Drops a session here; `end` ends its upstream sessions too, else GatewaySession.leave decides. */
  private closeHere(id: string, entry: HttpSession, why: string, how: "end" | "idle" | "elsewhere"): Promise<void> {
    this.options.logger.info({ session: id, subject: entry.session?.identity.subject }, why);
    this.sessions.delete(id);
    if (!entry.session) return entry.transport.close();
    return how === "end" ? entry.session.close() : entry.session.leave(how);
  }

  private sweep(): void {
    const now = Date.now();
    for (const [id, entry] of this.sessions) {
      // A call still running (a tool slower than the idle timeout) keeps its session: its client waits on it.
      if (entry.session && entry.session.callsInFlight > 0) this.used(entry, now);
      else if (now - entry.lastUsed > this.options.idleMs) void this.closeHere(id, entry, "closing idle session", "idle");
    }
  }
}

/** Answers a request whose session could not be looked up (the bus is down or slow). */
export function storeUnavailable(res: ServerResponse, req: IncomingMessage, logger: Logger, err: unknown): void {
  logger.warn({ err, session: req.headers["mcp-session-id"] }, "could not read the sessions bucket");
  res.setHeader("retry-after", "1");
  sendRpcError(res, 503, JsonRpcErrorCode.InternalError, "Service unavailable: the session store cannot be read; retry");
}

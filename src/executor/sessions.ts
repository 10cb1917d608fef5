/**
 * Upstream sessions per MCP client session (PROTOCOL.md §16): a client session's calls reach the
 * upstream in a session of their own, opened with the client's capabilities, so that the upstream's
 * server-to-client requests (sampling, elicitation, roots), log messages and resource updates can go
 * back to that client only, across the bus to the gateway instance that holds it.
 */
import type { Bus, BusMessage, Seal } from "../bus/index.js";
import {
  BusError,
  createEnvelope,
  ErrorCode,
  errorFromPayload,
  RELAYED_CLIENT_NOTIFICATIONS,
  RequestError,
  SESSION_CLOSE_METHOD,
  SESSION_NOTIFICATIONS,
  subjects,
  type ClientSession,
} from "../protocol/index.js";
import type { Logger } from "../util/index.js";
import type { McpUpstream, UpstreamOpener, UpstreamRequestOptions } from "./upstream/index.js";
import { completeInputRounds, isInputRequired } from "./input-rounds.js";
import type { ClientSessionRef, ExecutorRequest, SessionRequest } from "./request.js";

/** Closes an upstream session whose client session sent nothing for this long. */
export const DEFAULT_SESSION_IDLE_MS = 10 * 60_000;
/** More client sessions than this share the executor's own upstream session (no per-client features). */
export const DEFAULT_MAX_SESSIONS = 32;
/** How long a server-to-client request may wait for the client when no call bounds it (a human may answer). */
const SERVER_REQUEST_TIMEOUT_MS = 10 * 60_000;

type Notify = (method: string, params: Record<string, unknown>) => void;

interface RunningCall {
  correlationId: string;
  notify: Notify;
  deadline: number;
  /** The gateway that sent the call: its server-to-client requests go there. */
  gateway: string;
  /** A sealed call's seal: its server-to-client requests go sealed the same way (PROTOCOL.md §14.3). */
  seal: Seal | undefined;
}

interface UpstreamSession {
  key: string;
  sessionId: string;
  /** As the latest call declared it: notifications outside a call go to its gateway. */
  client: ClientSession;
  /** The latest call's seal: what goes to its gateway outside a call is sealed as that call was. */
  seal: Seal | undefined;
  opened: Promise<McpUpstream>;
  /** What `opened` resolved to, once it has. */
  upstream?: McpUpstream | undefined;
  calls: RunningCall[];
  logLevel: string | undefined;
  idle: NodeJS.Timeout | undefined;
  /** When a call last started or ended (Date.now()). */
  lastUsed: number;
}

export interface UpstreamSessionsOptions {
  bus: Bus;
  service: string;
  instance: string;
  opener: UpstreamOpener;
  logger: Logger;
  /** Upstream notifications other than logging and resource updates (progress, list_changed), with the session they came from. */
  onNotification: (method: string, params: Record<string, unknown> | undefined, upstream: McpUpstream) => void;
  idleMs?: number | undefined;
  maxSessions?: number | undefined;
  /** An upstream session went away on its own (its server crashed or closed it); the next call reopens it. */
  onLost?: (() => void) | undefined;
}

export class UpstreamSessions {
  private readonly sessions = new Map<string, UpstreamSession>();
  private warnedFull = false;
  /** Set when shutdown has begun: an upstream session that goes away then is no news. */
  private shuttingDown = false;

  constructor(private readonly options: UpstreamSessionsOptions) {}

  get size(): number {
    return this.sessions.size;
  }

  /** Whether client sessions get upstream sessions here at all (`--max-sessions 0`: never). */
  get enabled(): boolean {
    return (this.options.maxSessions ?? DEFAULT_MAX_SESSIONS) > 0;
  }

  /** Whether this request is served in a client session's own upstream session (else in the shared one). */
  accepts(request: ExecutorRequest): request is SessionRequest {
    if (!request.clientSession) return false;
    if (this.sessions.has(keyOf(request.clientSession)) || this.sessions.size < (this.options.maxSessions ?? DEFAULT_MAX_SESSIONS)) return true;
    if (!this.warnedFull)
      this.options.logger.warn({ max: this.options.maxSessions ?? DEFAULT_MAX_SESSIONS }, "too many client sessions: further ones share the executor's upstream session");
    this.warnedFull = true;
    return false;
  }

  /** Runs one call (one `accepts` took) in its client session's upstream session (opened on the first call). */
  async request(request: SessionRequest, notify: Notify, options: UpstreamRequestOptions): Promise<Record<string, unknown>> {
    const { method, params, clientSession } = request;
    const key = keyOf(clientSession);
    if (method === SESSION_CLOSE_METHOD) {
      await this.close(key);
      return {};
    }
    if (RELAYED_CLIENT_NOTIFICATIONS.has(method)) {
      // For an upstream session that exists; a session opened later asks for roots anyway.
      const upstream = await this.sessions.get(key)?.opened.catch(() => undefined);
      await upstream?.notify(method, params);
      return {};
    }
    const session = this.sessions.get(key) ?? this.open(key, clientSession);
    // Gateways that share the client session (PROTOCOL.md §19) send its calls in turn: the latest speaks for it.
    session.client = clientSession.client;
    session.seal = request.seal;
    this.touch(session);
    // Once open, the session's upstream is at hand: no await (a promise and a turn) per call.
    const upstream = session.upstream ?? (await session.opened);
    const level = clientSession.client.log_level;
    if (level && level !== session.logLevel) await this.applyLogLevel(session, upstream, level, options);
    const running: RunningCall = { correlationId: request.correlationId, notify, deadline: request.deadline, gateway: clientSession.client.gateway, seal: request.seal };
    session.calls.push(running);
    try {
      const result = await upstream.request(method, params, options);
      // An upstream that serves 2026-07-28 only asks for input in its result: this 2025 client is asked.
      if (!isInputRequired(result)) return result;
      return await completeInputRounds(
        result,
        (asked, input) => this.relayRequest(session, asked, input),
        (input) => upstream.request(method, { ...params, ...input }, options),
      );
    } finally {
      session.calls.splice(session.calls.indexOf(running), 1);
      this.touch(session);
    }
  }

  /** Shutdown has begun: upstream sessions that go away from now on (Ctrl-C reaches their servers too) are not reported as lost. */
  beginShutdown(): void {
    this.shuttingDown = true;
  }

  async closeAll(): Promise<void> {
    this.beginShutdown();
    await Promise.all([...this.sessions.keys()].map((key) => this.close(key)));
  }

  private open(key: string, { id, client }: ClientSessionRef): UpstreamSession {
    const session: UpstreamSession = { key, sessionId: id, client, seal: undefined, calls: [], logLevel: undefined, idle: undefined, lastUsed: Date.now(), opened: undefined! };
    const logger = this.options.logger.child({ clientSession: id, gateway: client.gateway });
    session.opened = this.options.opener.connect(logger, upstreamCapabilities(client.capabilities)).then((upstream) => {
      upstream.onrequest = (method, params) => this.relayRequest(session, method, params);
      upstream.onnotification = (method, params) => this.onNotification(session, upstream, method, params);
      upstream.onclose = (error) => {
        if (this.sessions.get(key) !== session) return; // closed by us
        this.sessions.delete(key);
        clearTimeout(session.idle);
        if (this.shuttingDown) return;
        logger.warn({ err: error }, "a client session's upstream session went away; its next call opens a new one");
        this.options.onLost?.();
      };
      logger.info({ sessions: this.sessions.size }, "upstream session opened for a client session");
      session.upstream = upstream;
      return upstream;
    });
    session.opened.catch(() => this.sessions.get(key) === session && this.sessions.delete(key));
    this.sessions.set(key, session);
    return session;
  }

  private async close(key: string): Promise<void> {
    const session = this.sessions.get(key);
    if (!session) return;
    this.sessions.delete(key);
    clearTimeout(session.idle);
    const upstream = await session.opened.catch(() => undefined);
    await upstream?.close();
    this.options.logger.info({ clientSession: session.sessionId, sessions: this.sessions.size }, "upstream session closed");
  }

  /** Notes a call starting or ending; one timer per session checks for idleness (not a new timer per call). */
  private touch(session: UpstreamSession): void {
    session.lastUsed = Date.now();
    if (session.idle === undefined) this.armIdle(session, this.options.idleMs ?? DEFAULT_SESSION_IDLE_MS);
  }

  private armIdle(session: UpstreamSession, delayMs: number): void {
    session.idle = setTimeout(() => {
      if (this.sessions.get(session.key) !== session) return; // closed, or failed to open: the key may be another session's now
      const idleMs = this.options.idleMs ?? DEFAULT_SESSION_IDLE_MS;
      const quietFor = Date.now() - session.lastUsed;
      if (session.calls.length > 0) this.armIdle(session, idleMs);
      else if (quietFor < idleMs) this.armIdle(session, idleMs - quietFor);
      else {
        session.idle = undefined;
        void this.close(session.key);
      }
    }, delayMs);
    session.idle.unref?.();
  }

  /** The client's logging/setLevel reaches its upstream session before the next call. */
  private async applyLogLevel(session: UpstreamSession, upstream: McpUpstream, level: string | undefined, options: UpstreamRequestOptions): Promise<void> {
    if (!level || level === session.logLevel || !upstream.info?.capabilities.logging) return;
    session.logLevel = level;
    // A stateless upstream (2026-07-28 only) has no logging/setLevel: the level goes with each request.
    if (upstream.stateless) {
      upstream.setRequestLogLevel(level);
      return;
    }
    await upstream.request("logging/setLevel", { level }, { timeoutMs: Math.min(options.timeoutMs, 10_000), revision: undefined }).catch((err: unknown) => {
      this.options.logger.debug({ err, level }, "the upstream refused logging/setLevel");
    });
  }

  /**
   * Log messages go with the call that runs (on its stream, before its result) when there is one;
   * they and resource updates otherwise go to the client session itself.
   */
  private onNotification(session: UpstreamSession, upstream: McpUpstream, method: string, params: Record<string, unknown> | undefined): void {
    if (method === "notifications/message" && session.calls.length > 0) {
      session.calls.at(-1)!.notify(method, params ?? {});
    } else if (SESSION_NOTIFICATIONS.has(method)) {
      this.publish(session, method, params ?? {});
    } else {
      this.options.onNotification(method, params, upstream);
    }
  }

  private publish(session: UpstreamSession, method: string, params: Record<string, unknown>): void {
    const { bus, instance, service } = this.options;
    const update = createEnvelope("context_update", { method, params, data: { service } }, { sender: instance, sessionId: session.sessionId });
    try {
      bus.publish(subjects.gatewaySession(session.client.gateway), bus.codec.encode(update, session.seal));
    } catch (err) {
      this.options.logger.debug({ err, method }, "could not send a session notification to the gateway");
    }
  }

  /**
   * A server-to-client request travels to the gateway that sent the call it belongs to (the latest call
   * running in the session, if any; else the gateway of the session's latest call), and its answer back:
   * sealed as that call was, to the key it was sealed from. The answer is opened whichever way it comes
   * (a gateway of an earlier version answers in clear).
   */
  private async relayRequest(session: UpstreamSession, method: string, params: Record<string, unknown> | undefined): Promise<Record<string, unknown>> {
    const { bus, instance, service } = this.options;
    const call = session.calls.at(-1);
    const timeoutMs = call ? Math.max(1, call.deadline - Date.now()) : SERVER_REQUEST_TIMEOUT_MS;
    const request = createEnvelope("prompt_request", params === undefined ? { service, method } : { service, method, params }, {
      sender: instance,
      sessionId: session.sessionId,
      correlationId: call?.correlationId,
      deadline: new Date(Date.now() + timeoutMs),
    });
    const seal = call ? call.seal : session.seal;
    let reply: BusMessage;
    try {
      reply = await bus.request(subjects.gatewaySession(call?.gateway ?? session.client.gateway), bus.codec.encode(request, seal), { timeoutMs });
    } catch (cause) {
      throw new BusError(ErrorCode.NoResponders, `the client session's gateway did not answer ${method}: ${(cause as Error).message}`, { cause });
    }
    const decoded = bus.codec.decode(reply.data, { receiver: instance, maxBytes: Number.POSITIVE_INFINITY });
    if (!decoded.ok) throw decoded.error;
    const envelope = decoded.envelope;
    if (envelope.type === "prompt_response") return envelope.payload.result;
    if (envelope.type === "error_notification") throw errorFromPayload(envelope.payload);
    throw new RequestError(ErrorCode.InvalidEnvelope, `the gateway answered ${method} with a ${envelope.type}`);
  }
}

/** Notifications of an upstream session that go to its client session (outside a call's stream). */

/** A client session is known by the gateway that opened it and its id there, whichever gateway sends its calls. */
function keyOf({ id, client }: ClientSessionRef): string {
  return `${client.origin ?? client.gateway}/${id}`;
}

/** What the upstream session declares: the client's own capabilities for server-to-client features. */
function upstreamCapabilities(client: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of ["sampling", "elicitation", "roots"]) if (client[name] !== undefined) out[name] = client[name];
  return out;
}

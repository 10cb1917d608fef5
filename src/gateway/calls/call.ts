/**
 * The path of one tools/call: an inbound transport hands the JSON-RPC request to its client session
 * (sessions/session.ts), which builds a Call here, once per request, and after authorization hands it
 * to the dispatcher (calls/dispatcher.ts), which sends it over the bus (bus/requester.ts).
 * A Call carries everything about the request that the steps after the edge ask for, worked out once.
 */
import { CallCancellation, type CallSignal, type StreamCall } from "../../bus/index.js";
import { requestedVersion, type Caller, type ClientSession, type JsonRpcId } from "../../protocol/index.js";
import { ALLOW_ALL, ANONYMOUS, type Access, type Identity, type PolicyTarget } from "../access/policy.js";
import { routeOf, type CallRoute, type Routing, type ServiceDirectory } from "../catalog/routing.js";
import type { SessionPins } from "./session-pins.js";

/** Receives a call's notifications (progress, log messages), in order, before its result. */
export type NotificationSink = (method: string, params: Record<string, unknown>) => void;

/** A call as it left on the bus: what another gateway needs to find its answer there (PROTOCOL.md §19.4). */
export type SentCall = Omit<StreamCall, "requestId">;

/** What ties a call to its MCP client session's upstream sessions (PROTOCOL.md §16); 2025 requests only. */
export interface CallSession {
  /** The client's side of the session, declared to its upstream sessions. */
  clientSession: ClientSession;
  /** The replica holding the session's upstream session, per service; chosen for the session's first call. */
  pins: SessionPins;
}

/** A client session's upstream sessions, which a call of a 2025 request is tied to (sessions/upstream-sessions.ts). */
export interface UpstreamTie {
  /** Ties a call of the client's request `requestId`: its correlation id names it to the upstream session. */
  tie(requestId: JsonRpcId): { correlationId: string; session: CallSession };
}

/** What the edge knows of a request when it builds its Call. */
export interface CallRequest {
  method: string;
  params: Record<string, unknown>;
  /** `stdio`, `http` or `task`, for metrics and the dashboard. */
  transport?: string | undefined;
  /** The JSON-RPC id of the client's request (absent for calls the gateway makes itself). */
  requestId?: JsonRpcId | undefined;
  /** Who made the request, as the inbound adapter established it (anonymous by default). */
  identity?: Identity | undefined;
  /** What `identity` may use (everything by default). */
  access?: Access | undefined;
  /** Who made the call, for the envelope; by default worked out from `identity`. */
  caller?: Caller | undefined;
  /** Aborted when the client cancels or goes away (a session's CallCancellation makes no AbortSignal unless asked for one). */
  signal?: AbortSignal | CallCancellation | undefined;
  /** The W3C trace headers of the HTTP request (the trace continues from `_meta` first). */
  traceHeaders?: Record<string, string> | undefined;
  /** The client session's id on the bus. */
  sessionId?: string | undefined;
  /** The client session's upstream sessions: a 2025 request's call is tied to them, a 2026-07-28 one is not. */
  upstream?: UpstreamTie | undefined;
  /** The call's correlation id on the bus (server-to-client requests and durable retries name it); a fresh one by default. */
  correlationId?: string | undefined;
  onNotification?: NotificationSink | undefined;
  /** Told when the call leaves on the bus (not when the cache or the gateway itself answers it). */
  onSent?: ((sent: SentCall) => void) | undefined;
}

export class Call {
  readonly method: string;
  readonly params: Record<string, unknown>;
  /** The revision a 2026-07-28 request names in its `_meta`; undefined for a request of a session-based revision. */
  readonly version: string | undefined;
  /** The call's deadline: each message it sends on the bus is given up this many ms after it leaves (PROTOCOL.md §5.4). */
  readonly timeoutMs: number;
  readonly transport: string;
  readonly requestId: JsonRpcId | undefined;
  readonly identity: Identity;
  readonly access: Access;
  readonly caller: Caller | undefined;
  /** Aborted when the client cancels or goes away (never, for a call without a client); what the requester listens to. */
  readonly cancellation: CallSignal;
  readonly traceHeaders: Record<string, string> | undefined;
  readonly sessionId: string | undefined;
  /** Set for a call tied to its client session's upstream sessions. */
  readonly session: CallSession | undefined;
  readonly correlationId: string | undefined;
  readonly onNotification: NotificationSink | undefined;
  readonly onSent: ((sent: SentCall) => void) | undefined;
  /** The executor instance that took the call, once its receipt or answer named it. */
  instance: string | undefined;
  private routing: Routing | undefined;

  constructor(
    private readonly request: CallRequest,
    /** The services on the bus as they were when the request arrived: the call is routed by them. */
    private readonly directory: ServiceDirectory,
    timeoutMs: number,
    /** Who made the call when the request does not say (worked out from its identity): given apart, so that the request is not copied per call. */
    caller?: Caller | undefined,
  ) {
    this.method = request.method;
    this.params = request.params;
    this.version = requestedVersion(request.params);
    this.timeoutMs = timeoutMs;
    this.transport = request.transport ?? "";
    this.requestId = request.requestId;
    this.identity = request.identity ?? ANONYMOUS;
    this.access = request.access ?? ALLOW_ALL;
    this.caller = request.caller ?? caller;
    this.cancellation = request.signal ?? new CallCancellation();
    this.traceHeaders = request.traceHeaders;
    this.sessionId = request.sessionId;
    const tie = this.stateless || request.requestId === undefined ? undefined : request.upstream?.tie(request.requestId);
    this.session = tie?.session;
    this.correlationId = request.correlationId ?? tie?.correlationId;
    this.onNotification = request.onNotification;
    this.onSent = request.onSent;
  }

  /** `cancellation` as an AbortSignal (made on first use when it is a CallCancellation), for what takes one. */
  get signal(): AbortSignal {
    const { cancellation } = this;
    return cancellation instanceof CallCancellation ? cancellation.signal : (cancellation as AbortSignal);
  }

  /** A request of MCP 2026-07-28: it names its revision and needs no session. */
  get stateless(): boolean {
    return this.version !== undefined;
  }

  /** Where the call goes and how; throws what routing found wrong (an unknown tool, an ambiguous URI ...). */
  get route(): CallRoute {
    const { route } = this.routed();
    if (!route.ok) throw route.error;
    return route.value;
  }

  /** The item the call uses, by the names an access policy matches; undefined when it uses none. */
  get policyTarget(): PolicyTarget | undefined {
    return this.routed().target;
  }

  /** How the call travels: through the durable work queue, or directly (unknown targets too). */
  get delivery(): "durable" | "direct" {
    const { route } = this.routed();
    return route.ok && route.value.lane ? "durable" : "direct";
  }

  /**
   * The same caller's request of another method or params, with this call's deadline (what a task
   * method checks or sends on behalf of its request); it is not tied to upstream sessions.
   */
  derive(method: string, params: Record<string, unknown>): Call {
    return new Call({ ...this.request, method, params, upstream: undefined }, this.directory, this.timeoutMs, this.caller);
  }

  private routed(): Routing {
    this.routing ??= routeOf(this.directory, this.method, this.params);
    return this.routing;
  }
}

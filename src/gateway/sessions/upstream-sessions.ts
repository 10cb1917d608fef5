/**
 * A client session's upstream sessions (PROTOCOL.md §16), one per service, each held by one executor
 * replica: the session's pins, the client's capabilities and log level declared to them, its calls on
 * the bus (server-to-client requests name them), the upstream resources it subscribed to, and what the
 * relay brings for it (server requests, log messages, resource updates).
 */
import { randomUUID } from "node:crypto";
import { CallError, ErrorCode, SESSION_CLOSE_METHOD, SESSION_NOTIFICATIONS, type ClientSession, type JsonRpcId, type JsonRpcMessage } from "../../protocol/index.js";
import type { CallSession } from "../calls/call.js";
import type { Dispatcher } from "../calls/dispatcher.js";
import { SessionPins } from "../calls/session-pins.js";
import type { RoutedRequest } from "../catalog/routing.js";
import { gatewayOfRequestId, ServerRequests, type Answer } from "./server-requests.js";
import type { SessionRelay } from "./session-relay.js";

export interface UpstreamSessionsOptions {
  /** The client session's id on the bus. */
  busSessionId: string;
  /** This gateway's id (declared to the upstream sessions: the relay subject is named after it). */
  gatewayId: string;
  /**
   * The gateway that opened the client session, when gateways share it (PROTOCOL.md §19): the
   * executors key its upstream sessions by it, so that every gateway's calls reach the same ones.
   */
  origin?: string | undefined;
  /** A call reached a replica that holds none of this session's upstream sessions yet (the pins changed). */
  onPinReached?: (() => void) | undefined;
  relay: SessionRelay;
  dispatcher: Dispatcher;
  /** Sends a message to the client (on the stream of request `related`, when given; `sealed`: it came sealed, §16). */
  send: (message: JsonRpcMessage, related?: JsonRpcId, sealed?: boolean) => void;
  /** Told of each `notifications/resources/updated` an upstream session sends (the cache drops the resource). */
  resourceUpdated?: ((service: string, uri: string) => void) | undefined;
  /** The client cancelled request `id` through another gateway (PROTOCOL.md §19.4). */
  cancelled?: ((id: JsonRpcId, reason: string | undefined) => void) | undefined;
}

export class UpstreamSessions {
  /** The replica holding this session's upstream session, per service. */
  private readonly pins: SessionPins;
  /** Client request ids of the calls on the bus, by correlation id: server-to-client requests name the call. */
  private readonly callIds = new Map<string, JsonRpcId>();
  /** Upstream resources this client subscribed to (service and upstream URI), with the URI the client knows. */
  private readonly subscriptions = new Map<string, string>();
  private readonly serverRequests: ServerRequests;
  private readonly unregister: () => void;
  /** What the calls of the session carry (the same object until the capabilities or the log level change). */
  private callSession: CallSession | undefined;
  /** The client's capabilities from initialize. */
  private capabilities: Record<string, unknown> = {};
  private logLevel: string | undefined;

  constructor(private readonly options: UpstreamSessionsOptions) {
    this.pins = new SessionPins(options.onPinReached);
    this.serverRequests = new ServerRequests(options.send, options.gatewayId);
    this.unregister = options.relay.register(options.busSessionId, {
      holdsSession: (service, instance, correlationId) => {
        if (correlationId !== undefined && this.callIds.has(correlationId)) this.pins.reached(service, instance);
        return this.pins.get(service) === instance;
      },
      serverRequest: (method, params, correlationId, timeoutMs, sealedTo) => {
        const related = correlationId === undefined ? undefined : this.callIds.get(correlationId);
        return this.serverRequests.send(method, params, related, timeoutMs, sealedTo);
      },
      sessionNotification: (service, method, params, sealed) => this.onNotification(service, method, params, sealed),
      settle: (id, answer) => this.serverRequests.settle(id, answer),
      cancel: (id, reason) => this.options.cancelled?.(id, reason),
    });
  }

  /** The replicas holding the session's upstream sessions, by service (for the session record). */
  get reachedPins(): Record<string, string> {
    return this.pins.reachedPins();
  }

  /** Pins the replicas another gateway's calls of the session reached (their upstream sessions serve this gateway's calls too). */
  adoptPins(reached: Record<string, string>): void {
    this.pins.adopt(reached);
  }

  /** Passes the client's cancellation of a request this gateway does not hold on to the gateway that does. */
  forwardCancellation(id: JsonRpcId, reason: string | undefined): void {
    this.options.relay.forwardCancellation(this.options.busSessionId, id, reason);
  }

  /** The client's capabilities (from initialize), declared with every call from now on. */
  declareCapabilities(capabilities: unknown): void {
    if (typeof capabilities === "object" && capabilities !== null && !Array.isArray(capabilities)) this.capabilities = capabilities as Record<string, unknown>;
    this.callSession = undefined;
  }

  /** The client's capabilities and log level, as declared to the upstream sessions. */
  get declared(): { capabilities: Record<string, unknown>; logLevel: string | undefined } {
    return { capabilities: this.capabilities, logLevel: this.logLevel };
  }

  /** Applied to the upstream sessions with the session's next call to each (logging/setLevel). */
  setLogLevel(level: string): void {
    this.logLevel = level;
    this.callSession = undefined;
  }

  /** Ties a call of the client's request `requestId` to the upstream sessions: what its Call carries. */
  tie(requestId: JsonRpcId): { correlationId: string; session: CallSession } {
    const correlationId = randomUUID();
    this.callIds.set(correlationId, requestId);
    this.callSession ??= { clientSession: this.clientSession(), pins: this.pins };
    return { correlationId, session: this.callSession };
  }

  /** The call was answered: server-to-client requests can no longer name it. */
  untie(correlationId: string): void {
    this.callIds.delete(correlationId);
  }

  /**
   * Settles the server-to-client request a client response answers; one that another gateway sent
   * (the client answered through this one) goes to that gateway over the bus. False when it answers
   * no request of any gateway.
   */
  settle(id: JsonRpcId, answer: Answer): boolean {
    if (this.serverRequests.settle(id, answer)) return true;
    const gateway = gatewayOfRequestId(id);
    if (gateway === undefined || gateway === this.options.gatewayId) return false;
    this.options.relay.forwardAnswer(gateway, this.options.busSessionId, id, answer);
    return true;
  }

  /** Remembers (or forgets) the URI the client knows an upstream resource by, for its update notifications. */
  subscribed(route: RoutedRequest, clientUri: string, subscribing: boolean): void {
    const key = `${route.service}\n${String(route.params.uri)}`;
    if (subscribing) this.subscriptions.set(key, clientUri);
    else this.subscriptions.delete(key);
  }

  /** Passes a client notification (e.g. roots/list_changed) on to the upstream sessions (best effort). */
  relay(method: string): void {
    this.options.dispatcher.toSessionReplicas(this.options.busSessionId, this.clientSession(), this.pins, method);
  }

  /**
   * The client session ended here: its requests to the client fail, and with `endUpstream` the
   * replicas are told to close its upstream sessions (best effort); without, they stay for the
   * other gateways serving the session, until the executors' idle timeout.
   */
  close(endUpstream = true): void {
    this.serverRequests.closeAll(new CallError(ErrorCode.SessionLost, "the MCP client session closed"));
    this.unregister();
    if (endUpstream) this.options.dispatcher.toSessionReplicas(this.options.busSessionId, this.clientSession(), this.pins, SESSION_CLOSE_METHOD);
    this.pins.clear();
  }

  private clientSession(): ClientSession {
    const { gatewayId, origin } = this.options;
    return {
      gateway: gatewayId,
      ...(origin !== undefined && origin !== gatewayId ? { origin } : {}),
      capabilities: this.capabilities,
      ...(this.logLevel ? { log_level: this.logLevel } : {}),
    };
  }

  /** Logging, elicitation completions and resource updates of an upstream session, for this client; nothing else. */
  private onNotification(service: string, method: string, params: Record<string, unknown>, sealed: boolean): void {
    if (!SESSION_NOTIFICATIONS.has(method)) return;
    if (method === "notifications/resources/updated") {
      if (typeof params.uri === "string") this.options.resourceUpdated?.(service, params.uri);
      const uri = this.subscriptions.get(`${service}\n${String(params.uri)}`);
      if (uri !== undefined) this.options.send({ jsonrpc: "2.0", method, params: { ...params, uri } }, undefined, sealed);
      return;
    }
    this.options.send({ jsonrpc: "2.0", method, params }, undefined, sealed);
  }
}

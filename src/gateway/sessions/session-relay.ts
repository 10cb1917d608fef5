/**
 * The gateway instance's end of per-client upstream sessions (PROTOCOL.md §16): takes what executors
 * send on `dmcp.v1.gw.<gateway>.session` (the upstream's server-to-client requests, and its log
 * messages and resource updates) and hands it to the MCP client session it belongs to; answers the
 * requests with the client's result or error.
 */
import { dropReason, type Bus, type BusMessage, type BusSubscription } from "../../bus/index.js";
import { asDmcpError, CallError, createEnvelope, ErrorCode, errorPayload, subjects, type Envelope, type JsonRpcId } from "../../protocol/index.js";
import { jsonObjectOf, type Logger } from "../../util/index.js";
import type { Answer } from "./server-requests.js";

/** What a client session offers to its upstream sessions. */
export interface SessionPeer {
  /**
   * Whether `instance` holds this session's upstream session for `service`: the pinned one, or, before
   * the pin is known (the upstream asked before the call's receipt came), the sender of a request
   * about a call of this session that is running (it is pinned then).
   */
  holdsSession(service: string, instance: string, correlationId: string | undefined): boolean;
  /** Sends a request to the MCP client (with the related call of `correlationId`) and resolves with its result. */
  serverRequest(method: string, params: Record<string, unknown> | undefined, correlationId: string | undefined, timeoutMs: number): Promise<Record<string, unknown>>;
  /** A notification of the session (logging, resources/updated) from a service's upstream session. */
  sessionNotification(service: string, method: string, params: Record<string, unknown>): void;
  /** Settles a server-to-client request of this gateway with the client's answer; false when it is not waiting. */
  settle(id: JsonRpcId, answer: Answer): boolean;
  /** The client cancelled its request `id` through another gateway: cancels the call if this gateway holds it. */
  cancel(id: JsonRpcId, reason: string | undefined): void;
}

const DEFAULT_SERVER_REQUEST_TIMEOUT_MS = 10 * 60_000;

export class SessionRelay {
  private readonly peers = new Map<string, SessionPeer>();
  private subscription: BusSubscription | undefined;
  private answers: BusSubscription | undefined;
  private cancellations: BusSubscription | undefined;

  constructor(private readonly options: { bus: Bus; id: string; logger: Logger }) {}

  get subject(): string {
    return subjects.gatewaySession(this.options.id);
  }

  start(): void {
    this.subscription = this.options.bus.subscribe(this.subject, (msg) => void this.onMessage(msg), {
      onError: (err) => this.options.logger.error({ err, subject: this.subject }, "subscription error"),
    });
    const answers = subjects.gatewayAnswer(this.options.id);
    this.answers = this.options.bus.subscribe(answers, (msg) => this.onAnswer(msg.data), {
      onError: (err) => this.options.logger.error({ err, subject: answers }, "subscription error"),
    });
    const cancellations = subjects.gatewayCancel;
    this.cancellations = this.options.bus.subscribe(cancellations, (msg) => this.onCancellation(msg.data), {
      onError: (err) => this.options.logger.error({ err, subject: cancellations }, "subscription error"),
    });
  }

  stop(): void {
    this.subscription?.unsubscribe();
    this.subscription = undefined;
    this.answers?.unsubscribe();
    this.answers = undefined;
    this.cancellations?.unsubscribe();
    this.cancellations = undefined;
  }

  /**
   * Passes a client's cancellation of a request this gateway does not hold on to every gateway: the
   * one holding the session and the call cancels it (PROTOCOL.md §19.4).
   */
  forwardCancellation(sessionId: string, id: JsonRpcId, reason: string | undefined): void {
    this.options.logger.debug({ rpc: id }, "passing a client's cancellation on to the gateways");
    const message = { gateway: this.options.id, session_id: sessionId, request_id: id, ...(reason === undefined ? {} : { reason }) };
    try {
      this.options.bus.publish(subjects.gatewayCancel, new TextEncoder().encode(JSON.stringify(message)));
    } catch (err) {
      this.options.logger.debug({ err }, "could not pass a client's cancellation on to the gateways");
    }
  }

  /** A client's cancellation that reached another gateway: to the session it names, if this gateway holds it. */
  private onCancellation(data: Uint8Array): void {
    const cancellation = parseCancellation(data);
    if (!cancellation) {
      this.options.bus.dropped("session", "invalid_message");
      return;
    }
    if (cancellation.gateway === this.options.id) return;
    this.peers.get(cancellation.sessionId)?.cancel(cancellation.id, cancellation.reason);
  }

  /** Sends a client's answer to a server-to-client request of gateway `gateway` there (PROTOCOL.md §19.2). */
  forwardAnswer(gateway: string, sessionId: string, id: JsonRpcId, answer: Answer): void {
    this.options.logger.debug({ gateway, rpc: id }, "passing a client's answer on to the gateway that asked");
    try {
      this.options.bus.publish(subjects.gatewayAnswer(gateway), new TextEncoder().encode(JSON.stringify({ session_id: sessionId, id, ...answer })));
    } catch (err) {
      this.options.logger.debug({ err, gateway }, "could not pass a client's answer on to the gateway that asked");
    }
  }

  /** A client's answer that reached another gateway: to the request of this gateway it answers. */
  private onAnswer(data: Uint8Array): void {
    const answer = parseAnswer(data);
    const peer = answer ? this.peers.get(answer.sessionId) : undefined;
    if (!answer || !peer?.settle(answer.id, answer.answer)) this.options.bus.dropped("session", answer ? "unknown_request" : "invalid_message");
  }

  /** Registers a client session under its bus session id; the returned function unregisters it. */
  register(sessionId: string, peer: SessionPeer): () => void {
    this.peers.set(sessionId, peer);
    return () => {
      if (this.peers.get(sessionId) === peer) this.peers.delete(sessionId);
    };
  }

  private async onMessage(msg: BusMessage): Promise<void> {
    const { bus, id } = this.options;
    // The sender must be trusted for the service it names (signed buses): read the name before verifying.
    const decoded = bus.codec.decode(msg.data, { receiver: id, speaksFor: claimedService(msg.data) });
    if (!decoded.ok) {
      bus.dropped("session", dropReason(decoded));
      if (msg.reply) this.answer(msg, createEnvelope("error_notification", errorPayload(decoded.error), { sender: id }));
      return;
    }
    const envelope = decoded.envelope;
    const peer = envelope.session_id ? this.peers.get(envelope.session_id) : undefined;
    const service = serviceOf(envelope);
    // Only the replica that holds the session's upstream session may speak to its client.
    const fromPinned = peer !== undefined && service !== undefined && peer.holdsSession(service, envelope.sender_id, envelope.correlation_id);
    if (envelope.type === "context_update") {
      if (fromPinned && envelope.payload.method) peer.sessionNotification(service, envelope.payload.method, envelope.payload.params ?? {});
      else bus.dropped("session", "unknown_session");
      return;
    }
    if (envelope.type !== "prompt_request" || !msg.reply) return;
    const reply = { sender: id, correlationId: envelope.correlation_id ?? envelope.id, sessionId: envelope.session_id };
    if (!fromPinned) {
      const error = new CallError(ErrorCode.SessionLost, `no client session ${envelope.session_id ?? ""} pinned to ${envelope.sender_id} on gateway ${id}`);
      this.answer(msg, createEnvelope("error_notification", errorPayload(error), reply));
      return;
    }
    const timeoutMs = envelope.deadline ? Math.max(1, Date.parse(envelope.deadline) - Date.now()) : DEFAULT_SERVER_REQUEST_TIMEOUT_MS;
    try {
      const result = await peer.serverRequest(envelope.payload.method, envelope.payload.params, envelope.correlation_id, timeoutMs);
      this.answer(msg, createEnvelope("prompt_response", { result }, reply));
    } catch (err) {
      const error = asDmcpError(err);
      this.answer(msg, createEnvelope("error_notification", errorPayload(error), reply));
    }
  }

  private answer(msg: BusMessage, envelope: Envelope): void {
    try {
      msg.respond(envelope);
    } catch (err) {
      this.options.logger.debug({ err }, "could not answer a server-to-client request");
    }
  }
}

/** A forwarded cancellation: `{ gateway, session_id, request_id, reason? }`. */
function parseCancellation(data: Uint8Array): { gateway: string; sessionId: string; id: JsonRpcId; reason: string | undefined } | undefined {
  const { gateway, session_id: sessionId, request_id: id, reason } = jsonObjectOf(data) ?? {};
  if (typeof gateway !== "string" || typeof sessionId !== "string" || (typeof id !== "string" && typeof id !== "number")) return undefined;
  if (reason !== undefined && typeof reason !== "string") return undefined;
  return { gateway, sessionId, id, reason };
}

/** A forwarded answer: `{ session_id, id, result }` or `{ session_id, id, error: { code, message, data? } }`. */
function parseAnswer(data: Uint8Array): { sessionId: string; id: JsonRpcId; answer: Answer } | undefined {
  const raw = jsonObjectOf(data) as { session_id?: unknown; id?: unknown; result?: unknown; error?: { code?: unknown; message?: unknown; data?: unknown } } | undefined;
  if (typeof raw?.session_id !== "string" || (typeof raw.id !== "string" && typeof raw.id !== "number")) return undefined;
  const { session_id: sessionId, id } = raw;
  if (typeof raw.result === "object" && raw.result !== null && !Array.isArray(raw.result)) return { sessionId, id, answer: { result: raw.result as Record<string, unknown> } };
  const error = raw.error;
  if (typeof error?.code === "number" && typeof error.message === "string")
    return { sessionId, id, answer: { error: { code: error.code, message: error.message, ...(error.data === undefined ? {} : { data: error.data }) } } };
  return undefined;
}

function serviceOf(envelope: Envelope): string | undefined {
  if (envelope.type === "prompt_request") return envelope.payload.service;
  if (envelope.type === "context_update") {
    const data = envelope.payload.data as { service?: unknown } | undefined;
    return typeof data?.service === "string" ? data.service : undefined;
  }
  return undefined;
}

/** The service a message says it comes from, before it is verified. */
function claimedService(data: Uint8Array): string | undefined {
  try {
    const raw = JSON.parse(new TextDecoder().decode(data)) as { payload?: { service?: unknown; data?: { service?: unknown } } };
    const service = raw.payload?.service ?? raw.payload?.data?.service;
    return typeof service === "string" ? service : undefined;
  } catch {
    return undefined;
  }
}

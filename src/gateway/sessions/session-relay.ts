/**
 * The gateway instance's end of per-client upstream sessions (PROTOCOL.md §16): takes what executors
 * send on `dmcp.v1.gw.<gateway>.session` (the upstream's server-to-client requests, and its log
 * messages and resource updates) and hands it to the MCP client session it belongs to; answers the
 * requests with the client's result or error, sealed back when the request came sealed (§14.3).
 */
import { dropReason, type Bus, type BusMessage, type BusSubscription, type Seal } from "../../bus/index.js";
import {
  asDmcpError,
  CallError,
  createEnvelope,
  type DmcpError,
  ErrorCode,
  errorPayload,
  SecurityError,
  subjects,
  toJsonRpcError,
  type Envelope,
  type JsonRpcId,
} from "../../protocol/index.js";
import { isJsonObject, jsonObjectOf, type Logger } from "../../util/index.js";
import { sealedToOfRequestId, type Answer } from "./server-requests.js";

/** What a client session offers to its upstream sessions. */
export interface SessionPeer {
  /**
   * Whether `instance` holds this session's upstream session for `service`: the pinned one, or, before
   * the pin is known (the upstream asked before the call's receipt came), the sender of a request
   * about a call of this session that is running (it is pinned then).
   */
  holdsSession(service: string, instance: string, correlationId: string | undefined): boolean;
  /**
   * Sends a request to the MCP client (with the related call of `correlationId`) and resolves with its
   * result; `sealedTo`: the caller key the request came sealed to.
   */
  serverRequest(
    method: string,
    params: Record<string, unknown> | undefined,
    correlationId: string | undefined,
    timeoutMs: number,
    sealedTo: string | undefined,
  ): Promise<Record<string, unknown>>;
  /** A notification of the session (logging, resources/updated) from a service's upstream session; `sealed`: it came sealed. */
  sessionNotification(service: string, method: string, params: Record<string, unknown>, sealed: boolean): void;
  /** Settles a server-to-client request of this gateway with the client's answer (or fails it); false when it is not waiting. */
  settle(id: JsonRpcId, answer: Answer | DmcpError): boolean;
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

  /**
   * Sends a client's answer to a server-to-client request of gateway `gateway` there (PROTOCOL.md §19.2):
   * sealed to the caller key the request's id names, when it names one.
   */
  forwardAnswer(gateway: string, sessionId: string, id: JsonRpcId, answer: Answer): void {
    this.options.logger.debug({ gateway, rpc: id }, "passing a client's answer on to the gateway that asked");
    try {
      const sealedTo = sealedToOfRequestId(id);
      const body = sealedTo === undefined ? answer : this.sealAnswer(answer, sealedTo);
      this.options.bus.publish(subjects.gatewayAnswer(gateway), new TextEncoder().encode(JSON.stringify({ session_id: sessionId, id, ...body })));
    } catch (err) {
      this.options.logger.debug({ err, gateway }, "could not pass a client's answer on to the gateway that asked");
    }
  }

  /** The answer to a sealed request, sealed to `to`; a gateway that cannot seal passes on only that it could not. */
  private sealAnswer(answer: Answer, to: string): Answer | { sealed: unknown } {
    const { codec } = this.options.bus;
    if (codec.sealFromSelf) return { sealed: codec.sealFromSelf(answer, to) };
    const message = `the client answered a sealed request through gateway ${this.options.id}, which runs without message security and cannot seal the answer to ${to}: it is not passed on in clear`;
    return { error: toJsonRpcError(new SecurityError(ErrorCode.DecryptionFailed, message)) };
  }

  /** A client's answer that reached another gateway: to the request of this gateway it answers. */
  private onAnswer(data: Uint8Array): void {
    const answer = parseAnswer(data);
    const peer = answer ? this.peers.get(answer.sessionId) : undefined;
    if (!answer || !peer?.settle(answer.id, this.opened(answer.answer))) this.options.bus.dropped("session", answer ? "unknown_request" : "invalid_message");
  }

  /** A sealed answer opened (an answer this gateway cannot open fails its request: it never waits on). */
  private opened(answer: Answer | { sealed: unknown }): Answer | DmcpError {
    if (!("sealed" in answer)) return answer;
    const fail = (why: string) => new SecurityError(ErrorCode.DecryptionFailed, `the client's answer came through another gateway sealed, and ${why}`);
    const { codec } = this.options.bus;
    if (!codec.openToSelf) return fail("this gateway runs without message security");
    try {
      return answerOf(codec.openToSelf(answer.sealed)) ?? fail("its box holds no result or error");
    } catch (err) {
      return fail((err as Error).message);
    }
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
    // The sender must be trusted for the service it names (signed buses), read once the message is open.
    const decoded = bus.codec.decode(msg.data, { receiver: id, speaksFor: serviceOf });
    if (!decoded.ok) {
      bus.dropped("session", dropReason(decoded));
      if (msg.reply) this.answer(msg, createEnvelope("error_notification", errorPayload(decoded.error), { sender: id }), undefined);
      return;
    }
    const envelope = decoded.envelope;
    // A sealed request is answered sealed, from the key it was sealed to, to the key it came from.
    const seal: Seal | undefined = decoded.sealed ? { from: decoded.sealed.to, to: decoded.sealed.from } : undefined;
    const peer = envelope.session_id ? this.peers.get(envelope.session_id) : undefined;
    const service = serviceOf(envelope);
    // Only the replica that holds the session's upstream session may speak to its client.
    const fromPinned = peer !== undefined && service !== undefined && peer.holdsSession(service, envelope.sender_id, envelope.correlation_id);
    if (envelope.type === "context_update") {
      if (fromPinned && envelope.payload.method) peer.sessionNotification(service, envelope.payload.method, envelope.payload.params ?? {}, seal !== undefined);
      else bus.dropped("session", "unknown_session");
      return;
    }
    if (envelope.type !== "prompt_request" || !msg.reply) return;
    const reply = { sender: id, correlationId: envelope.correlation_id ?? envelope.id, sessionId: envelope.session_id };
    if (!fromPinned) {
      const error = new CallError(ErrorCode.SessionLost, `no client session ${envelope.session_id ?? ""} pinned to ${envelope.sender_id} on gateway ${id}`);
      this.answer(msg, createEnvelope("error_notification", errorPayload(error), reply), seal);
      return;
    }
    const timeoutMs = envelope.deadline ? Math.max(1, Date.parse(envelope.deadline) - Date.now()) : DEFAULT_SERVER_REQUEST_TIMEOUT_MS;
    try {
      const result = await peer.serverRequest(envelope.payload.method, envelope.payload.params, envelope.correlation_id, timeoutMs, decoded.sealed?.to);
      this.answer(msg, createEnvelope("prompt_response", { result }, reply), seal);
    } catch (err) {
      const error = asDmcpError(err);
      this.answer(msg, createEnvelope("error_notification", errorPayload(error), reply), seal);
    }
  }

  private answer(msg: BusMessage, envelope: Envelope, seal: Seal | undefined): void {
    try {
      msg.respond(this.options.bus.codec.encode(envelope, seal));
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

/**
 * A forwarded answer: `{ session_id, id, result }`, `{ session_id, id, error: { code, message, data? } }`,
 * or `{ session_id, id, sealed }` whose box holds `{ result }` or `{ error }`.
 */
function parseAnswer(data: Uint8Array): { sessionId: string; id: JsonRpcId; answer: Answer | { sealed: unknown } } | undefined {
  const raw = jsonObjectOf(data);
  const { session_id: sessionId, id } = raw ?? {};
  if (!raw || typeof sessionId !== "string" || (typeof id !== "string" && typeof id !== "number")) return undefined;
  if (typeof raw.sealed === "object" && raw.sealed !== null) return { sessionId, id, answer: { sealed: raw.sealed } };
  const answer = answerOf(raw);
  return answer && { sessionId, id, answer };
}

/** `{ result }` or `{ error: { code, message, data? } }`, from a forwarded answer or what its box held. */
function answerOf(raw: Record<string, unknown>): Answer | undefined {
  if (isJsonObject(raw.result)) return { result: raw.result };
  const error = raw.error as { code?: unknown; message?: unknown; data?: unknown } | undefined;
  if (typeof error?.code === "number" && typeof error.message === "string")
    return { error: { code: error.code, message: error.message, ...(error.data === undefined ? {} : { data: error.data }) } };
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

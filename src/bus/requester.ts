/**
 * Request/response correlation over NATS: the requester sends a `prompt_request` and waits for the
 * `prompt_response` or `error_notification` with the same correlation id, within the call's deadline.
 *
 * All replies arrive on one wildcard inbox subscription per requester (one SUB, not one per call). The
 * executor of a call sent to the queue group first sends an "accepted" receipt naming its instance (a
 * call sent to one instance's subject knows it from the start); if that instance then leaves the
 * registry for missed heartbeats, or (for a requester given the registry) stops listening on its own
 * subject while it is listed (instance-probe.ts), the call fails with EXECUTOR_LOST instead of waiting
 * out its deadline.
 *
 * A call given a `route` (durable delivery, durable/durable-route.ts) is queued instead of published: its
 * reply subject travels in the envelope's `reply_to`, and it survives the loss of the executor that
 * holds it and of the bus connection (its answer is then read from the result store).
 */
import { randomUUID } from "node:crypto";
import { createInbox, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import {
  ACCEPTED_METHOD,
  BusError,
  CallError,
  CANCEL_METHOD,
  cancelReasonOf,
  createEnvelope,
  DmcpError,
  ErrorCode,
  errorFromPayload,
  RequestError,
  RESULTS_BUCKET,
  salvageIds,
  SecurityError,
  subjects,
  type Caller,
  type CancelSignal,
  type ClientSession,
  type PromptRequest,
} from "../protocol/index.js";
import type { Context } from "@opentelemetry/api";
import type { StorePosition } from "./codec.js";
import { natsConnectionOf, type Bus, type PermissionDenial } from "./connection.js";
import { natsHeadersFor } from "./trace-headers.js";
import { InstanceProbe, type BusyInstance } from "./instance-probe.js";
import { DeadlineSweep } from "../util/index.js";

/** How often, and how many times, a gateway asks the instances of a service for a direct call's answer before it gives up. */
const LOOKUP_INTERVAL_MS = 1000;
const LOOKUP_ATTEMPTS = 3;

/**
 * What the requester needs of a call's cancellation: an AbortSignal has it, and so does a lighter
 * object that makes no EventTarget per call (call-cancellation.ts).
 */
export interface CallSignal extends CancelSignal {
  removeEventListener(type: "abort", listener: () => void): void;
}

export interface CallOptions {
  /** Milliseconds until nobody waits for the answer. */
  timeoutMs: number;
  sessionId?: string | undefined;
  /** Who made the call at the MCP edge (travels in the envelope to the executor). */
  caller?: Caller | undefined;
  /** Aborting rejects the call at once with CANCELLED. */
  signal?: CallSignal | undefined;
  /** Send to one executor instance instead of the service's queue group. */
  instance?: string | undefined;
  /**
   * Ask the executor for its acceptance receipt (PROTOCOL.md §5.2). By default only a call that the
   * queue group hands to some instance asks: a call sent to one instance knows its holder already.
   */
  receipt?: boolean | undefined;
  /** The trace this call belongs to; it travels in the request's NATS headers. */
  trace?: Context | undefined;
  /** Receives the MCP notifications that belong to the call (progress, logging), in order, before the answer. */
  onNotification?: ((method: string, params: Record<string, unknown>) => void) | undefined;
  /** Queue the request this way (durable delivery) instead of publishing it to the service. */
  route?: RequestRoute | undefined;
  /** The MCP client session the call belongs to: the executor serves it in that session's upstream session. */
  clientSession?: ClientSession | undefined;
  /** The request's correlation id (a fresh UUID by default), so the requester can recognise what refers to the call. */
  correlationId?: string | undefined;
  /** Told which executor instance took the call (from its receipt or its answer), for session pinning. */
  onInstance?: ((instance: string) => void) | undefined;
}

/** Another way to a service than a core NATS publish: the durable work queue (durable/durable-route.ts). */
export interface RequestRoute {
  /** Queues the encoded request; rejects (with a DmcpError) when it cannot be queued before its deadline. */
  send(request: PromptRequest, data: Uint8Array, headers: MsgHdrs | undefined): Promise<void>;
  /** The requester gave the call up (cancelled): keep a queued copy from running. */
  withdraw(request: PromptRequest): void;
}

interface PendingCall {
  correlationId: string;
  service: string;
  /** The subject the request went to. */
  subject: string;
  resolve: (result: Record<string, unknown>) => void;
  reject: (error: DmcpError) => void;
  /** When nobody waits for the answer any more (epoch ms), and the wait it came from, for the error. */
  deadline: number;
  timeoutMs: number;
  /** When it was sent (epoch ms): the probe asks after the instances of calls that waited a while. */
  sentAt: number;
  /** The executor instance that accepted the call, once its receipt arrived. */
  instance?: string | undefined;
  onAbort?: () => void;
  onNotification?: ((method: string, params: Record<string, unknown>) => void) | undefined;
  onInstance?: ((instance: string) => void) | undefined;
  signal?: CallSignal | undefined;
  /** Set for durable calls. */
  route?: RequestRoute | undefined;
  /** A call another gateway sent (resume()): an answer sealed to that gateway's key fails it at once. */
  resumed?: boolean;
}

/** Calls services on the bus. One per process; `sender` is this process's id. */
export class Requester {
  private readonly nc: NatsConnection;
  private readonly inbox: string;
  private readonly pending = new Map<string, PendingCall>();
  private subscription: Subscription | undefined;
  private sequence = 0;
  private readonly probe: InstanceProbe | undefined;
  /** One timer for all the calls' deadlines, not one per call. */
  private readonly deadlines = new DeadlineSweep(this.pending, (token, call) =>
    this.settle(token)?.reject(
      new CallError(ErrorCode.DeadlineExceeded, `"${call.service}" did not answer within ${call.timeoutMs} ms`, { data: { service: call.service, timeout_ms: call.timeoutMs } }),
    ),
  );

  /** With `registry`, the instances holding direct calls are probed, so that a dead one is noticed within a second. */
  constructor(
    private readonly bus: Bus,
    private readonly sender: string,
    registry?: { listed(service: string, instance: string): boolean },
  ) {
    this.nc = natsConnectionOf(bus);
    this.inbox = createInbox(bus.inboxPrefix);
    if (registry) {
      this.probe = new InstanceProbe({ bus, sender, busy: () => this.busyInstances(), listed: registry.listed, lost: (instance) => this.instanceLost(instance) });
    }
    // Replies routed to a server we lost are gone: fail those calls now rather than at their deadline.
    // (Durable calls stay: their requests are stored, and their answers too.)
    bus.onDisconnect(() => this.failAll(new BusError(ErrorCode.BusUnavailable, "the bus connection was lost during the call"), (call) => !call.route));
    // A refused request is dropped by the server in silence: fail its call now rather than at its deadline.
    bus.onPermissionDenied((denial) => this.onDenied(denial));
  }

  /** Sends one MCP request to a service and returns the MCP result object, or throws a DmcpError. */
  call(service: string, method: string, params: Record<string, unknown> | undefined, options: CallOptions): Promise<Record<string, unknown>> {
    const nc = this.nc;
    if (nc.isClosed() || nc.isDraining()) return Promise.reject(new BusError(ErrorCode.BusUnavailable, "the bus connection is closed"));
    // While reconnecting, nats.js would buffer the request; a clear error now beats a wait to the deadline.
    // (A durable request is queued once the bus is back, within its deadline.)
    if (!options.route && !this.bus.isConnected()) return Promise.reject(new BusError(ErrorCode.BusUnavailable, "the bus is disconnected; reconnecting"));
    if (options.signal?.aborted) return Promise.reject(abortError(options.signal));
    const id = options.correlationId ?? randomUUID();
    const request = createEnvelope("prompt_request", params === undefined ? { service, method } : { service, method, params }, {
      id,
      correlationId: id,
      sender: this.sender,
      sessionId: options.sessionId,
      deadline: Date.now() + options.timeoutMs,
      caller: options.caller,
    });
    if (options.receipt ?? !options.instance) request.receipt = true;
    if (options.clientSession) request.client_session = options.clientSession;
    const token = (++this.sequence).toString(36);
    if (options.route) request.reply_to = `${this.inbox}.${token}`;
    const data = this.bus.codec.encode(request, this.bus.codec.requestSeal(service));
    if (data.byteLength > this.bus.maxPayload) {
      return Promise.reject(new BusError(ErrorCode.PayloadTooLarge, `request of ${data.byteLength} bytes exceeds the bus limit of ${this.bus.maxPayload} bytes`));
    }
    this.subscribe();
    const subject = options.instance ? subjects.instanceRequest(service, options.instance) : subjects.request(service);
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const call = this.pend(token, { correlationId: request.id, service, subject, resolve, reject, options }, () => {
        this.publishCancel(service, id, cancelReasonOf(options.signal!, "cancelled by the caller"));
        options.route?.withdraw(request);
      });
      if (call.instance && !call.route) this.probe?.watch();
      const headers = options.trace ? natsHeadersFor(options.trace) : undefined;
      if (options.route) {
        options.route.send(request, data, headers).catch((error: unknown) => this.settle(token)?.reject(asDmcpError(error)));
        return;
      }
      try {
        nc.publish(subject, data, headers ? { reply: `${this.inbox}.${token}`, headers } : { reply: `${this.inbox}.${token}` });
      } catch (cause) {
        this.settle(token)?.reject(new BusError(ErrorCode.BusUnavailable, `could not publish the request: ${(cause as Error).message}`, { cause }));
      }
    });
  }

  /**
   * Waits for the answer of a call that another gateway sent and can no longer pass on (it died with
   * the call in flight, PROTOCOL.md §19.4). A durable call's answer is read from the result store by
   * `route`'s owner (durable-route.ts `readStored`); a direct call's is asked of the service's
   * instances, on `dmcp.v1.recover.<service>`: the one that ran it answers, at once or when it is
   * done. Nobody answering means no instance has it (it ended too long ago, or its instance died):
   * EXECUTOR_LOST. Aborting `signal` only stops the wait: the call is not cancelled.
   */
  resume(
    service: string,
    correlationId: string,
    options: { timeoutMs: number; signal?: AbortSignal | undefined; route?: RequestRoute | undefined },
  ): Promise<Record<string, unknown>> {
    if (this.nc.isClosed()) return Promise.reject(new BusError(ErrorCode.BusUnavailable, "the bus connection is closed"));
    const token = (++this.sequence).toString(36);
    this.subscribe();
    const subject = subjects.recover(service);
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      this.pend(token, { correlationId, service, subject, resolve, reject, options }).resumed = true;
      if (!options.route) this.lookUp(token, subject, correlationId, 1);
    });
  }

  /** Asks the service's instances for a direct call's answer, again after a pause until one says it has the call. */
  private lookUp(token: string, subject: string, correlationId: string, attempt: number): void {
    const call = this.pending.get(token);
    if (!call || call.instance) return;
    if (attempt > LOOKUP_ATTEMPTS) {
      this.settle(token)?.reject(
        new CallError(ErrorCode.ExecutorLost, `no instance of "${call.service}" has the answer of call ${correlationId}: it was lost with the gateway that sent the call`, {
          data: { service: call.service },
        }),
      );
      return;
    }
    try {
      if (this.bus.isConnected()) this.nc.publish(subject, new TextEncoder().encode(JSON.stringify({ correlation_id: correlationId })), { reply: `${this.inbox}.${token}` });
    } catch (err) {
      this.bus.logger.debug({ err, correlationId }, "could not ask for a call's answer");
    }
    setTimeout(() => this.lookUp(token, subject, correlationId, attempt + 1), LOOKUP_INTERVAL_MS).unref();
  }

  /** Registers a call waiting for its answer, with its deadline and its caller's signal; `cancel` tells the bus when the caller gives it up. */
  private pend(
    token: string,
    call: Pick<PendingCall, "correlationId" | "service" | "subject" | "resolve" | "reject"> & { options: Omit<CallOptions, "timeoutMs"> & { timeoutMs: number } },
    cancel?: () => void,
  ): PendingCall {
    const { options } = call;
    const sentAt = Date.now();
    const pending: PendingCall = {
      correlationId: call.correlationId,
      service: call.service,
      subject: call.subject,
      resolve: call.resolve,
      reject: call.reject,
      signal: options.signal,
      onNotification: options.onNotification,
      onInstance: options.onInstance,
      route: options.route,
      sentAt,
      // Addressed to one instance: if it leaves the bus, the call fails even before its receipt.
      instance: options.instance,
      deadline: sentAt + options.timeoutMs,
      timeoutMs: options.timeoutMs,
    };
    const signal = options.signal;
    if (signal) {
      pending.onAbort = () => {
        this.settle(token)?.reject(abortError(signal));
        cancel?.();
      };
      signal.addEventListener("abort", pending.onAbort, { once: true });
    }
    this.pending.set(token, pending);
    this.deadlines.due(pending.deadline);
    return pending;
  }

  /**
   * Cancels a call this requester did not send (another gateway did, and died: PROTOCOL.md §19.4) on
   * behalf of its client: the cancellation of §5.5, which the instance running it obeys.
   */
  cancelElsewhere(service: string, correlationId: string, reason: string): void {
    this.publishCancel(service, correlationId, reason);
  }

  /** Tells the instances of a service to stop a call nobody waits for any more (best effort). */
  private publishCancel(service: string, correlationId: string, reason: string): void {
    if (this.nc.isClosed()) return;
    const envelope = createEnvelope("context_update", { method: CANCEL_METHOD, params: { reason } }, { sender: this.sender, correlationId });
    try {
      this.nc.publish(subjects.cancel(service), this.bus.codec.encode(envelope));
    } catch (err) {
      this.bus.logger.debug({ err }, "could not publish a cancellation");
    }
  }

  /** Fails every call held by an executor instance that left the bus. */
  instanceLost(instance: string): void {
    for (const [token, call] of this.pending) {
      // A durable call outlives its executor: the work queue delivers it to another.
      if (call.instance !== instance || call.route) continue;
      this.settle(token)?.reject(
        new CallError(ErrorCode.ExecutorLost, `executor ${instance} of "${call.service}" left the bus before answering`, {
          data: { service: call.service, instance },
        }),
      );
    }
  }

  /** The instances holding direct calls right now, each with its service and its oldest call's start (durable calls outlive their instances). */
  private busyInstances(): Map<string, BusyInstance> {
    const out = new Map<string, BusyInstance>();
    for (const call of this.pending.values()) {
      if (!call.instance || call.route) continue;
      const known = out.get(call.instance);
      if (!known) out.set(call.instance, { service: call.service, since: call.sentAt });
      else if (call.sentAt < known.since) known.since = call.sentAt;
    }
    return out;
  }

  /** Rejects everything still pending (on stop). */
  close(): void {
    this.probe?.stop();
    this.deadlines.stop();
    this.failAll(new BusError(ErrorCode.BusUnavailable, "the gateway is shutting down"));
    this.subscription?.unsubscribe();
    this.subscription = undefined;
  }

  private onDenied(denial: PermissionDenial): void {
    if (denial.operation === "publish") {
      for (const [token, call] of this.pending) {
        if (call.subject !== denial.subject) continue;
        this.settle(token)?.reject(
          new RequestError(ErrorCode.Forbidden, `the NATS server denied publishing to ${denial.subject}: this participant's NATS user may not call "${call.service}"`, {
            data: { service: call.service, subject: denial.subject },
          }),
        );
      }
    } else if (denial.subject === `${this.inbox}.*`) {
      this.failAll(
        new RequestError(
          ErrorCode.Forbidden,
          `the NATS server denied subscribing to the reply inbox ${denial.subject}: give this connection an inbox prefix its NATS user may subscribe to`,
          {
            data: { subject: denial.subject },
          },
        ),
      );
    }
  }

  /** The correlation ids of the durable calls waiting for their answers. */
  durableCalls(): string[] {
    return [...this.pending.values()].filter((call) => call.route).map((call) => call.correlationId);
  }

  /** Settles a durable call with an answer read from the result store (its message on the wire was lost). */
  deliverStored(correlationId: string, data: Uint8Array, stored: StorePosition): void {
    for (const [token, call] of this.pending) {
      if (call.correlationId === correlationId) this.onAnswer(token, call, data, RESULTS_BUCKET, stored);
    }
  }

  private failAll(error: DmcpError, which: (call: PendingCall) => boolean = () => true): void {
    for (const [token, call] of [...this.pending]) if (which(call)) this.settle(token)?.reject(error);
  }

  private subscribe(): void {
    if (this.subscription && !this.subscription.isClosed()) return;
    this.subscription = this.nc.subscribe(`${this.inbox}.*`, {
      callback: (err, msg) => {
        if (!err) this.onReply(msg);
      },
    });
  }

  private onReply(msg: Msg): void {
    const token = msg.subject.slice(this.inbox.length + 1);
    const call = this.pending.get(token);
    if (!call) return; // late or duplicate answer to a call that already ended
    if (msg.headers?.hasError && msg.headers.code === 503) {
      this.settle(token)?.reject(
        new BusError(ErrorCode.NoResponders, `no executor serves "${call.service}" (nothing subscribes to its request subject)`, {
          data: { service: call.service },
        }),
      );
      return;
    }
    this.onAnswer(token, call, msg.data, msg.subject);
  }

  private onAnswer(token: string, call: PendingCall, data: Uint8Array, subject: string, stored?: StorePosition): void {
    const decoded = this.bus.codec.decode(data, { receiver: this.sender, maxBytes: Number.POSITIVE_INFINITY, speaksFor: call.service, stored });
    if (!decoded.ok && this.bus.codec.isRejection(decoded.error)) {
      // Not the executor's answer as far as we can tell: the call waits for one we can trust.
      this.bus.logger.warn({ err: decoded.error, service: call.service }, "rejected a reply");
      this.bus.reportError(this.sender, decoded.error, { subject, service: call.service });
      if (call.resumed && decoded.error.code === ErrorCode.DecryptionFailed && salvageIds(decoded.raw).correlationId === call.correlationId) {
        this.settle(token)?.reject(sealedElsewhere(call, decoded.raw));
      }
      return;
    }
    if (!decoded.ok) {
      this.settle(token)?.reject(new RequestError(ErrorCode.InvalidEnvelope, `the executor answered with ${decoded.error.message}`, { cause: decoded.error }));
      return;
    }
    const envelope = decoded.envelope;
    if (envelope.correlation_id !== call.correlationId) return; // not an answer to this call
    switch (envelope.type) {
      case "prompt_response":
        call.onInstance?.(envelope.sender_id);
        this.settle(token)?.resolve(envelope.payload.result);
        return;
      case "error_notification":
        call.onInstance?.(envelope.sender_id);
        this.settle(token)?.reject(errorFromPayload(envelope.payload));
        return;
      case "context_update": {
        const { method, params } = envelope.payload;
        if (method === ACCEPTED_METHOD) {
          if (typeof params?.instance === "string") {
            call.instance = params.instance;
            if (!call.route) this.probe?.watch();
            call.onInstance?.(params.instance);
          }
        } else if (method) {
          call.onNotification?.(method, params ?? {});
        }
        return;
      }
      default:
        // A request or a heartbeat is no answer, and no answer of the right type will follow it: waiting would only reach the deadline.
        this.settle(token)?.reject(
          new RequestError(ErrorCode.InvalidEnvelope, `the executor answered with a ${envelope.type}, not a prompt_response or an error_notification`, {
            data: { service: call.service },
          }),
        );
        return;
    }
  }

  private settle(token: string): PendingCall | undefined {
    const call = this.pending.get(token);
    if (!call) return undefined;
    this.pending.delete(token);
    if (call.onAbort) call.signal?.removeEventListener("abort", call.onAbort);
    return call;
  }
}

/**
 * The answer of a resumed call is sealed to the curve key of the gateway that sent the call, which is
 * gone: no other key opens it, and waiting for another answer would only last until the deadline.
 */
function sealedElsewhere(call: PendingCall, raw: unknown): SecurityError {
  const sealed = (raw as { sealed?: { to?: unknown } }).sealed;
  const to = typeof sealed?.to === "string" ? sealed.to : "another key";
  return new SecurityError(
    ErrorCode.DecryptionFailed,
    `the answer of call ${call.correlationId} to "${call.service}" is sealed to ${to}, the key of the gateway that sent the call, which is gone: no other gateway can open it (PROTOCOL.md §19.4)`,
    { data: { service: call.service, sealed_to: to } },
  );
}

function asDmcpError(error: unknown): DmcpError {
  return error instanceof DmcpError ? error : new BusError(ErrorCode.BusUnavailable, `could not queue the request: ${(error as Error).message}`, { cause: error });
}

/** Why a call's signal aborted: the DmcpError given as the reason (e.g. SHUTTING_DOWN), else CANCELLED. */
function abortError(signal: CallSignal): DmcpError {
  return signal.reason instanceof DmcpError ? signal.reason : new CallError(ErrorCode.Cancelled, "the call was cancelled");
}

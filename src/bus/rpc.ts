/**
 * Request/response correlation over NATS: the caller side sends a `prompt_request` and waits for the
 * `prompt_response` or `error_notification` with the same correlation id, within the call's deadline.
 */
import { errors as natsErrors, type Msg, type NatsConnection } from "@nats-io/transport-node";
import {
  createEnvelope,
  decodeEnvelope,
  DmcpError,
  encodeEnvelope,
  ErrorCode,
  errorFromPayload,
  subjects,
  type PromptRequest,
} from "../protocol/index.js";
import type { Bus } from "./connection.js";

export interface CallOptions {
  /** Milliseconds until nobody waits for the answer. */
  timeoutMs: number;
  sessionId?: string | undefined;
  /** Aborting rejects the call at once with CANCELLED. */
  signal?: AbortSignal | undefined;
  /** Send to one executor instance instead of the service's queue group. */
  instance?: string | undefined;
}

/** Calls services on the bus. One per process; `sender` is this process's id. */
export class BusCaller {
  constructor(
    private readonly bus: Bus,
    private readonly sender: string,
  ) {}

  /** Sends one MCP request to a service and returns the MCP result object, or throws a DmcpError. */
  async call(service: string, method: string, params: Record<string, unknown> | undefined, options: CallOptions): Promise<Record<string, unknown>> {
    const deadline = new Date(Date.now() + options.timeoutMs);
    const request = createEnvelope(
      "prompt_request",
      params === undefined ? { service, method } : { service, method, params },
      { sender: this.sender, sessionId: options.sessionId, deadline },
    );
    request.correlation_id = request.id;
    const data = encodeEnvelope(request);
    if (data.byteLength > this.bus.maxPayload) {
      throw new DmcpError(
        ErrorCode.PayloadTooLarge,
        `request of ${data.byteLength} bytes exceeds the bus limit of ${this.bus.maxPayload} bytes`,
      );
    }
    const subject = options.instance ? subjects.instanceRequest(options.instance) : subjects.request(service);
    const reply = await this.send(this.bus.nc, subject, data, options, service);
    return readReply(reply, request);
  }

  private send(nc: NatsConnection, subject: string, data: Uint8Array, options: CallOptions, service: string): Promise<Msg> {
    if (nc.isClosed() || nc.isDraining()) {
      return Promise.reject(new DmcpError(ErrorCode.BusUnavailable, "the bus connection is closed"));
    }
    const pending = nc.request(subject, data, { timeout: options.timeoutMs }).catch((err: unknown) => {
      throw classifyRequestError(err, service, options.timeoutMs);
    });
    const signal = options.signal;
    if (!signal) return pending;
    if (signal.aborted) return Promise.reject(cancelled());
    return new Promise<Msg>((resolve, reject) => {
      const onAbort = () => reject(cancelled());
      signal.addEventListener("abort", onAbort, { once: true });
      pending.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
    });
  }
}

function cancelled(): DmcpError {
  return new DmcpError(ErrorCode.Cancelled, "the call was cancelled");
}

function readReply(reply: Msg, request: PromptRequest): Record<string, unknown> {
  const decoded = decodeEnvelope(reply.data, Number.POSITIVE_INFINITY);
  if (!decoded.ok) {
    throw new DmcpError(ErrorCode.InvalidEnvelope, `the executor answered with ${decoded.error.message}`, { cause: decoded.error });
  }
  const envelope = decoded.envelope;
  if (envelope.correlation_id !== request.correlation_id) {
    throw new DmcpError(ErrorCode.InvalidEnvelope, "the executor answered with a different correlation_id");
  }
  if (envelope.type === "prompt_response") return envelope.payload.result;
  if (envelope.type === "error_notification") throw errorFromPayload(envelope.payload);
  throw new DmcpError(ErrorCode.InvalidEnvelope, `the executor answered with a ${envelope.type} message`);
}

/** Classifies a nats.js request failure by its error class, never by its message. */
export function classifyRequestError(err: unknown, service: string, timeoutMs: number): DmcpError {
  const causes = causeChain(err);
  if (causes.some((e) => e instanceof natsErrors.NoRespondersError)) {
    return new DmcpError(ErrorCode.NoResponders, `no executor serves "${service}" (nothing subscribes to its request subject)`, {
      cause: err,
      data: { service },
    });
  }
  if (causes.some((e) => e instanceof natsErrors.TimeoutError)) {
    return new DmcpError(ErrorCode.DeadlineExceeded, `"${service}" did not answer within ${timeoutMs} ms`, { cause: err, data: { service, timeout_ms: timeoutMs } });
  }
  if (causes.some((e) => e instanceof natsErrors.ClosedConnectionError || e instanceof natsErrors.DrainingConnectionError || e instanceof natsErrors.RequestError)) {
    return new DmcpError(ErrorCode.BusUnavailable, "the bus connection was lost during the call", { cause: err });
  }
  return new DmcpError(ErrorCode.Internal, `bus request failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

function causeChain(err: unknown): unknown[] {
  const chain: unknown[] = [];
  let current: unknown = err;
  while (current instanceof Error && chain.length < 8) {
    chain.push(current);
    current = current.cause;
  }
  return chain;
}

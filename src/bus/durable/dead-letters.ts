/**
 * Dead letters of durable delivery (PROTOCOL.md §15.6): a request that failed on its last attempt is
 * kept in the dead-letter stream with the reason, its caller gets a RETRIES_EXHAUSTED answer (stored
 * like any answer), and an `error_notification` is reported on the errors subject.
 *
 * An executor that dies during the last attempt (or hands it back as it stops) cannot do this itself:
 * the server then publishes a max-deliveries advisory, and whichever executor or gateway takes it (one
 * queue group) dead-letters the request and removes it from the work stream.
 */
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { headers as natsHeaders, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import {
  CallError,
  createEnvelope,
  decodeEnvelope,
  type DmcpError,
  encodeEnvelope,
  ErrorCode,
  errorPayload,
  parseWorkSubject,
  salvageIds,
  subjects,
  WORK_STREAM,
} from "../../protocol/index.js";
import { readBusJson } from "../bus-json.js";
import { natsConnectionOf, type Bus } from "../connection.js";
import { jetStreamManagerOf, jetStreamOf } from "../jetstream.js";
import { deliveryOutcomes, type DeliveryOutcome, type ResultStore } from "./result-store.js";

/**
 * The RETRIES_EXHAUSTED error of a request dead-lettered after its last delivery: how many deliveries
 * it had, how many of them ran (reached the upstream) and failed, did not run (their replica's upstream
 * was down, or it was stopping), or were lost with their replica (no outcome recorded), and how the
 * last one ended. `outcomes` has one entry per delivery, the last one last.
 */
export function retriesExhausted(service: string, outcomes: (DeliveryOutcome | undefined)[]): DmcpError {
  const deliveries = outcomes.length;
  const known = outcomes.filter((outcome): outcome is DeliveryOutcome => outcome !== undefined);
  const ran = known.filter((outcome) => outcome.ran);
  const notRun = known.filter((outcome) => !outcome.ran);
  const lost = deliveries - known.length;
  const codes = (some: DeliveryOutcome[]) => [...new Set(some.map((outcome) => outcome.code))].join(", ");
  const tally = [
    ran.length > 0 ? `${ran.length} ran and failed (${codes(ran)})` : "",
    notRun.length > 0 ? `${notRun.length} did not run (${codes(notRun)})` : "",
    lost > 0 ? `${lost} ${lost === 1 ? "was lost with its replica" : "were lost with their replicas"}` : "",
  ].filter(Boolean);
  const last = outcomes[deliveries - 1];
  const ending = last ? `the last failure: ${last.code}: ${last.message}` : "the replica holding the last one died or was cut off from the server before answering";
  return new CallError(ErrorCode.RetriesExhausted, `"${service}" got no answer in ${deliveries} ${deliveries === 1 ? "delivery" : "deliveries"}: ${tally.join(", ")}; ${ending}`, {
    data: {
      service,
      deliveries,
      attempts: ran.length,
      ...(last ? { last_error: { code: last.code, message: last.message } } : { reason: "the replica holding the last delivery was lost" }),
    },
  });
}

/** The most deliveries whose outcomes an advisory's handler reads. */
const MAX_DELIVERIES_READ = 1_000;

/** NATS headers on a dead letter (its body is the request, byte for byte, so that it can be re-driven). */
export const DEAD_LETTER_HEADERS = {
  code: "Dmcp-Error-Code",
  reason: "Dmcp-Error-Message",
  deliveries: "Dmcp-Deliveries",
  correlationId: "Dmcp-Correlation-Id",
  workSequence: "Dmcp-Work-Seq",
} as const;

/** What is known of a request being dead-lettered. */
export interface DeadRequest {
  data: Uint8Array;
  service: string;
  correlationId?: string | undefined;
  replyTo?: string | undefined;
  /** Its sequence in the work stream. */
  seq: number;
  deliveries: number;
}

export class DeadLetters {
  private readonly nc: NatsConnection;
  private readonly js: JetStreamClient;
  private jsm: JetStreamManager | undefined;
  private subscription: Subscription | undefined;

  constructor(
    private readonly bus: Bus,
    private readonly sender: string,
    private readonly results: ResultStore,
  ) {
    this.nc = natsConnectionOf(bus);
    this.js = jetStreamOf(bus);
  }

  /**
   * Keeps the request in the dead-letter stream, then answers its caller with `error` (unless the call
   * has an answer already, which then stays its answer) and reports it. Throws when the dead-letter
   * stream cannot be written: the request must then stay where it is.
   */
  async bury(request: DeadRequest, error: DmcpError, options: { report?: boolean } = {}): Promise<void> {
    const headers = natsHeaders();
    headers.set(DEAD_LETTER_HEADERS.code, error.code);
    headers.set(DEAD_LETTER_HEADERS.reason, error.message.replace(/[\r\n]+/g, " ").slice(0, 1024));
    headers.set(DEAD_LETTER_HEADERS.deliveries, String(request.deliveries));
    headers.set(DEAD_LETTER_HEADERS.workSequence, String(request.seq));
    if (request.correlationId) headers.set(DEAD_LETTER_HEADERS.correlationId, request.correlationId);
    // One dead letter per request, whoever buries it (the executor, or the watcher of an advisory).
    await this.js.publish(subjects.deadLetter(request.service), request.data, { msgID: `dead-${request.seq}`, headers });
    const payload = errorPayload(error);
    if (request.correlationId) {
      const answer = encodeEnvelope(createEnvelope("error_notification", payload, { sender: this.sender, correlationId: request.correlationId }));
      const settled = await this.results.settle(request.service, request.correlationId, answer);
      if (request.replyTo) this.nc.publish(request.replyTo, settled.answer);
    }
    if (options.report ?? true) {
      const report = createEnvelope("error_notification", payload, { sender: this.sender, ...(request.correlationId ? { correlationId: request.correlationId } : {}) });
      this.nc.publish(subjects.errors(this.sender), encodeEnvelope(report));
    }
    this.bus.logger.warn({ service: request.service, correlationId: request.correlationId, deliveries: request.deliveries, code: error.code }, "durable request dead-lettered");
  }

  /** Takes the work stream's max-deliveries advisories, in one queue group with every other watcher. */
  watch(): void {
    if (this.subscription) return;
    this.subscription = this.nc.subscribe(subjects.maxDeliveriesAdvisory(), {
      queue: "dmcp-dead-letters",
      callback: (err, msg) => {
        if (err) return;
        void this.onMaxDeliveries(msg.data).catch((error: unknown) => this.bus.logger.warn({ err: error }, "could not dead-letter a request after its last delivery"));
      },
    });
  }

  stop(): void {
    this.subscription?.unsubscribe();
    this.subscription = undefined;
  }

  /** The request's last delivery was neither answered nor handed back (its replica died, or was cut off): dead-letter it. */
  private async onMaxDeliveries(data: Uint8Array): Promise<void> {
    const advisory = readBusJson(this.bus, "dead-letter", data, advisoryOf, "invalid_advisory");
    if (!advisory) return;
    const { seq, deliveries } = advisory;
    this.jsm ??= await jetStreamManagerOf(this.bus);
    const stored = await this.jsm.streams.getMessage(WORK_STREAM, { seq }).catch(() => null);
    if (!stored) return; // already handled
    const target = parseWorkSubject(stored.subject);
    const decoded = decodeEnvelope(stored.data, Number.POSITIVE_INFINITY);
    const envelope = decoded.ok && decoded.envelope.type === "prompt_request" ? decoded.envelope : undefined;
    const correlationId = envelope ? (envelope.correlation_id ?? envelope.id) : salvageIds(decoded.ok ? decoded.envelope : decoded.raw).correlationId;
    const replyTo = envelope?.reply_to;
    const answered = correlationId && target ? await this.results.get(target.service, correlationId) : undefined;
    if (answered) {
      // The last attempt finished and stored its answer; only its acknowledgement was lost.
      if (replyTo) this.nc.publish(replyTo, answered.data);
    } else if (target) {
      // What became of the earlier deliveries (and of the last, if its replica handed it back as it stopped).
      const outcomes = correlationId ? await deliveryOutcomes(this.results, target.service, correlationId, deliveries) : Array.from({ length: deliveries }, () => undefined);
      const error = retriesExhausted(target.service, outcomes);
      await this.bury({ data: stored.data, service: target.service, correlationId, replyTo, seq, deliveries }, error);
    }
    await this.jsm.streams.deleteMessage(WORK_STREAM, seq, false).catch(() => undefined);
  }
}

/** A max-deliveries advisory of a message of the work stream: its sequence there, and the deliveries it had. */
function advisoryOf(json: Record<string, unknown>): { seq: number; deliveries: number } | undefined {
  const { stream, stream_seq: seq, deliveries } = json;
  if (stream !== WORK_STREAM || typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 1) return undefined;
  // The server's count (at least 1); bounded, since each is a read of the result store.
  return { seq, deliveries: Number.isInteger(deliveries) ? Math.min(Math.max(deliveries as number, 1), MAX_DELIVERIES_READ) : 1 };
}

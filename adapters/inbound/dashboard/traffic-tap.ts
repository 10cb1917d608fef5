/**
 * The dashboard's window on the bus: the gateway's own dMCP traffic, seen through a tap on the bus it
 * hands the gateway (`bus.tapped`), and the `error_notification`s on `dmcp.v1.err.>`, read by one
 * subscription of its own.
 *
 * Why a tap and not a subscription to `dmcp.v1.>`: NATS answers a request with "no responders" only
 * when nothing at all subscribes to its subject. A wildcard subscription on the request subjects would
 * count as a responder, and every caller on the bus (this gateway, other gateways, agents) would wait
 * for its deadline instead of getting NO_RESPONDERS at once. The tap sees requests out, replies in,
 * and the heartbeats and context updates the gateway subscribes to anyway; requests between other
 * callers and executors are not seen. `dmcp.v1.err.>` is read by nothing else, so listening there
 * changes nothing.
 *
 * Cost: with no dashboard watching, a message is counted and not read; while one watches, its
 * top-level envelope fields are read by the byte scanner (envelope-scanner.ts). Every set is bounded.
 */
import { decodeEnvelope, ErrorCode, SUBJECT_ROOT, subjects } from "../../../src/protocol/index.js";
import type { Bus, BusMessage, BusSubscription, BusTap } from "../../../src/bus/index.js";
import { clip } from "./clip.js";
import { scanEnvelope, type EnvelopeMeta } from "./envelope-scanner.js";

/** An error_notification on the bus (or what came there instead), as the recent-errors view lists it. */
export interface BusErrorReport {
  code: string;
  message: string;
  subject: string;
  sender?: string;
  correlationId?: string;
}

/** Where the tap reports what it sees: the dashboard's model (monitor.ts). */
export interface TrafficSink {
  /** Whether a dashboard watches: only then is traffic read and listed. */
  watching(): boolean;
  /** A dMCP message of this many bytes went by (counted whether or not anyone watches). */
  count(bytes: number): void;
  /** A message for the traffic view; `meta` is undefined when the message is not a JSON object. */
  record(dir: "in" | "out", subject: string, size: number, meta: EnvelopeMeta | undefined): void;
  /** An error_notification on dmcp.v1.err.> (kept whether or not anyone watches). */
  busError(report: BusErrorReport): void;
  /** The tap could not read a message. */
  unreadable(err: unknown): void;
}

const ROOT_PREFIX = `${SUBJECT_ROOT}.`;
const ERRORS_PREFIX = subjects.errorsAll().slice(0, -1);
/** Reply subjects of requests still waiting, so their answers can be listed (bounded: calls may never be answered). */
const MAX_AWAITED_REPLIES = 2000;
/** error_notifications larger than this are not parsed for their message. */
const MAX_ERROR_BYTES = 64 * 1024;
/** How the traffic view lists the server's "no responders" answer to a request. */
const NO_RESPONDERS: EnvelopeMeta = { type: "no_responders", sender_id: "nats-server" };

export class TrafficTap implements BusTap {
  private readonly awaitedReplies = new Set<string>();

  constructor(private readonly sink: TrafficSink) {}

  /** Reads `dmcp.v1.err.>` on `bus` (the gateway's, untapped) until the subscription is stopped. */
  watchErrors(bus: Bus): BusSubscription {
    return bus.subscribe(subjects.errorsAll(), (message) => this.safely(() => this.onBusError(message)));
  }

  sent(subject: string, data: Uint8Array, reply: string | undefined): void {
    this.safely(() => this.onSent(subject, data, reply));
  }

  received(message: BusMessage): void {
    this.safely(() => this.onReceived(message));
  }

  private onSent(subject: string, data: Uint8Array, reply: string | undefined): void {
    // The error subscription reports what goes to dmcp.v1.err.>, whoever sent it.
    if (!subject.startsWith(ROOT_PREFIX) || subject.startsWith(ERRORS_PREFIX)) return;
    this.sink.count(data.byteLength);
    if (!this.sink.watching()) return;
    const meta = scanEnvelope(data);
    this.sink.record("out", subject, data.byteLength, meta);
    if (reply && meta?.type === "prompt_request") {
      if (this.awaitedReplies.size >= MAX_AWAITED_REPLIES) this.awaitedReplies.delete(this.awaitedReplies.values().next().value!);
      this.awaitedReplies.add(reply);
    }
  }

  private onReceived(message: BusMessage): void {
    const { subject, data } = message;
    if (subject.startsWith(ERRORS_PREFIX)) return; // reported by the error subscription
    if (subject.startsWith(ROOT_PREFIX)) {
      // A JetStream delivery (a context replay) is stored history, not live traffic.
      if (message.reply?.startsWith("$JS.")) return;
      this.sink.count(data.byteLength);
      if (this.sink.watching()) this.sink.record("in", subject, data.byteLength, scanEnvelope(data));
      return;
    }
    if (!this.awaitedReplies.has(subject)) return;
    this.sink.count(data.byteLength);
    if (!this.sink.watching()) return;
    if (message.noResponders) {
      this.awaitedReplies.delete(subject);
      this.sink.record("in", subject, data.byteLength, NO_RESPONDERS);
      return;
    }
    const meta = scanEnvelope(data);
    if (meta?.type === "prompt_response" || meta?.type === "error_notification") this.awaitedReplies.delete(subject);
    this.sink.record("in", subject, data.byteLength, meta);
  }

  private onBusError(message: BusMessage): void {
    const { data } = message;
    const subject = clip(message.subject);
    this.sink.count(data.byteLength);
    const decoded = decodeEnvelope(data, MAX_ERROR_BYTES);
    if (decoded.ok && decoded.envelope.type === "error_notification") {
      const { payload } = decoded.envelope;
      this.sink.busError({
        code: clip(payload.code),
        message: clip(payload.message),
        sender: clip(decoded.envelope.sender_id),
        subject,
        ...(decoded.envelope.correlation_id ? { correlationId: clip(decoded.envelope.correlation_id) } : {}),
      });
    } else {
      const text = decoded.ok ? `expected an error_notification, got ${decoded.envelope.type}` : decoded.error.message;
      this.sink.busError({ code: decoded.ok ? ErrorCode.InvalidEnvelope : decoded.error.code, message: clip(text), subject });
    }
    if (this.sink.watching()) this.sink.record("in", message.subject, data.byteLength, scanEnvelope(data));
  }

  /** Nothing the tap does may break the gateway: what it cannot read is reported and dropped. */
  private safely(work: () => void): void {
    try {
      work();
    } catch (err) {
      this.sink.unreadable(err);
    }
  }
}

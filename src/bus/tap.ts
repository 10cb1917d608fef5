/**
 * A tap on a bus's own traffic (`bus.tapped(tap)`), for a monitor such as the dashboard: it sees what
 * goes out and comes in on one connection without subscribing to anything. (A wildcard subscription on
 * the request subjects would count as a responder: callers would wait for their deadline instead of
 * getting NO_RESPONDERS at once.)
 */
import type { NatsConnection, Payload, PublishOptions, Subscription, SubscriptionOptions } from "@nats-io/transport-node";
import type { Logger } from "../util/index.js";
import type { EnvelopeCodec } from "./codec.js";
import { NatsMessage, type BusMessage } from "./message.js";

/** Sees the traffic of a tapped bus. Called after the fact: a tap never delays or breaks what it sees. */
export interface BusTap {
  /** A message was published (`reply`: where the answers to a request go). */
  sent(subject: string, data: Uint8Array, reply: string | undefined): void;
  /** A subscription's handler has taken a message. */
  received(message: BusMessage): void;
}

const encoder = new TextEncoder();

/**
 * The connection with `publish` and callback `subscribe` wrapped; everything else is the connection
 * itself. A proxy, so that the bus modules and the JetStream/KV clients built on it see the real
 * connection's API, whatever nats.js adds to it.
 */
export function tapConnection(nc: NatsConnection, tap: BusTap, codec: EnvelopeCodec, logger: Logger): NatsConnection {
  const safely = (work: () => void) => {
    try {
      work();
    } catch (err) {
      logger.debug({ err }, "a bus tap failed");
    }
  };
  const publish = (subject: string, payload?: Payload, options?: PublishOptions): void => {
    nc.publish(subject, payload, options);
    safely(() => tap.sent(subject, typeof payload === "string" ? encoder.encode(payload) : (payload ?? new Uint8Array()), options?.reply));
  };
  const subscribe = (subject: string, options?: SubscriptionOptions): Subscription => {
    const callback = options?.callback;
    if (!callback) return nc.subscribe(subject, options);
    return nc.subscribe(subject, {
      ...options,
      callback: (err, msg) => {
        callback(err, msg);
        if (!err) safely(() => tap.received(new NatsMessage(msg, codec)));
      },
    });
  };
  const bound = new Map<PropertyKey, unknown>();
  return new Proxy(nc, {
    get(target, property) {
      if (property === "publish") return publish;
      if (property === "subscribe") return subscribe;
      const value: unknown = Reflect.get(target, property);
      if (typeof value !== "function") return value;
      let fn = bound.get(property);
      if (!fn) {
        fn = (value as (...args: unknown[]) => unknown).bind(target);
        bound.set(property, fn);
      }
      return fn;
    },
  });
}

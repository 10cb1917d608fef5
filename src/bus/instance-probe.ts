/**
 * Notices within about two probe intervals that an instance holding direct calls died without leaving
 * (killed, crashed, its connection cut), where missed heartbeats take three heartbeat intervals
 * (PROTOCOL.md §5.2). While a call has waited on an instance for an interval or more, the caller sends
 * it one `ping` per interval on its own subject: the server drops a dead connection's subscriptions at
 * once and answers such a request "no responders". A call answered within the interval (nearly every
 * call) costs no probe, so the probes add no messages to a bus of quick calls. An instance that leaves
 * in order also unsubscribes, but finishes its calls:
 * it says so (a `stopping` heartbeat, its registry entry deleted) and is then no longer listed, so a
 * miss counts only for a listed instance, and only when the next probe misses too.
 */
import { createEnvelope, subjects } from "../protocol/index.js";
import { isNoResponders, natsConnectionOf, type Bus } from "./connection.js";

/** One probe per busy instance this often: a death is noticed after two misses, within about 0.5 s. */
const PROBE_INTERVAL_MS = 250;
/** A probe not answered by then tells nothing (a slow instance is not a dead one). */
const PROBE_TIMEOUT_MS = 2_000;

export interface InstanceProbeOptions {
  bus: Bus;
  sender: string;
  /** The instances holding direct calls now, each with its service and when the oldest of those calls was sent (epoch ms). */
  busy(): Map<string, BusyInstance>;
  /** Whether the registry lists the instance (one that left in order is not listed). */
  listed(service: string, instance: string): boolean;
  /** The instance is gone: its calls fail. */
  lost(instance: string): void;
}

/** An instance holding direct calls: its service, and when the oldest of them was sent (epoch ms). */
export interface BusyInstance {
  service: string;
  since: number;
}

export class InstanceProbe {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Instances whose probe is on its way. */
  private readonly probing = new Set<string>();
  /** Instances whose last probe met no responders. */
  private readonly missed = new Set<string>();

  constructor(private readonly options: InstanceProbeOptions) {}

  /** A call now waits on an instance: probe while any does. */
  watch(): void {
    if (this.timer || this.stopped) return;
    this.timer = setInterval(() => this.tick(), PROBE_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    const busy = this.options.busy();
    for (const instance of this.missed) if (!busy.has(instance)) this.missed.delete(instance);
    if (busy.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
      return;
    }
    if (!this.options.bus.isConnected()) return;
    // Only instances holding a call that has waited an interval: younger calls may still be answered without one.
    const due = Date.now() - PROBE_INTERVAL_MS;
    for (const [instance, { service, since }] of busy) if (since <= due && !this.probing.has(instance)) void this.probe(service, instance);
  }

  private async probe(service: string, instance: string): Promise<void> {
    this.probing.add(instance);
    try {
      const listening = await this.ping(service, instance);
      if (listening !== false || !this.options.listed(service, instance)) {
        this.missed.delete(instance);
      } else if (!this.missed.has(instance)) {
        // A leave in order may have unsubscribed a moment before its `stopping` heartbeat: the next probe decides.
        this.missed.add(instance);
      } else {
        this.missed.delete(instance);
        this.options.lost(instance);
      }
    } finally {
      this.probing.delete(instance);
    }
  }

  /** true: the instance answered; false: nothing subscribes to its subject; undefined: no telling. */
  private async ping(service: string, instance: string): Promise<boolean | undefined> {
    const { bus, sender } = this.options;
    const request = createEnvelope("prompt_request", { service, method: "ping" }, { sender, deadline: new Date(Date.now() + PROBE_TIMEOUT_MS) });
    try {
      await natsConnectionOf(bus).request(subjects.instanceRequest(service, instance), bus.codec.encode(request, bus.codec.requestSeal(service)), { timeout: PROBE_TIMEOUT_MS });
      return true;
    } catch (err) {
      return isNoResponders(err) ? false : undefined;
    }
  }
}

/**
 * Per-client rate limits shared by the gateways on one bus (PROTOCOL.md §19.1): each gateway keeps its
 * own token buckets and, every 100 ms in which it let requests through, tells the others how many per
 * client; each takes what the others let through out of its own buckets. No request waits for the
 * bus: the limit holds across gateways within what they let through in one interval.
 */
import { readBusJson, type Bus, type BusSubscription } from "../../bus/index.js";
import { subjects } from "../../protocol/index.js";
import type { Logger } from "../../util/index.js";

export const RATE_SHARE_INTERVAL_MS = 100;
/** The most clients one message names (more wait for the next interval). */
const MAX_KEYS_PER_MESSAGE = 1000;

/** What the HTTP rate limiter needs of the bus. */
export interface RateShare {
  /** A request of client `key` was let through here. */
  spent(key: string): void;
  /** Called with what another gateway let through, per client. */
  onSpent(listener: (key: string, count: number) => void): void;
  stop(): void;
}

export class RateSharing implements RateShare {
  private pending = new Map<string, number>();
  private readonly listeners: ((key: string, count: number) => void)[] = [];
  private readonly subscription: BusSubscription;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly options: { bus: Bus; gatewayId: string; logger: Logger }) {
    this.subscription = options.bus.subscribe(subjects.rateSpent, (msg) => this.onMessage(msg.data), {
      onError: (err) => options.logger.error({ err, subject: subjects.rateSpent }, "subscription error"),
    });
    this.timer = setInterval(() => this.flush(), RATE_SHARE_INTERVAL_MS);
    this.timer.unref();
  }

  spent(key: string): void {
    this.pending.set(key, (this.pending.get(key) ?? 0) + 1);
  }

  onSpent(listener: (key: string, count: number) => void): void {
    this.listeners.push(listener);
  }

  stop(): void {
    clearInterval(this.timer);
    this.flush();
    this.subscription.unsubscribe();
  }

  private flush(): void {
    if (this.pending.size === 0) return;
    const spent: Record<string, number> = {};
    let keys = 0;
    for (const [key, count] of this.pending) {
      if (keys++ === MAX_KEYS_PER_MESSAGE) break;
      spent[key] = count;
      this.pending.delete(key);
    }
    try {
      this.options.bus.publish(subjects.rateSpent, new TextEncoder().encode(JSON.stringify({ gateway: this.options.gatewayId, spent })));
    } catch (err) {
      this.options.logger.debug({ err }, "could not share the rate limits' spending");
    }
  }

  private onMessage(data: Uint8Array): void {
    const message = readBusJson(this.options.bus, "rate", data, rateShareOf);
    if (!message || message.gateway === this.options.gatewayId) return;
    for (const [key, count] of Object.entries(message.spent)) {
      if (typeof count !== "number" || !Number.isFinite(count) || count <= 0) continue;
      for (const listener of this.listeners) listener(key, count);
    }
  }
}

/** `{ "gateway": <its id>, "spent": { <key>: <count>, … } }`; counts that are not positive numbers are skipped one by one. */
function rateShareOf(json: Record<string, unknown>): { gateway: string; spent: Record<string, unknown> } | undefined {
  const { gateway, spent } = json;
  if (typeof gateway !== "string" || typeof spent !== "object" || spent === null || Array.isArray(spent)) return undefined;
  return { gateway, spent: spent as Record<string, unknown> };
}

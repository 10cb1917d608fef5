/**
 * Admission of durable work into an executor: at most `capacity` calls run at once, a waiting `high`
 * request gets the next free slot before any `normal` one, and nothing is admitted while the executor
 * cannot serve (its upstream is down), since every delivery it took would only use up an attempt.
 */
import type { PriorityLane } from "../../protocol/index.js";

interface Waiter {
  lane: PriorityLane;
  since: number;
  resolve: (admitted: boolean) => void;
}

export class Admission {
  private running = 0;
  private readonly waiters: Waiter[] = [];
  private servingWaiters: (() => void)[] = [];
  private closed = false;

  constructor(
    private readonly capacity: number,
    private readonly canServe: () => boolean,
  ) {}

  get active(): number {
    return this.running;
  }

  /**
   * Resolves true when a slot is this request's (then call `leave()` when it ends), false when the
   * admission closed, or when the executor could not serve for `maxHoldMs` (the request should go
   * back to the queue for another replica). `keepAlive` runs every `keepAliveMs` while it waits.
   */
  enter(lane: PriorityLane, keepAlive: () => void, keepAliveMs: number, maxHoldMs: number): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    if (this.waiters.length === 0 && this.free()) {
      this.running++;
      return Promise.resolve(true);
    }
    return new Promise<boolean>((resolve) => {
      const waiter: Waiter = { lane, since: Date.now(), resolve: () => undefined };
      const timer = setInterval(() => {
        keepAlive();
        if (!this.canServe() && Date.now() - waiter.since >= maxHoldMs) this.drop(waiter, false);
      }, keepAliveMs);
      waiter.resolve = (admitted) => {
        clearInterval(timer);
        resolve(admitted);
      };
      this.waiters.push(waiter);
      this.dispatch();
    });
  }

  leave(): void {
    this.running--;
    this.dispatch();
  }

  /** The executor's ability to serve changed: admit what waits, if it can now. */
  wake(): void {
    if (this.canServe()) for (const resolve of this.servingWaiters.splice(0)) resolve();
    this.dispatch();
  }

  /** Resolves true once the executor can serve (at once if it can), false after `timeoutMs` or on close. */
  untilServing(timeoutMs: number): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    if (this.canServe()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (serving: boolean) => {
        clearTimeout(timer);
        this.servingWaiters = this.servingWaiters.filter((waiter) => waiter !== onServing);
        resolve(serving);
      };
      const onServing = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.servingWaiters.push(onServing);
    });
  }

  /** Admits nothing more; every waiting request is turned away. */
  close(): void {
    this.closed = true;
    for (const waiter of this.waiters.splice(0)) waiter.resolve(false);
    for (const resolve of this.servingWaiters.splice(0)) resolve();
  }

  private free(): boolean {
    return this.running < this.capacity && this.canServe();
  }

  private dispatch(): void {
    while (this.waiters.length > 0 && this.free()) {
      const next = this.waiters.find((waiter) => waiter.lane === "high") ?? this.waiters[0]!;
      this.running++;
      this.drop(next, true);
    }
  }

  private drop(waiter: Waiter, admitted: boolean): void {
    const index = this.waiters.indexOf(waiter);
    if (index < 0) return;
    this.waiters.splice(index, 1);
    waiter.resolve(admitted);
  }
}

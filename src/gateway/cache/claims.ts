/**
 * Concurrent misses for one key at several gateways call the upstream once (PROTOCOL.md §18.3). The
 * gateway that misses first writes a claim beside the key in the shared bucket (a write that succeeds
 * only where there is none, sent together with the look in the bucket: no extra round trip) and
 * rewrites it while its call runs; another
 * gateway missing meanwhile finds the claim and polls the bucket for the answer. A claim not rewritten
 * for `staleMs` is a dead claimer's: a waiter takes it over and calls the upstream. A claim released
 * without an answer (the answer was not kept, or the call failed) sends the waiters upstream themselves.
 */
import { DmcpError, ErrorCode } from "../../protocol/index.js";
import type { SharedCache } from "../../bus/index.js";
import { abortableSleep, type Logger } from "../../util/index.js";

export interface ClaimTiming {
  /** How often a claimer rewrites its claim. */
  refreshMs: number;
  /** A claim unchanged this long is abandoned. */
  staleMs: number;
  /** A waiter's first pause between looks at the bucket; it doubles up to `maxPollMs`. */
  firstPollMs: number;
  maxPollMs: number;
}

export const CLAIM_TIMING: ClaimTiming = { refreshMs: 1_000, staleMs: 3_000, firstPollMs: 5, maxPollMs: 100 };

/** What the claimer's call gave: the answer, and the write of it to the bucket (the claim goes once that is done). */
export interface Fetched<T> {
  result: T;
  stored: Promise<void>;
}

/** A claim on its way: its key in the bucket and its revision once written (undefined: another gateway's; null: none could be written). */
export interface Claim {
  key: string;
  revision: Promise<number | undefined | null>;
}

/** A claimed call: how to look for the answer in the bucket, how to fetch it itself, and its end. */
export interface ClaimedCall<T> {
  lookup: () => Promise<T | undefined>;
  fetch: () => Promise<Fetched<T>>;
  signal: AbortSignal;
  /** The call's deadline (ms since the epoch): a waiter gives up then, as the call itself would. */
  deadline: number | undefined;
}

export class SharedFlights {
  constructor(
    private readonly shared: SharedCache,
    private readonly holder: string,
    private readonly logger: Logger,
    private readonly timing: ClaimTiming = CLAIM_TIMING,
  ) {}

  /** Starts claiming the entry `key`. */
  begin(key: string): Claim {
    const claimKey = claimKeyOf(key);
    return { key: claimKey, revision: this.write(claimKey, 0) };
  }

  /** The answer was in the bucket after all: a claim won goes again. */
  drop(claim: Claim): void {
    void claim.revision.then((revision) => (typeof revision === "number" ? this.remove(claim.key, revision) : undefined));
  }

  /** The call's answer: fetched under the claim, or (another gateway holds it) the answer that one stores. */
  async run<T>(claim: Claim, call: ClaimedCall<T>): Promise<T> {
    const revision = await claim.revision;
    if (revision === null) return (await call.fetch()).result;
    if (revision !== undefined) return this.fetchHolding(claim.key, revision, call);
    return this.wait(claim.key, call);
  }

  /** The claim's new revision; undefined: another gateway's write came first; null: the bucket could not be asked (no claim). */
  private async write(claimKey: string, revision: number): Promise<number | undefined | null> {
    const value = new TextEncoder().encode(JSON.stringify({ holder: this.holder }));
    try {
      return await this.shared.putIfRevision(claimKey, value, revision, this.timing.staleMs * 2);
    } catch (err) {
      this.logger.debug({ err, key: claimKey }, "could not claim a cache miss on the bus");
      return null;
    }
  }

  /** Runs the fetch under the claim at `revision`, rewriting it meanwhile; it goes once the answer is stored (or the fetch failed). */
  private async fetchHolding<T>(claimKey: string, revision: number, call: ClaimedCall<T>): Promise<T> {
    let current: number | undefined = revision;
    let refreshing = Promise.resolve();
    const timer = setInterval(() => {
      refreshing = refreshing.then(async () => {
        if (current === undefined) return;
        // Lost (purged by an invalidation, taken over): nothing of it is this gateway's to remove.
        current = (await this.write(claimKey, current)) ?? undefined;
      });
    }, this.timing.refreshMs);
    timer.unref();
    const release = async () => {
      clearInterval(timer);
      await refreshing;
      if (current === undefined) return;
      const last = current;
      current = undefined;
      await this.remove(claimKey, last);
    };
    try {
      const { result, stored } = await call.fetch();
      void stored.finally(release);
      return result;
    } catch (err) {
      void release();
      throw err;
    }
  }

  private remove(claimKey: string, revision: number): Promise<void> {
    return this.shared.removeUpTo(claimKey, revision).catch((err: unknown) => this.logger.debug({ err, key: claimKey }, "could not release a cache claim on the bus"));
  }

  /** Another gateway holds the claim: its answer from the bucket, or this gateway's own once the claim is gone or abandoned. */
  private async wait<T>(claimKey: string, call: ClaimedCall<T>): Promise<T> {
    let pause = this.timing.firstPollMs;
    let seen: number | undefined;
    let seenAt = 0;
    for (;;) {
      const [found, claim] = await Promise.all([call.lookup(), this.shared.revisionOf(claimKey).catch(() => null)]);
      if (found !== undefined) return found;
      if (claim === null) return (await call.fetch()).result;
      // Released: its answer was stored first (read again: the two reads crossed), or was not kept.
      if (claim === undefined) return (await call.lookup()) ?? (await call.fetch()).result;
      const now = Date.now();
      if (claim.revision !== seen) {
        seen = claim.revision;
        // A claim written long ago (its claimer died; servers without per-message TTL keep it) is abandoned at once.
        seenAt = now - claim.writtenAt < 2 * this.timing.staleMs ? now : now - this.timing.staleMs;
      }
      if (now - seenAt >= this.timing.staleMs) {
        const mine = await this.write(claimKey, claim.revision);
        if (mine === null) return (await call.fetch()).result;
        if (mine !== undefined) return this.fetchHolding(claimKey, mine, call);
        seenAt = now;
      }
      if (call.deadline !== undefined && now >= call.deadline)
        throw new DmcpError(ErrorCode.DeadlineExceeded, "the call another gateway makes for the same answer did not end within the call's deadline");
      await pauseFor(Math.min(pause, call.deadline === undefined ? pause : Math.max(0, call.deadline - now)), call.signal);
      pause = Math.min(pause * 2, this.timing.maxPollMs);
    }
  }
}

/** The claim beside an entry's key (`<service>.<target>.<entry>`): in the same target, so that purges take it too. */
export function claimKeyOf(key: string): string {
  return `${key}_claim`;
}

/** A pause, ended early by the call's cancellation (as a call's: its DmcpError reason, else CANCELLED). */
function pauseFor(ms: number, signal: AbortSignal): Promise<void> {
  return abortableSleep(ms, signal).catch(() => {
    throw signal.reason instanceof DmcpError ? signal.reason : new DmcpError(ErrorCode.Cancelled, "the call was cancelled");
  });
}

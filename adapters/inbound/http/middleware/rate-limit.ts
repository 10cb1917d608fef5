/**
 * Per-client rate limiting for the HTTP gateway: a token bucket per client (its authenticated
 * identity, else its address). Over the limit a request gets 429 with `Retry-After`. With a share
 * (the gateways on one bus), what the other gateways let through for a client comes out of its
 * bucket here too (src/gateway/access/rate-sharing.ts).
 */
import { sendJson } from "./errors.js";
import type { RequestGate } from "./gate.js";
import type { RateShare } from "../../../../src/gateway/index.js";
import { authenticatedIdentity } from "./auth.js";

export interface RateLimit {
  /** Requests per second allowed on average. */
  perSecond: number;
  /** How many may come at once before the rate applies. */
  burst: number;
}

interface Bucket {
  tokens: number;
  updated: number;
}

/** Buckets unused for this long are forgotten (they would be full again anyway). */
const IDLE_MS = 60_000;
const MAX_CLIENTS = 100_000;

/** The limit as a gate: false once a request over it is answered with 429. */
export function rateLimiter(limit: RateLimit, share?: RateShare): RequestGate {
  const buckets = new Map<string, Bucket>();
  let lastSweep = Date.now();
  const refill = (bucket: Bucket, now: number) => {
    bucket.tokens = Math.min(limit.burst, bucket.tokens + ((now - bucket.updated) / 1000) * limit.perSecond);
    bucket.updated = now;
  };
  // Another gateway's requests of this client: out of the bucket here, down to one burst of debt.
  share?.onSpent((key, count) => {
    const now = Date.now();
    const bucket = buckets.get(key) ?? { tokens: limit.burst, updated: now };
    refill(bucket, now);
    bucket.tokens = Math.max(-limit.burst, bucket.tokens - count);
    buckets.set(key, bucket);
  });
  return (req, res) => {
    const now = Date.now();
    if (now - lastSweep > IDLE_MS || buckets.size > MAX_CLIENTS) {
      for (const [key, bucket] of buckets) if (now - bucket.updated > IDLE_MS) buckets.delete(key);
      lastSweep = now;
    }
    const identity = authenticatedIdentity(req);
    const key = identity ? `id:${identity.subject}` : `ip:${req.socket.remoteAddress ?? "?"}`;
    const bucket = buckets.get(key) ?? { tokens: limit.burst, updated: now };
    refill(bucket, now);
    buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      share?.spent(key);
      return true;
    }
    const retryAfter = Math.max(1, Math.ceil((1 - bucket.tokens) / limit.perSecond));
    res.setHeader("Retry-After", String(retryAfter));
    sendJson(res, 429, { jsonrpc: "2.0", id: null, error: { code: -32029, message: `rate limit of ${limit.perSecond} requests/s exceeded; retry in ${retryAfter} s` } });
    return false;
  };
}

/** Parses `N` or `N/s` or `N/s,burst=M`. */
export function parseRateLimit(text: string): RateLimit {
  // A burst of 0 would refuse every request.
  const match = /^(\d+(?:\.\d+)?)(?:\/s)?(?:,burst=([1-9]\d*))?$/.exec(text.trim());
  if (!match || Number(match[1]) <= 0) throw new Error(`a rate limit reads N/s or N/s,burst=M, got ${JSON.stringify(text)}`);
  const perSecond = Number(match[1]);
  return { perSecond, burst: match[2] ? Number(match[2]) : Math.max(1, Math.ceil(perSecond)) };
}

/**
 * The answers of durable calls, by correlation id, in a JetStream KV bucket: the first answer stored
 * for a call is its answer. A redelivered request whose work already finished is answered from here
 * instead of running again; a cancelled call is marked here so that a queued copy is never started;
 * a gateway that lost an answer on the wire (its connection dropped) reads it here.
 */
import { jetstream } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { RESULTS_BUCKET } from "../protocol/index.js";
import type { StoredAt } from "../security/replay.js";
import type { Bus } from "./connection.js";

/** An answer as stored: the encoded envelope, and when and under which revision it was stored. */
export interface StoredAnswer {
  data: Uint8Array;
  stored: StoredAt;
}

const STORE_TIMEOUT_MS = 2_000;

export class ResultStore {
  private constructor(private readonly kv: KV) {}

  /** Opens the bucket, creating it with this TTL when it does not exist (an existing bucket keeps its own). */
  static async open(bus: Bus, ttlMs: number): Promise<ResultStore> {
    // A request lost in a server restart is retried after 2 s rather than the default 5 s.
    const kvm = new Kvm(jetstream(bus.nc, { timeout: STORE_TIMEOUT_MS }));
    const kv = await kvm.create(RESULTS_BUCKET, { history: 1, ttl: ttlMs, maxValueSize: bus.maxPayload }).catch(() => kvm.open(RESULTS_BUCKET));
    return new ResultStore(kv);
  }

  /** The stored answer (an encoded envelope) of a call, if any. */
  async get(correlationId: string): Promise<StoredAnswer | undefined> {
    const entry = await this.kv.get(resultKey(correlationId));
    return entry && entry.operation === "PUT" ? { data: entry.value, stored: { at: entry.created, tag: entry.revision } } : undefined;
  }

  async mark(key: string, value: Uint8Array = new Uint8Array(0)): Promise<void> {
    await this.kv.put(key, value);
  }

  async marked(key: string): Promise<boolean> {
    return (await this.read(key)) !== undefined;
  }

  async read(key: string): Promise<Uint8Array | undefined> {
    const entry = await this.kv.get(key);
    return entry?.operation === "PUT" ? entry.value : undefined;
  }

  /**
   * Stores `answer` unless the call has one already. Resolves the call's answer: this one (`first`),
   * or the one stored before, which then wins.
   */
  async settle(correlationId: string, answer: Uint8Array): Promise<{ answer: Uint8Array; first: boolean }> {
    const key = resultKey(correlationId);
    try {
      await this.kv.create(key, answer);
      return { answer, first: true };
    } catch (err) {
      const stored = await this.get(correlationId);
      if (stored) return { answer: stored.data, first: false };
      throw err;
    }
  }
}

/** Marks a call whose upstream died while it ran: it may be the request that kills it (a poison). */
export async function markSuspect(store: ResultStore, correlationId: string): Promise<void> {
  await store.mark(suspectKey(correlationId));
}

export async function isSuspect(store: ResultStore, correlationId: string): Promise<boolean> {
  return store.marked(suspectKey(correlationId));
}

/** Suspect marks share the bucket (and its TTL) under a prefix no correlation key has. */
const suspectKey = (correlationId: string) => `suspect.${resultKey(correlationId)}`;

/**
 * How one delivery of a durable call ended when it was handed back without an answer: whether the
 * call reached the upstream on it (`ran`), and the failure.
 */
export interface DeliveryOutcome {
  ran: boolean;
  code: string;
  message: string;
}

/** Records how delivery number `delivery` (1-based) of a call ended, for whoever dead-letters it later. */
export async function recordDelivery(store: ResultStore, correlationId: string, delivery: number, outcome: DeliveryOutcome): Promise<void> {
  await store.mark(deliveryKey(correlationId, delivery), new TextEncoder().encode(JSON.stringify(outcome)));
}

/** The recorded outcomes of deliveries 1 to `deliveries` of a call; undefined where none was recorded. */
export async function deliveryOutcomes(store: ResultStore, correlationId: string, deliveries: number): Promise<(DeliveryOutcome | undefined)[]> {
  const numbers = Array.from({ length: deliveries }, (_, index) => index + 1);
  return Promise.all(numbers.map(async (delivery) => parseOutcome(await store.read(deliveryKey(correlationId, delivery)).catch(() => undefined))));
}

const deliveryKey = (correlationId: string, delivery: number) => `delivery.${resultKey(correlationId)}.${delivery}`;

function parseOutcome(value: Uint8Array | undefined): DeliveryOutcome | undefined {
  if (!value) return undefined;
  try {
    const parsed = JSON.parse(new TextDecoder().decode(value)) as Partial<DeliveryOutcome>;
    // Written by any replica: only a well-formed record, with an error code's length, counts.
    if (typeof parsed.ran !== "boolean" || typeof parsed.code !== "string" || !/^[A-Z_]{1,64}$/.test(parsed.code) || typeof parsed.message !== "string") return undefined;
    return { ran: parsed.ran, code: parsed.code, message: parsed.message.slice(0, 512) };
  } catch {
    return undefined;
  }
}

/** Correlation ids made of key-safe characters are their own key; others are base64url-encoded under `b64.`. */
export function resultKey(correlationId: string): string {
  return /^[A-Za-z0-9_=-]{1,200}$/.test(correlationId) ? correlationId : `b64.${Buffer.from(correlationId).toString("base64url")}`;
}

/**
 * The answers of durable calls, by service and correlation id, in a JetStream KV bucket: the first
 * answer stored for a call is its answer. A redelivered request whose work already finished is
 * answered from here instead of running again; a cancelled call is marked here so that a queued copy
 * is never started; a gateway that lost an answer on the wire (its connection dropped) reads it here.
 * Keys start with the service, so that each executor's NATS user can be held to its own service's.
 */
import { Kvm, type KV } from "@nats-io/kv";
import { RESULTS_BUCKET } from "../../protocol/index.js";
import type { StorePosition } from "../codec.js";
import type { Bus } from "../connection.js";
import { jetStreamManagerOf, jetStreamOf, streamPlacementOf } from "../jetstream.js";
import { ensureStream, kvStream } from "../streams.js";
import { readBusJson } from "../bus-json.js";

/** An answer as stored: the encoded envelope, and when and under which revision it was stored. */
export interface StoredAnswer {
  data: Uint8Array;
  stored: StorePosition;
}

const STORE_TIMEOUT_MS = 2_000;
/** How long answers stay in the store unless the gateway that creates it is told otherwise (--result-ttl). */
export const DEFAULT_RESULT_TTL_MS = 15 * 60_000;

export const RESULTS_STREAM = kvStream(RESULTS_BUCKET, { allowDirect: true });

export class ResultStore {
  private constructor(
    private readonly kv: KV,
    private readonly bus: Bus,
  ) {}

  /** The gateway's: creates the bucket with this TTL unless it exists (an existing bucket keeps its own), and checks it. */
  static async create(bus: Bus, ttlMs: number): Promise<ResultStore> {
    const kvm = resultsKvm(bus);
    const create = (replicas: number) => kvm.create(RESULTS_BUCKET, { history: 1, ttl: ttlMs, maxValueSize: bus.maxPayload, replicas });
    await ensureStream(await jetStreamManagerOf(bus), RESULTS_STREAM, create, streamPlacementOf(bus));
    return new ResultStore(await kvm.open(RESULTS_BUCKET, { allow_direct: true }), bus);
  }

  /**
   * An executor's: the bucket a gateway created, used without reading its stream info (an executor's
   * user may not: the info lists every service's keys), read by direct get of one key.
   */
  static async bind(bus: Bus): Promise<ResultStore> {
    return new ResultStore(await resultsKvm(bus).open(RESULTS_BUCKET, { allow_direct: true }), bus);
  }

  /** The stored answer (an encoded envelope) of a call to `service`, if any. */
  async get(service: string, correlationId: string): Promise<StoredAnswer | undefined> {
    const entry = await this.kv.get(resultKey(service, correlationId));
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
   * The JSON record under `key` as `shape` reads it (delivery records are the store's only JSON: any
   * replica writes them); one that is not such a record is skipped as if absent, and counted.
   */
  async readRecord<T>(key: string, shape: (json: Record<string, unknown>) => T | undefined): Promise<T | undefined> {
    const value = await this.read(key);
    return value && readBusJson(this.bus, "delivery-record", value, shape, "invalid_record");
  }

  /**
   * Stores `answer` unless the call has one already. Resolves the call's answer: this one (`first`),
   * or the one stored before, which then wins.
   */
  async settle(service: string, correlationId: string, answer: Uint8Array): Promise<{ answer: Uint8Array; first: boolean }> {
    const key = resultKey(service, correlationId);
    try {
      await this.kv.create(key, answer);
      return { answer, first: true };
    } catch (err) {
      const stored = await this.get(service, correlationId);
      if (stored) return { answer: stored.data, first: false };
      throw err;
    }
  }
}

/** Marks a call whose upstream died while it ran: it may be the request that kills it (a poison). */
export async function markSuspect(store: ResultStore, service: string, correlationId: string): Promise<void> {
  await store.mark(suspectKey(service, correlationId));
}

export async function isSuspect(store: ResultStore, service: string, correlationId: string): Promise<boolean> {
  return store.marked(suspectKey(service, correlationId));
}

/** A request lost in a server restart is retried after 2 s rather than the default 5 s. */
function resultsKvm(bus: Bus): Kvm {
  return new Kvm(jetStreamOf(bus, { timeout: STORE_TIMEOUT_MS }));
}

/** Suspect marks (and delivery records, below) share the bucket and its TTL, under a token no correlation key has. */
const suspectKey = (service: string, correlationId: string) => `${service}.suspect.${correlationKey(correlationId)}`;

/** The key of a call's answer: `<service>.<correlation key>`. */
export function resultKey(service: string, correlationId: string): string {
  return `${service}.${correlationKey(correlationId)}`;
}

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
export async function recordDelivery(store: ResultStore, service: string, correlationId: string, delivery: number, outcome: DeliveryOutcome): Promise<void> {
  await store.mark(deliveryKey(service, correlationId, delivery), new TextEncoder().encode(JSON.stringify(outcome)));
}

/** The recorded outcomes of deliveries 1 to `deliveries` of a call; undefined where none was recorded. */
export async function deliveryOutcomes(store: ResultStore, service: string, correlationId: string, deliveries: number): Promise<(DeliveryOutcome | undefined)[]> {
  const numbers = Array.from({ length: deliveries }, (_, index) => index + 1);
  return Promise.all(numbers.map((delivery) => store.readRecord(deliveryKey(service, correlationId, delivery), outcomeOf).catch(() => undefined)));
}

const deliveryKey = (service: string, correlationId: string, delivery: number) => `${service}.delivery.${correlationKey(correlationId)}.${delivery}`;

/** Only a well-formed record, with an error code's length, counts. */
function outcomeOf(json: Record<string, unknown>): DeliveryOutcome | undefined {
  const { ran, code, message } = json;
  if (typeof ran !== "boolean" || typeof code !== "string" || !/^[A-Z_]{1,64}$/.test(code) || typeof message !== "string") return undefined;
  return { ran, code, message: message.slice(0, 512) };
}

/** Correlation ids made of key-safe characters are their own key; others are base64url-encoded under `b64.`. */
function correlationKey(correlationId: string): string {
  return /^[A-Za-z0-9_=-]{1,200}$/.test(correlationId) ? correlationId : `b64.${Buffer.from(correlationId).toString("base64url")}`;
}

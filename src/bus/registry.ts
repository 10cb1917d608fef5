/**
 * The live registry of services. Each executor instance keeps its capability announcement in a
 * JetStream KV bucket (so a restarted gateway reads it at once) and publishes heartbeats on core NATS
 * (so a killed instance is noticed within a few intervals). The bucket's TTL collects what dead
 * instances leave behind.
 */
import { randomUUID } from "node:crypto";
import { Kvm, KvWatchInclude, type KV, type KvEntry } from "@nats-io/kv";
import type { Subscription } from "@nats-io/transport-node";
import {
  createEnvelope,
  parseHeartbeatSubject,
  parseRegistryKey,
  REGISTRY_BUCKET,
  registryKey,
  subjects,
  formatIssues,
  ToolEntry,
  type AgentProfile,
  type ErrorCode,
  type AnnouncePayload,
  type Catalog,
  type CachePlan,
  type DeliveryPlan,
  type HeartbeatPayload,
  type InstanceStatus,
} from "../protocol/index.js";
import { dropReason, natsConnectionOf, type Bus } from "./connection.js";
import { jetStreamOf } from "./jetstream.js";
import { ensureKv } from "./kv-bucket.js";
import { keepWatching } from "./kv-watch.js";
import { kvStream } from "./streams.js";

/** Entries not refreshed for this long disappear from the bucket. */
export const REGISTRY_TTL_MS = 30_000;
/** Announcements are re-put this often, well inside the TTL. */
export const ANNOUNCE_REFRESH_MS = 10_000;
export const DEFAULT_HEARTBEAT_MS = 2_000;
/** An instance that misses this many heartbeats is considered gone. */
export const MISSED_HEARTBEATS = 3;
/** Slack on top of the missed heartbeats before an instance is dropped. */
const EVICTION_SLACK_MS = 250;
/** How often a view looks for instances that missed their heartbeats (PROTOCOL.md §6.2 states the bound this gives). */
const SWEEP_EVERY_MS = 500;

export const REGISTRY_STREAM = kvStream(REGISTRY_BUCKET);

/** The gateway's: creates the registry bucket unless it exists, and checks it (streams.ts). */
export async function createRegistryBucket(bus: Bus): Promise<KV> {
  return ensureKv(bus, REGISTRY_BUCKET, { ttlMs: REGISTRY_TTL_MS });
}

/** What an instance says about itself; the presence adds identity, status and timing. */
export interface AnnouncementInput {
  catalog: Catalog;
  capabilities: Record<string, unknown>;
  server_info?: Record<string, unknown>;
  protocol_version?: string;
  instructions?: string;
  /** Native agents say who they are (PROTOCOL.md §13.1). */
  profile?: AgentProfile;
  /** How the service's tools/call requests travel (PROTOCOL.md §15.2). */
  delivery?: DeliveryPlan;
  /** Opt-in cache TTLs for the service's read-only tools and resources (PROTOCOL.md §18). */
  cache?: CachePlan;
}

export interface PresenceOptions {
  service: string;
  instance: string;
  intervalMs?: number;
  /** Reads the instance's current status and load for each heartbeat. */
  load: () => { status: InstanceStatus; inflight: number; handled: number };
}

/** One instance's presence on the bus: announcement in the registry plus periodic heartbeats. */
export class InstancePresence {
  private kv: KV | undefined;
  private timer: NodeJS.Timeout | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  private announcement: AnnouncementInput | undefined;
  private lastAnnounced = 0;
  private readonly startedAt = new Date().toISOString();
  private readonly intervalMs: number;
  private readonly key: string;

  constructor(
    private readonly bus: Bus,
    private readonly options: PresenceOptions,
  ) {
    this.intervalMs = options.intervalMs ?? DEFAULT_HEARTBEAT_MS;
    this.key = registryKey(options.service, options.instance);
  }

  /** Announces the instance in the registry bucket, which must exist: a gateway creates it. */
  async start(announcement: AnnouncementInput): Promise<void> {
    this.kv = await new Kvm(jetStreamOf(this.bus)).open(REGISTRY_BUCKET);
    await this.announce(announcement);
    this.timer = setInterval(() => this.beat(), this.intervalMs);
    this.timer.unref();
    // Its own timer, so the entry outlives the bucket TTL whatever the heartbeat interval.
    this.refreshTimer = setInterval(() => void this.refresh(), ANNOUNCE_REFRESH_MS);
    this.refreshTimer.unref();
  }

  /** Publishes a new announcement (the catalog or status changed). */
  async announce(announcement: AnnouncementInput): Promise<void> {
    this.announcement = announcement;
    if (!this.kv) return;
    const { status } = this.options.load();
    const sealKey = this.bus.codec.servedSealKey(this.options.service);
    const envelope = createEnvelope(
      "agent_heartbeat",
      {
        kind: "announce",
        service: this.options.service,
        instance: this.options.instance,
        status,
        interval_ms: this.intervalMs,
        started_at: this.startedAt,
        ...announcement,
        ...(sealKey ? { seal_key: sealKey } : {}),
      },
      { sender: this.options.instance },
    );
    this.lastAnnounced = Date.now();
    await this.kv.put(this.key, this.bus.codec.encode(envelope));
  }

  private beat(): void {
    try {
      this.publishHeartbeat(this.options.load().status);
    } catch (err) {
      this.bus.logger.warn({ err }, "heartbeat failed");
    }
  }

  private async refresh(): Promise<void> {
    if (!this.announcement || Date.now() - this.lastAnnounced < ANNOUNCE_REFRESH_MS / 2) return;
    await this.announce(this.announcement).catch((err: unknown) => this.bus.logger.warn({ err }, "announcement refresh failed"));
  }

  private publishHeartbeat(status: InstanceStatus): void {
    const nc = natsConnectionOf(this.bus);
    if (nc.isClosed()) return;
    const load = this.options.load();
    const envelope = createEnvelope(
      "agent_heartbeat",
      {
        kind: "heartbeat",
        service: this.options.service,
        instance: this.options.instance,
        status,
        interval_ms: this.intervalMs,
        inflight: load.inflight,
        handled: load.handled,
      },
      { sender: this.options.instance },
    );
    nc.publish(subjects.heartbeat(this.options.service, this.options.instance), this.bus.codec.encode(envelope));
  }

  /**
   * Leaves the registry at once: a last heartbeat that says "stopping" and the entry deleted. Nothing
   * is announced after that (an executor finishing its calls may still see its catalog change).
   */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    clearInterval(this.refreshTimer);
    this.timer = this.refreshTimer = undefined;
    const kv = this.kv;
    this.kv = undefined;
    try {
      this.publishHeartbeat("stopping");
      await kv?.delete(this.key);
    } catch (err) {
      this.bus.logger.debug({ err }, "could not withdraw from the registry");
    }
  }
}

/** An announcement, heartbeat or announced tool a registry reader refused. */
export interface RegistryProblem {
  service: string;
  instance: string;
  message: string;
  /** Why, when message security refused it (SIGNATURE_INVALID, UNTRUSTED_SIGNER, ...); else the message is invalid. */
  code?: ErrorCode;
}

export interface LiveInstance {
  service: string;
  instance: string;
  announcement: AnnouncePayload;
  lastSeen: number;
  heartbeat?: HeartbeatPayload;
}

/**
 * What a gateway (or `dmcp status`) knows of the services on the bus, kept current from the registry
 * bucket and the heartbeats. `onChange` fires when an instance joins, leaves or changes its catalog.
 */
export class RegistryView {
  private readonly instances = new Map<string, LiveInstance>();
  /** Services whose announced seal key this process cannot use (no message security), warned about once. */
  private readonly warnedInClear = new Set<string>();
  private readonly listeners = new Set<() => void>();
  private readonly lostListeners = new Set<(instance: LiveInstance) => void>();
  private readonly invalidListeners = new Set<(problem: RegistryProblem) => void>();
  /** Who receives, for replay protection: each view remembers the ids it accepted. */
  private readonly receiver = `registry-${randomUUID().slice(0, 8)}`;
  private heartbeatSub: Subscription | undefined;
  private watcher: { stop(): void } | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private kv: KV | undefined;

  constructor(
    private readonly bus: Bus,
    /** `calls`: this process calls the services it sees (a gateway), and says when it cannot seal to one that announces a key. */
    private readonly options: { calls?: boolean } = {},
  ) {}

  async start(): Promise<void> {
    this.kv = await createRegistryBucket(this.bus);
    this.heartbeatSub = natsConnectionOf(this.bus).subscribe(subjects.heartbeatAll(), {
      callback: (err, msg) => {
        if (err) return;
        // A throwing callback would stop the connection's reader: bad input is logged, never thrown.
        try {
          this.onHeartbeat(msg.subject, msg.data);
        } catch (error) {
          this.bus.logger.warn({ err: error, subject: msg.subject }, "ignoring bad heartbeat");
        }
      },
    });
    await this.watchRegistry(this.kv);
    this.sweeper = setInterval(() => this.sweep(), SWEEP_EVERY_MS);
    this.sweeper.unref();
  }

  /**
   * Watches the bucket (again whenever the watch ends: kv-watch.ts), and waits for the values it held
   * at the start, but never long: a bucket still filling must not block start-up.
   */
  private async watchRegistry(kv: KV): Promise<void> {
    // How many entries the bucket holds (one message per key): the watch delivers each of them first.
    // (The iterator's own pending count is what it has buffered so far, often none yet.)
    const stored = (await kv.status()).values;
    let markInitialDone: () => void = () => undefined;
    const initialDone = new Promise<void>((resolve) => (markInitialDone = resolve));
    if (stored === 0) markInitialDone();
    let seen = 0;
    this.watcher = await keepWatching(
      kv,
      (entry) => {
        try {
          if (entry.operation === "PUT") this.onAnnouncement(entry.key, entry, !entry.isUpdate);
          else this.onDeleted(entry.key);
        } finally {
          seen++;
          if (seen >= stored || entry.isUpdate) markInitialDone();
        }
      },
      { include: KvWatchInclude.LastValue, what: "registry", logger: this.bus.logger },
    );
    await Promise.race([initialDone, new Promise<void>((resolve) => setTimeout(resolve, 2000).unref())]);
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Called when an instance is evicted for missing its heartbeats (not when it leaves in order). */
  onLost(listener: (instance: LiveInstance) => void): () => void {
    this.lostListeners.add(listener);
    return () => this.lostListeners.delete(listener);
  }

  /**
   * Called for each announcement that fails validation (the instance is not listed), for each
   * announced tool that breaks MCP's rules (it is left out of the catalog), and for each announcement
   * or heartbeat that message security rejects (with its `code`).
   */
  onInvalid(listener: (problem: RegistryProblem) => void): () => void {
    this.invalidListeners.add(listener);
    return () => this.invalidListeners.delete(listener);
  }

  list(): LiveInstance[] {
    return [...this.instances.values()].sort((a, b) => (a.service === b.service ? a.instance.localeCompare(b.instance) : a.service.localeCompare(b.service)));
  }

  get(service: string, instance: string): LiveInstance | undefined {
    return this.instances.get(registryKey(service, instance));
  }

  async stop(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.watcher?.stop();
    this.heartbeatSub?.unsubscribe();
  }

  /**
   * `initial` entries were already in the bucket when the watch began: they may belong to instances
   * that died since, so they get two heartbeat intervals to prove they are alive instead of three
   * (one was too few on a loaded machine: a live instance whose first heartbeat came late dropped out
   * of a freshly started gateway's catalog for a moment).
   */
  private onAnnouncement(key: string, entry: Pick<KvEntry, "value" | "created" | "revision">, initial: boolean): void {
    const ids = parseRegistryKey(key);
    if (!ids) {
      this.bus.dropped("registry", "invalid_subject");
      return;
    }
    const storedAt = initial ? entry.created : undefined;
    const decoded = this.bus.codec.decode(entry.value, {
      receiver: this.receiver,
      maxBytes: Number.POSITIVE_INFINITY,
      speaksFor: ids.service,
      stored: { at: entry.created, tag: entry.revision },
    });
    if (!decoded.ok || decoded.envelope.type !== "agent_heartbeat" || decoded.envelope.payload.kind !== "announce") {
      const message = `announcement rejected: ${decoded.ok ? `expected an agent_heartbeat of kind announce, got ${decoded.envelope.type}` : decoded.error.message}`;
      this.bus.dropped("registry", dropReason(decoded));
      const code = !decoded.ok && this.bus.codec.isRejection(decoded.error) ? { code: decoded.error.code } : {};
      for (const listener of this.invalidListeners) listener({ ...ids, message, ...code });
      return;
    }
    // The key is what trust and listing go by: an announcement speaks only for the instance its key names.
    const { service, instance } = decoded.envelope.payload;
    if (service !== ids.service || instance !== ids.instance) {
      const message = `announcement rejected: it names ${service}/${instance}, its registry key ${key}`;
      this.bus.dropped("registry", "key_mismatch");
      for (const listener of this.invalidListeners) listener({ ...ids, message });
      return;
    }
    const announcement = this.withValidTools(decoded.envelope.payload);
    const previous = this.instances.get(key);
    const now = Date.now();
    const lastSeen = storedAt ? Math.max(storedAt.getTime(), now - announcement.interval_ms * (MISSED_HEARTBEATS - 2)) : now;
    this.instances.set(key, {
      service: announcement.service,
      instance: announcement.instance,
      announcement,
      lastSeen: previous ? Math.max(previous.lastSeen, lastSeen) : lastSeen,
      ...(previous?.heartbeat ? { heartbeat: previous.heartbeat } : {}),
    });
    this.learnSealKey(announcement.service);
    if (!previous || JSON.stringify(previous.announcement.catalog) !== JSON.stringify(announcement.catalog) || previous.announcement.status !== announcement.status) {
      this.emit();
    }
  }

  /**
   * Calls to a service are sealed to the key its live instances announce, only while they all
   * announce the same one: a replica without it could not open them (PROTOCOL.md §14.3).
   */
  private learnSealKey(service: string): void {
    const keys = new Set([...this.instances.values()].filter((live) => live.service === service).map((live) => live.announcement.seal_key));
    const key = keys.size === 1 ? [...keys][0] : undefined;
    this.bus.codec.learnSealKey(service, key);
    if (key !== undefined && this.options.calls && this.bus.codec.seals === false && !this.warnedInClear.has(service)) {
      this.warnedInClear.add(service);
      this.bus.logger.warn(
        { service },
        "the service announces a seal key, but this process runs without message security: its calls to it travel in clear (give it a security option, such as --seal-to or --sign-key, to seal them)",
      );
    }
  }

  /** Drops (and reports) tools without a name or an object inputSchema: clients would reject the list. */
  private withValidTools(announcement: AnnouncePayload): AnnouncePayload {
    const tools = announcement.catalog.tools.filter((tool) => {
      const checked = ToolEntry.safeParse(tool);
      if (checked.success) return true;
      const message = `tool ${JSON.stringify(tool.name)}: ${formatIssues(checked.error.issues)}`;
      for (const listener of this.invalidListeners) listener({ service: announcement.service, instance: announcement.instance, message });
      return false;
    });
    return tools.length === announcement.catalog.tools.length ? announcement : { ...announcement, catalog: { ...announcement.catalog, tools } };
  }

  private onHeartbeat(subject: string, data: Uint8Array): void {
    const ids = parseHeartbeatSubject(subject);
    if (!ids) {
      this.bus.dropped("heartbeat", "invalid_subject");
      return;
    }
    const decoded = this.bus.codec.decode(data, { receiver: this.receiver, speaksFor: ids.service });
    if (!decoded.ok && this.bus.codec.isRejection(decoded.error)) {
      // One message per instance, code and signer (not per heartbeat), so that a reader reports it once.
      const signer = (decoded.error.data as { signer?: string } | undefined)?.signer;
      const message = `heartbeat rejected: ${decoded.error.code}${signer ? ` (signed by ${signer})` : ""}`;
      for (const listener of this.invalidListeners) listener({ ...ids, message, code: decoded.error.code });
    }
    if (!decoded.ok || decoded.envelope.type !== "agent_heartbeat" || decoded.envelope.payload.kind !== "heartbeat") {
      this.bus.dropped("heartbeat", dropReason(decoded));
      return;
    }
    const heartbeat = decoded.envelope.payload;
    // A heartbeat speaks for the instance its subject names (PROTOCOL.md §6.2), as an announcement for its key.
    if (heartbeat.service !== ids.service || heartbeat.instance !== ids.instance) {
      this.bus.dropped("heartbeat", "subject_mismatch");
      return;
    }
    const key = registryKey(ids.service, ids.instance);
    const known = this.instances.get(key);
    if (heartbeat.status === "stopping") {
      this.remove(key);
      return;
    }
    if (known) {
      known.lastSeen = Date.now();
      known.heartbeat = heartbeat;
      return;
    }
    // An instance we evicted (or never saw) is alive: read its announcement again.
    void this.kv?.get(key).then(
      (entry) => {
        if (entry && entry.operation === "PUT") this.onAnnouncement(key, entry, false);
      },
      () => undefined,
    );
  }

  private sweep(): void {
    const now = Date.now();
    for (const [key, live] of this.instances) {
      const interval = live.heartbeat?.interval_ms ?? live.announcement.interval_ms;
      if (now - live.lastSeen > interval * MISSED_HEARTBEATS + EVICTION_SLACK_MS) {
        this.bus.logger.warn({ service: live.service, instance: live.instance }, "instance missed its heartbeats; removing it");
        this.remove(key);
        for (const listener of this.lostListeners) listener(live);
      }
    }
  }

  /**
   * A delete or purge carries no signature, so where signatures are required anyone who may write the
   * key could forge one: an instance then leaves only by its signed "stopping" heartbeat or when its
   * heartbeats stop (PROTOCOL.md §6.3).
   */
  private onDeleted(key: string): void {
    if (this.bus.codec.requireSignatures) {
      this.bus.dropped("registry", "signature_required");
      return;
    }
    this.remove(key);
  }

  private remove(key: string): void {
    const removed = this.instances.get(key);
    if (!this.instances.delete(key)) return;
    this.learnSealKey(removed!.service);
    this.emit();
  }

  private emit(): void {
    for (const listener of this.listeners) {
      try {
        listener();
      } catch (err) {
        this.bus.logger.error({ err }, "registry listener failed");
      }
    }
  }
}

/**
 * The dashboard's model: what the live dashboard shows, gathered cheaply inside the gateway process.
 * The registry's services and replicas and the gateway's calls in flight and failed come from the
 * gateway itself; the dMCP traffic the gateway sends and receives (metadata only, never payloads) and
 * the `error_notification`s on the bus come from the traffic tap (traffic-tap.ts). Views are kept in
 * bounded rings and sent to watchers in batches.
 */
import type { Bus, BusSubscription } from "../../../src/bus/index.js";
import { isDmcpError, ErrorCode } from "../../../src/protocol/index.js";
import type { Logger } from "../../../src/util/index.js";
import { NAME_SEPARATOR, type CacheStats, type Gateway, type GatewayCore } from "../../../src/gateway/index.js";
import { clip } from "./clip.js";
import type { EnvelopeMeta } from "./envelope-scanner.js";
import { Ring } from "./ring.js";
import { TrafficTap, type BusErrorReport } from "./traffic-tap.js";

export interface MonitorOptions {
  /** The gateway's bus. The gateway must be given `monitor.bus` (the same connection, tapped). */
  bus: Bus;
  logger: Logger;
  /** Bus messages kept for the traffic view. */
  trafficLimit?: number;
  /** Errors kept for the recent-errors view. */
  errorLimit?: number;
  /** How often watchers get a batched update. */
  flushMs?: number;
}

/** One dMCP message the gateway sent (`out`) or received (`in`): metadata only. */
export interface TrafficEntry {
  seq: number;
  /** Epoch milliseconds. */
  time: number;
  dir: "in" | "out";
  subject: string;
  /** The envelope's `type`, `no_responders` for a NATS 503 status, or `malformed`. */
  type: string;
  sender: string;
  /** Bytes on the wire (the whole message). */
  size: number;
  correlationId: string;
}

export interface ErrorEntry {
  seq: number;
  time: number;
  /** `gateway`: a call of this gateway failed; `bus`: an error_notification on dmcp.v1.err.>. */
  source: "gateway" | "bus";
  code: string;
  message: string;
  service?: string;
  method?: string;
  target?: string;
  durationMs?: number;
  sender?: string;
  subject?: string;
  correlationId?: string;
}

export interface CallView {
  id: number;
  service: string;
  method: string;
  target: string;
  transport: string;
  startedAt: number;
}

export interface ReplicaView {
  instance: string;
  status: string;
  /** From the last heartbeat; null before the first one. */
  inflight: number | null;
  handled: number | null;
  /** Epoch ms of the last heartbeat or announcement. */
  lastSeen: number;
  heartbeatSeen: boolean;
  startedAt: string;
  server: string;
}

export interface ServiceView {
  name: string;
  replicas: ReplicaView[];
  /** `exposedAs` is the name MCP clients see (qualified when several services offer the name). */
  tools: { name: string; exposedAs: string; description: string }[];
  resources: number;
  prompts: number;
  /** Calls this gateway routed to the service, and how many failed. */
  calls: number;
  failed: number;
}

export interface Counters {
  calls: number;
  ok: number;
  failed: number;
  cancelled: number;
  inflight: number;
  busMessages: number;
  busBytes: number;
  malformed: number;
  busErrors: number;
  /** Traffic entries not sent to watchers because a batch overflowed. */
  dropped: number;
}

export interface GatewayStatus {
  id: string;
  ready: boolean;
  busConnected: boolean;
  sessions: number;
  /** What the gateway cache did, or null when it is off. */
  cache: CacheStats | null;
}

export interface DashboardState {
  /** Server time (epoch ms), so a browser can show ages without trusting its own clock. */
  now: number;
  gateway: GatewayStatus | null;
  services: ServiceView[];
  calls: CallView[];
  errors: ErrorEntry[];
  traffic: TrafficEntry[];
  counters: Counters;
  limits: { traffic: number; errors: number };
}

/** What changed since the last update; sections that did not change are left out. */
export interface MonitorUpdate {
  now: number;
  traffic?: TrafficEntry[];
  errors?: ErrorEntry[];
  calls?: CallView[];
  counters?: Counters;
  services?: ServiceView[];
  gateway?: GatewayStatus;
}

const MAX_TRACKED_CALLS = 1000;

export class GatewayMonitor {
  /** The bus to give the gateway: the same connection, with its dMCP traffic reported here. */
  readonly bus: Bus;
  /** The same connection untapped, for the tap's own subscription. */
  private readonly raw: Bus;
  private readonly tap: TrafficTap;
  private readonly logger: Logger;
  private readonly trafficLimit: number;
  private readonly errorLimit: number;
  private readonly flushMs: number;
  private readonly traffic: Ring<TrafficEntry>;
  private readonly errors: Ring<ErrorEntry>;
  private readonly watchers = new Set<(update: MonitorUpdate) => void>();
  private readonly calls = new Map<number, CallView>();
  private readonly perService = new Map<string, { calls: number; failed: number }>();
  private readonly counters: Counters = { calls: 0, ok: 0, failed: 0, cancelled: 0, inflight: 0, busMessages: 0, busBytes: 0, malformed: 0, busErrors: 0, dropped: 0 };
  private pendingTraffic: TrafficEntry[] = [];
  private pendingErrors: ErrorEntry[] = [];
  private callsChanged = false;
  private lastSent = { counters: "", services: "", gateway: "" };
  private seq = 0;
  private callSeq = 0;
  private gateway: Gateway | undefined;
  private errorSub: BusSubscription | undefined;
  private timer: NodeJS.Timeout | undefined;
  private detach: (() => void) | undefined;

  constructor(options: MonitorOptions) {
    this.logger = options.logger;
    this.trafficLimit = options.trafficLimit ?? 500;
    this.errorLimit = options.errorLimit ?? 100;
    this.flushMs = options.flushMs ?? 250;
    this.traffic = new Ring(this.trafficLimit);
    this.errors = new Ring(this.errorLimit);
    this.raw = options.bus;
    this.tap = new TrafficTap({
      watching: () => this.watching,
      count: (bytes) => this.count(bytes),
      record: (dir, subject, size, meta) => this.record(dir, subject, size, meta),
      busError: (report) => this.onBusError(report),
      unreadable: (err) => {
        this.counters.malformed++;
        this.logger.debug({ err }, "monitor: ignoring a message it could not read");
      },
    });
    this.bus = options.bus.tapped(this.tap);
  }

  /** Starts watching a gateway built on `this.bus`: its calls, its registry, and errors on the bus. */
  attach(gateway: Gateway): void {
    this.gateway = gateway;
    this.detach = this.observeCalls(gateway.core);
    this.errorSub = this.tap.watchErrors(this.raw);
  }

  stop(): void {
    this.errorSub?.unsubscribe();
    this.errorSub = undefined;
    this.detach?.();
    this.detach = undefined;
    this.watchers.clear();
    this.stopTimer();
  }

  /** Everything the dashboard shows, now. */
  snapshot(): DashboardState {
    return {
      now: Date.now(),
      gateway: this.gatewayStatus(),
      services: this.services(),
      calls: [...this.calls.values()],
      errors: this.errors.toArray(),
      traffic: this.traffic.toArray(),
      counters: { ...this.counters },
      limits: { traffic: this.trafficLimit, errors: this.errorLimit },
    };
  }

  get watching(): boolean {
    return this.watchers.size > 0;
  }

  /**
   * Calls `listener` with batched updates (every `flushMs` while something changed) until the returned
   * function is called. Traffic is only read while at least one listener watches.
   */
  watch(listener: (update: MonitorUpdate) => void): () => void {
    this.watchers.add(listener);
    if (!this.timer) {
      // What piled up before anyone watched is in the snapshot a new watcher starts from.
      this.pendingTraffic = [];
      this.pendingErrors = [];
      this.timer = setInterval(() => this.flush(), this.flushMs);
      this.timer.unref();
    }
    return () => {
      this.watchers.delete(listener);
      if (this.watchers.size === 0) this.stopTimer();
    };
  }

  // --- what the traffic tap reports ----------------------------------------------------------------

  private onBusError(report: BusErrorReport): void {
    this.counters.busErrors++;
    this.addError({ seq: ++this.seq, time: Date.now(), source: "bus", ...report });
  }

  private count(bytes: number): void {
    this.counters.busMessages++;
    this.counters.busBytes += bytes;
  }

  private record(dir: "in" | "out", subject: string, size: number, meta: EnvelopeMeta | undefined): void {
    if (!meta) this.counters.malformed++;
    this.push({
      seq: ++this.seq,
      time: Date.now(),
      dir,
      subject: clip(subject),
      type: meta ? (meta.type ?? "?") : "malformed",
      sender: meta?.sender_id ?? "",
      size,
      correlationId: meta?.correlation_id ?? "",
    });
  }

  private push(entry: TrafficEntry): void {
    this.traffic.push(entry);
    this.pendingTraffic.push(entry);
    // A burst between two flushes: watchers get the newest, and the count of what they missed.
    if (this.pendingTraffic.length > this.trafficLimit) {
      this.pendingTraffic.shift();
      this.counters.dropped++;
    }
  }

  private addError(entry: ErrorEntry): void {
    this.errors.push(entry);
    if (this.watching) {
      this.pendingErrors.push(entry);
      if (this.pendingErrors.length > this.errorLimit) this.pendingErrors.shift();
    }
  }

  // --- the gateway's calls -------------------------------------------------------------------------

  /** Follows every call the gateway routes (both transports, all methods) through the core's hook. */
  private observeCalls(core: GatewayCore): () => void {
    return core.observeCalls(({ service, method, params, transport }) => {
      const call = this.callStarted(service, method, params, transport);
      return (outcome, err) => this.callEnded(call, outcome === "ok" || outcome === "tool_error" ? outcome : "error", err);
    });
  }

  private callStarted(service: string, method: string, params: Record<string, unknown>, transport: string): CallView {
    const call: CallView = {
      id: ++this.callSeq,
      service,
      method,
      target: clip(targetOf(method, params), 200),
      transport,
      startedAt: Date.now(),
    };
    this.counters.calls++;
    this.counters.inflight++;
    // Past the cap a call is counted but not listed: the gateway bounds its calls, the view must too.
    if (this.calls.size < MAX_TRACKED_CALLS) this.calls.set(call.id, call);
    this.callsChanged = true;
    return call;
  }

  private callEnded(call: CallView, outcome: "ok" | "tool_error" | "error", err?: unknown): void {
    this.calls.delete(call.id);
    this.counters.inflight--;
    this.callsChanged = true;
    const service = call.service ? this.serviceCounters(call.service) : undefined;
    if (service) service.calls++;
    if (outcome === "ok") {
      this.counters.ok++;
      return;
    }
    if (outcome === "error" && isDmcpError(err, ErrorCode.Cancelled)) {
      // The client cancelled: not a failure of anything behind the gateway.
      this.counters.cancelled++;
      return;
    }
    this.counters.failed++;
    if (service) service.failed++;
    const code = outcome === "tool_error" ? "TOOL_ERROR" : isDmcpError(err) ? err.code : ErrorCode.Internal;
    // A tool error's text is result content (payload): only its existence is shown.
    const message = outcome === "tool_error" ? "the tool returned a result with isError: true" : err instanceof Error ? err.message : String(err);
    this.addError({
      seq: ++this.seq,
      time: Date.now(),
      source: "gateway",
      code,
      message: clip(message),
      ...(call.service ? { service: call.service } : {}),
      method: call.method,
      target: call.target,
      durationMs: Date.now() - call.startedAt,
    });
  }

  private serviceCounters(service: string): { calls: number; failed: number } {
    let counters = this.perService.get(service);
    if (!counters) {
      counters = { calls: 0, failed: 0 };
      this.perService.set(service, counters);
    }
    return counters;
  }

  // --- views and updates ---------------------------------------------------------------------------

  private gatewayStatus(): GatewayStatus | null {
    const gateway = this.gateway;
    if (!gateway) return null;
    return { id: gateway.id, ready: gateway.core.ready, busConnected: gateway.core.busConnected, sessions: gateway.sessionCount, cache: gateway.core.cache?.stats() ?? null };
  }

  private services(): ServiceView[] {
    const core = this.gateway?.core;
    if (!core) return [];
    const colliding = new Set(core.catalog.collisions.filter((c) => c.kind === "tool").map((c) => c.name));
    const byName = new Map<string, ServiceView>();
    for (const live of core.instances) {
      const { announcement } = live;
      let service = byName.get(live.service);
      if (!service) {
        const counters = this.perService.get(live.service);
        service = { name: live.service, replicas: [], tools: [], resources: 0, prompts: 0, calls: counters?.calls ?? 0, failed: counters?.failed ?? 0 };
        byName.set(live.service, service);
      }
      // Replicas of a service announce the same catalog; the union covers one caught mid-update.
      for (const tool of announcement.catalog.tools) {
        if (service.tools.some((t) => t.name === tool.name)) continue;
        const description = typeof tool.description === "string" ? clip(tool.description, 160) : "";
        service.tools.push({ name: tool.name, exposedAs: colliding.has(tool.name) ? `${live.service}${NAME_SEPARATOR}${tool.name}` : tool.name, description });
      }
      service.resources = Math.max(service.resources, announcement.catalog.resources.length);
      service.prompts = Math.max(service.prompts, announcement.catalog.prompts.length);
      const info = announcement.server_info;
      service.replicas.push({
        instance: live.instance,
        status: live.heartbeat?.status ?? announcement.status,
        inflight: live.heartbeat?.inflight ?? null,
        handled: live.heartbeat?.handled ?? null,
        lastSeen: live.lastSeen,
        heartbeatSeen: live.heartbeat !== undefined,
        startedAt: announcement.started_at,
        server: info ? clip(`${String(info.name ?? "")} ${String(info.version ?? "")}`.trim(), 120) : "",
      });
    }
    return [...byName.values()];
  }

  private flush(): void {
    const update: MonitorUpdate = { now: Date.now() };
    let changed = false;
    if (this.pendingTraffic.length > 0) {
      update.traffic = this.pendingTraffic;
      this.pendingTraffic = [];
      changed = true;
    }
    if (this.pendingErrors.length > 0) {
      update.errors = this.pendingErrors;
      this.pendingErrors = [];
      changed = true;
    }
    if (this.callsChanged) {
      update.calls = [...this.calls.values()];
      this.callsChanged = false;
      changed = true;
    }
    // Services and status have no change events of their own (heartbeats update them in place):
    // compare with what was sent last, a few kilobytes a tick.
    changed = this.ifChanged("counters", { ...this.counters }, (value) => (update.counters = value)) || changed;
    changed = this.ifChanged("services", this.services(), (value) => (update.services = value)) || changed;
    const status = this.gatewayStatus();
    if (status) changed = this.ifChanged("gateway", status, (value) => (update.gateway = value)) || changed;
    if (!changed) return;
    for (const watcher of this.watchers) {
      try {
        watcher(update);
      } catch (err) {
        this.logger.warn({ err }, "monitor: a dashboard watcher failed");
      }
    }
  }

  private ifChanged<T>(key: keyof GatewayMonitor["lastSent"], value: T, set: (value: T) => void): boolean {
    const fingerprint = JSON.stringify(value);
    if (fingerprint === this.lastSent[key]) return false;
    this.lastSent[key] = fingerprint;
    set(value);
    return true;
  }

  private stopTimer(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.lastSent = { counters: "", services: "", gateway: "" };
  }
}

function targetOf(method: string, params: Record<string, unknown>): string {
  const ref = (typeof params.ref === "object" && params.ref !== null ? params.ref : {}) as Record<string, unknown>;
  const source = method === "completion/complete" ? ref : params;
  const value = source.name ?? source.uri;
  return typeof value === "string" ? value : "";
}

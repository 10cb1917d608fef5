/**
 * What the live dashboard shows, gathered cheaply inside the gateway process: the registry's services
 * and replicas, the gateway's calls in flight and its failed calls, `error_notification`s on the bus,
 * and the dMCP traffic the gateway sends and receives (metadata only, never payloads).
 *
 * Why the traffic comes from a tap on the gateway's own bus, and not from a subscription to
 * `dmcp.v1.>`: NATS answers a request with "no responders" only when nothing at all subscribes to its
 * subject. A wildcard subscription on the request subjects would count as a responder, and every
 * caller on the bus (this gateway, other gateways, agents) would wait for its deadline instead of
 * getting NO_RESPONDERS at once. So the monitor listens where listening changes nothing: it taps the
 * bus it hands to the gateway (`bus.tapped`: requests out, replies in, the heartbeats and context
 * updates the gateway subscribes to anyway) and holds one subscription of its own, to `dmcp.v1.err.>`,
 * which nothing else reads. Requests between other callers and executors are not seen.
 *
 * Cost: with no dashboard client watching, traffic is neither parsed nor kept (a flag test per
 * message); while one watches, each message's top-level envelope fields are read by a byte scanner
 * that never builds the payload. Every buffer is bounded.
 */
import type { Bus, BusMessage, BusSubscription } from "../../../src/bus/index.js";
import { decodeEnvelope, isDmcpError, SUBJECT_ROOT, subjects, ErrorCode } from "../../../src/protocol/index.js";
import type { Logger } from "../../../src/util/logger.js";
import { NAME_SEPARATOR } from "../../../src/gateway/catalog/catalog.js";
import type { GatewayCore } from "../../../src/gateway/core.js";
import type { Gateway } from "../../../src/gateway/gateway.js";

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

const ROOT_PREFIX = `${SUBJECT_ROOT}.`;
const ERRORS_PREFIX = subjects.errorsAll().slice(0, -1);
/** Reply subjects of requests still waiting, so their answers can be listed (bounded: calls may never be answered). */
const MAX_AWAITED_REPLIES = 2000;
const MAX_TRACKED_CALLS = 1000;
/** error_notifications larger than this are not parsed for their message. */
const MAX_ERROR_BYTES = 64 * 1024;
const TEXT_LIMIT = 300;

export class GatewayMonitor {
  /** The bus to give the gateway: the same connection, with its dMCP traffic reported here. */
  readonly bus: Bus;
  /** The same connection untapped, for the monitor's own subscription. */
  private readonly raw: Bus;
  private readonly logger: Logger;
  private readonly trafficLimit: number;
  private readonly errorLimit: number;
  private readonly flushMs: number;
  private readonly traffic: Ring<TrafficEntry>;
  private readonly errors: Ring<ErrorEntry>;
  private readonly watchers = new Set<(update: MonitorUpdate) => void>();
  private readonly awaitedReplies = new Set<string>();
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
    // After the fact: the tap never delays or breaks what the gateway sends or receives.
    this.bus = options.bus.tapped({
      sent: (subject, data, reply) => this.safely(() => this.onSent(subject, data, reply)),
      received: (message) => this.safely(() => this.onReceived(message)),
    });
  }

  /** Starts watching a gateway built on `this.bus`: its calls, its registry, and errors on the bus. */
  attach(gateway: Gateway): void {
    this.gateway = gateway;
    this.detach = this.observeCalls(gateway.core);
    this.errorSub = this.raw.subscribe(subjects.errorsAll(), (message) => this.safely(() => this.onBusError(message)));
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

  // --- the bus tap ---------------------------------------------------------------------------------

  private onSent(subject: string, data: Uint8Array, reply: string | undefined): void {
    // The monitor's own subscription reports what goes to dmcp.v1.err.>, whoever sent it.
    if (!subject.startsWith(ROOT_PREFIX) || subject.startsWith(ERRORS_PREFIX)) return;
    this.count(data.byteLength);
    if (!this.watching) return;
    const meta = scanEnvelope(data);
    this.record("out", subject, data.byteLength, meta);
    if (reply && meta?.type === "prompt_request") {
      if (this.awaitedReplies.size >= MAX_AWAITED_REPLIES) this.awaitedReplies.delete(this.awaitedReplies.values().next().value!);
      this.awaitedReplies.add(reply);
    }
  }

  private onReceived(msg: BusMessage): void {
    const subject = msg.subject;
    if (subject.startsWith(ERRORS_PREFIX)) return; // reported by the monitor's own subscription
    if (subject.startsWith(ROOT_PREFIX)) {
      // A JetStream delivery (a context replay) is stored history, not live traffic.
      if (msg.reply?.startsWith("$JS.")) return;
      this.count(msg.data.byteLength);
      if (this.watching) this.record("in", subject, msg.data.byteLength, scanEnvelope(msg.data));
      return;
    }
    if (!this.awaitedReplies.has(subject)) return;
    this.count(msg.data.byteLength);
    if (!this.watching) return;
    if (msg.noResponders) {
      this.awaitedReplies.delete(subject);
      this.push({ seq: ++this.seq, time: Date.now(), dir: "in", subject, type: "no_responders", sender: "nats-server", size: msg.data.byteLength, correlationId: "" });
      return;
    }
    const meta = scanEnvelope(msg.data);
    if (meta?.type === "prompt_response" || meta?.type === "error_notification") this.awaitedReplies.delete(subject);
    this.record("in", subject, msg.data.byteLength, meta);
  }

  private onBusError(msg: BusMessage): void {
    const subject = clip(msg.subject);
    this.count(msg.data.byteLength);
    this.counters.busErrors++;
    const decoded = decodeEnvelope(msg.data, MAX_ERROR_BYTES);
    const time = Date.now();
    let entry: ErrorEntry;
    if (decoded.ok && decoded.envelope.type === "error_notification") {
      const { payload } = decoded.envelope;
      entry = {
        seq: ++this.seq,
        time,
        source: "bus",
        code: clip(payload.code),
        message: clip(payload.message),
        sender: clip(decoded.envelope.sender_id),
        subject,
        ...(decoded.envelope.correlation_id ? { correlationId: clip(decoded.envelope.correlation_id) } : {}),
      };
    } else {
      const message = decoded.ok ? `expected an error_notification, got ${decoded.envelope.type}` : decoded.error.message;
      entry = { seq: ++this.seq, time, source: "bus", code: decoded.ok ? ErrorCode.InvalidEnvelope : decoded.error.code, message: clip(message), subject };
    }
    this.addError(entry);
    if (this.watching) this.record("in", msg.subject, msg.data.byteLength, scanEnvelope(msg.data));
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
    if (!counters) this.perService.set(service, (counters = { calls: 0, failed: 0 }));
    return counters;
  }

  // --- views and updates ---------------------------------------------------------------------------

  private gatewayStatus(): GatewayStatus | null {
    const gateway = this.gateway;
    if (!gateway) return null;
    return { id: gateway.id, ready: gateway.core.ready, busConnected: gateway.core.busConnected, sessions: gateway.sessionCount };
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

  /** Nothing the monitor does may break the gateway: a bad message is counted, logged at debug, dropped. */
  private safely(work: () => void): void {
    try {
      work();
    } catch (err) {
      this.counters.malformed++;
      this.logger.debug({ err }, "monitor: ignoring a message it could not read");
    }
  }
}

function targetOf(method: string, params: Record<string, unknown>): string {
  const ref = (typeof params.ref === "object" && params.ref !== null ? params.ref : {}) as Record<string, unknown>;
  const source = method === "completion/complete" ? ref : params;
  const value = source.name ?? source.uri;
  return typeof value === "string" ? value : "";
}

function clip(text: string, limit = TEXT_LIMIT): string {
  return text.length > limit ? `${text.slice(0, limit - 1)}…` : text;
}

/** A fixed-size buffer keeping the newest items. */
export class Ring<T> {
  private readonly items: (T | undefined)[];
  private next = 0;
  private size = 0;

  constructor(readonly capacity: number) {
    this.items = new Array<T | undefined>(capacity);
  }

  push(item: T): void {
    this.items[this.next] = item;
    this.next = (this.next + 1) % this.capacity;
    this.size = Math.min(this.size + 1, this.capacity);
  }

  /** Oldest first. */
  toArray(): T[] {
    const start = (this.next - this.size + this.capacity) % this.capacity;
    const out: T[] = [];
    for (let i = 0; i < this.size; i++) out.push(this.items[(start + i) % this.capacity]!);
    return out;
  }
}

// --- reading an envelope's metadata without parsing its payload ---------------------------------------

/** The top-level string fields of an envelope the traffic view shows. */
export interface EnvelopeMeta {
  type?: string;
  sender_id?: string;
  correlation_id?: string;
}

const WANTED_KEYS: ReadonlySet<string> = new Set(["type", "sender_id", "correlation_id"]);
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const utf8 = new TextDecoder();

/**
 * Reads `type`, `sender_id` and `correlation_id` from the top level of a JSON object, skipping every
 * other value (the payload) byte by byte without decoding or allocating it. Returns undefined when the
 * bytes are not a JSON object; never throws. Values are not validated: this is for display.
 */
export function scanEnvelope(bytes: Uint8Array): EnvelopeMeta | undefined {
  const meta: Record<string, string> = {};
  let found = 0;
  let i = skipSpace(bytes, 0);
  if (bytes[i] !== OPEN_OBJECT) return undefined;
  i = skipSpace(bytes, i + 1);
  if (bytes[i] === CLOSE_OBJECT) return meta;
  for (;;) {
    if (bytes[i] !== QUOTE) return undefined;
    const keyEnd = stringEnd(bytes, i);
    if (keyEnd < 0) return undefined;
    // Wanted keys are short ASCII: longer keys are skipped without being decoded.
    const key = keyEnd - i <= 32 ? String.fromCharCode(...bytes.subarray(i + 1, keyEnd - 1)) : "";
    i = skipSpace(bytes, keyEnd);
    if (bytes[i] !== COLON) return undefined;
    i = skipSpace(bytes, i + 1);
    const valueEnd = skipValue(bytes, i);
    if (valueEnd <= i) return undefined;
    if (WANTED_KEYS.has(key) && bytes[i] === QUOTE && !(key in meta)) {
      meta[key] = readString(bytes, i, valueEnd);
      // The fields this package writes after the payload (correlation_id) end the scan early when found.
      if (++found === WANTED_KEYS.size) return meta;
    }
    i = skipSpace(bytes, valueEnd);
    if (bytes[i] === CLOSE_OBJECT) return meta;
    if (bytes[i] !== COMMA) return undefined;
    i = skipSpace(bytes, i + 1);
  }
}

function skipSpace(bytes: Uint8Array, i: number): number {
  while (i < bytes.length) {
    const b = bytes[i];
    if (b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09) break;
    i++;
  }
  return i;
}

/** Index just past the closing quote of the string opening at `start`, or -1. */
function stringEnd(bytes: Uint8Array, start: number): number {
  let from = start + 1;
  for (;;) {
    const quote = bytes.indexOf(QUOTE, from);
    if (quote < 0) return -1;
    let backslashes = 0;
    for (let k = quote - 1; k > start && bytes[k] === BACKSLASH; k--) backslashes++;
    if (backslashes % 2 === 0) return quote + 1;
    from = quote + 1;
  }
}

/** Index just past the JSON value starting at `i`, or -1. */
function skipValue(bytes: Uint8Array, i: number): number {
  const first = bytes[i];
  if (first === QUOTE) return stringEnd(bytes, i);
  if (first === OPEN_OBJECT || first === OPEN_ARRAY) {
    let depth = 0;
    while (i < bytes.length) {
      const b = bytes[i];
      if (b === QUOTE) {
        i = stringEnd(bytes, i);
        if (i < 0) return -1;
        continue;
      }
      if (b === OPEN_OBJECT || b === OPEN_ARRAY) depth++;
      else if (b === CLOSE_OBJECT || b === CLOSE_ARRAY) {
        depth--;
        if (depth === 0) return i + 1;
      }
      i++;
    }
    return -1;
  }
  // A number, true, false or null: up to the next delimiter.
  const start = i;
  while (i < bytes.length) {
    const b = bytes[i];
    if (b === COMMA || b === CLOSE_OBJECT || b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09) break;
    i++;
  }
  return i > start && i < bytes.length ? i : -1;
}

/** Decodes a JSON string for display. Ids are at most 256 characters; longer values are cut, raw. */
function readString(bytes: Uint8Array, start: number, end: number): string {
  if (end - start > 1024) return `${utf8.decode(bytes.subarray(start + 1, start + 256))}…`;
  try {
    return clip(JSON.parse(utf8.decode(bytes.subarray(start, end))) as string, 256);
  } catch {
    return "?";
  }
}

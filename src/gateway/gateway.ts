/** The gateway: one core, any number of client sessions from any inbound transport. */
import { randomUUID } from "node:crypto";
import { instrumentBus, openSessionEvents, type Bus, type ContextRetention, type SessionEventLog } from "../bus/index.js";
import { Gauge, type Registry } from "prom-client";
import { BusMetrics, shared } from "../metrics/index.js";
import type { Logger } from "../util/index.js";
import { GatewayCore, type GatewayCoreOptions } from "./core.js";
import { callerAccess, type CallerAccess, type Identity } from "./access/policy.js";
import { GatewaySession, type SessionOptions } from "./sessions/session.js";
import type { InboundTransport } from "./sessions/inbound-transport.js";
import { SharedSessions } from "./sessions/shared-sessions.js";
import { RateSharing, type RateShare } from "./access/rate-sharing.js";

export interface GatewayOptions extends CallerAccess {
  bus: Bus;
  logger: Logger;
  id?: string;
  callTimeoutMs?: number;
  contextRetention?: ContextRetention;
  /** The TTL of the result store of durable calls, should this gateway create it (default 15 min). */
  resultTtlMs?: number | undefined;
  /** Where to record metrics (calls, sessions, registry, bus); none are kept without it. */
  metrics?: Registry;
  /** The gateway cache (docs/caching.md): on unless `enabled` is false. */
  cache?: GatewayCoreOptions["cache"];
}

export class Gateway {
  readonly id: string;
  readonly core: GatewayCore;
  /** The metrics registry, when the gateway keeps metrics. */
  readonly metrics: Registry | undefined;
  private readonly sessions = new Set<GatewaySession>();
  private readonly logger: Logger;
  private readonly bus: Bus;

  constructor(options: GatewayOptions) {
    this.bus = options.bus;
    this.id = options.id ?? `gateway-${randomUUID().slice(0, 8)}`;
    this.logger = options.logger.child({ gateway: this.id });
    this.core = new GatewayCore({
      bus: options.bus,
      logger: this.logger,
      id: this.id,
      ...(options.callTimeoutMs ? { callTimeoutMs: options.callTimeoutMs } : {}),
      ...(options.contextRetention ? { contextRetention: options.contextRetention } : {}),
      resultTtlMs: options.resultTtlMs,
      cache: options.cache,
      ...(options.metrics ? { metrics: options.metrics } : {}),
      ...callerAccess(options),
    });
    this.metrics = options.metrics;
    if (options.metrics) {
      const sessions = this.sessions;
      new Gauge({
        name: "dmcp_gateway_sessions",
        help: "Connected MCP client sessions, by transport",
        labelNames: ["transport"],
        registers: [options.metrics],
        collect() {
          this.reset();
          for (const session of sessions) this.inc({ transport: session.kind });
        },
      });
      instrumentBus(
        options.bus,
        shared(options.metrics, "bus", () => new BusMetrics(options.metrics!)),
      );
    }
    this.core.onListChanged((kind) => {
      for (const session of this.sessions) session.notifyListChanged(kind);
    });
    this.core.context.onUpdated((topic) => {
      for (const session of this.sessions) session.notifyResourceUpdated(topic);
    });
  }

  async start(): Promise<void> {
    await this.core.start();
  }

  /**
   * Serves one client connection (`kind`: stdio or http) for `identity` (anonymous unless the inbound
   * adapter authenticated the client); the session ends when its transport closes.
   */
  async connect(transport: InboundTransport, kind = "", identity?: Identity, options?: SessionOptions): Promise<GatewaySession> {
    const session = new GatewaySession(this.core, transport, this.logger, kind, identity, options);
    this.sessions.add(session);
    session.onclose = () => this.sessions.delete(session);
    await session.start();
    return session;
  }

  /** Shares per-client rate limits with the other gateways on the bus (an inbound adapter's limiter uses it). */
  shareRateLimits(): RateShare {
    return new RateSharing({ bus: this.bus, gatewayId: this.id, logger: this.logger });
  }

  /** The SSE events of HTTP sessions on the bus, for an inbound adapter whose streams any gateway may resume (PROTOCOL.md §19.3). */
  openSessionEvents(): Promise<SessionEventLog> {
    return openSessionEvents(this.bus);
  }

  /** The sessions bucket, for an inbound adapter whose sessions any gateway may serve (`idleMs`: the bucket's max age, should this gateway create it). */
  shareSessions(idleMs: number): Promise<SharedSessions> {
    return SharedSessions.open(this.bus, { idleMs, gatewayId: this.id, logger: this.logger });
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /**
   * Graceful stop: refuse new requests, let calls in flight finish for up to `graceMs`, answer the
   * rest with SHUTTING_DOWN, then close every session and leave the bus.
   */
  async stop(graceMs = 10_000): Promise<void> {
    const sessions = [...this.sessions];
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
    await Promise.race([Promise.all(sessions.map((session) => session.drain())), graceOver]);
    clearTimeout(timer);
    for (const session of sessions) session.abortInflight();
    // Let the SHUTTING_DOWN answers reach the transports before they close.
    await new Promise((resolve) => setImmediate(resolve));
    await Promise.allSettled(sessions.map((session) => session.close()));
    await this.core.stop();
  }
}

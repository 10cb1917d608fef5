/**
 * Keeps the gateway's view of the services on the bus current: from the registry (and the gateway's
 * own context topics) to the aggregated catalog and the directory calls are routed by, rebuilt on
 * every change. Tells sessions which lists changed (by fingerprint), warns once per name collision,
 * reports invalid announcements on the bus once each, and keeps the registry's gauges.
 */
import { DeliveryTable, RegistryView, type Bus } from "../../bus/index.js";
import { ErrorCode, errorForCode, TASKS_EXTENSION } from "../../protocol/index.js";
import type { Logger } from "../../util/index.js";
import { Counter, Gauge, type Registry } from "prom-client";
import { AggregatedCatalog, catalogsByService, type ServiceCatalog } from "./catalog.js";
import type { ServiceDirectory } from "./routing.js";
import { type ContextService, GATEWAY_SERVICE } from "../context-service.js";

/** The lists a client is told have changed. */
export type ListKind = "tools" | "resources" | "prompts";

/** Announced items that break the protocol are dropped from the catalog and reported on the bus. */
export interface InvalidAnnouncementItem {
  service: string;
  instance: string;
  message: string;
  /** Set when message security refused an announcement or heartbeat (e.g. UNTRUSTED_SIGNER). */
  code?: ErrorCode | undefined;
}

export interface CatalogKeeperOptions {
  bus: Bus;
  logger: Logger;
  /** This gateway's id on the bus (it reports problems on its own error subject). */
  id: string;
  /** The gateway's own service, aggregated like any other. */
  context: ContextService;
  /** Where to keep the registry's gauges; none without it. */
  metrics?: Registry | undefined;
}

/** How many reported registry problems the gateway remembers, so that it reports each once. */
const MAX_REMEMBERED_PROBLEMS = 1000;

export class CatalogKeeper {
  /** What every service on the bus offers; `directory` routes by the same snapshot. */
  directory: ServiceDirectory = {
    catalog: new AggregatedCatalog(new Map()),
    deliveries: new DeliveryTable(),
    sessionServices: new Set(),
    taskServices: new Set(),
  };
  /** The live instances on the bus (announcements and heartbeats). */
  readonly registry: RegistryView;
  private loaded = false;
  private readonly listeners = new Set<(kind: ListKind) => void>();
  private readonly serviceListeners = new Set<(catalogs: ReadonlyMap<string, ServiceCatalog>) => void>();
  private readonly fingerprints: Record<ListKind, string> = { tools: "[]", resources: "[][]", prompts: "[]" };
  private readonly reportedCollisions = new Set<string>();
  private readonly reportedInvalid = new Set<string>();

  constructor(private readonly options: CatalogKeeperOptions) {
    this.registry = new RegistryView(options.bus, { calls: true });
    this.registry.onChange(() => this.rebuild());
    this.registry.onInvalid((problem) => this.reportInvalid(problem));
    options.context.onTopicsChanged(() => this.rebuild());
    if (options.metrics) this.instrumentRegistry(options.metrics);
  }

  get catalog(): AggregatedCatalog {
    return this.directory.catalog;
  }

  /** The registry has been read once: the catalog holds what was on the bus at start. */
  get ready(): boolean {
    return this.loaded;
  }

  async start(): Promise<void> {
    await this.registry.start();
    this.loaded = true;
    this.rebuild();
  }

  async stop(): Promise<void> {
    await this.registry.stop();
  }

  /** Called with the kind of list that changed, after every registry change that alters it. */
  onListChanged(listener: (kind: ListKind) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Called with every service's catalog as announced, after each rebuild (the cache drops what a new catalog outdates). */
  onServicesChanged(listener: (catalogs: ReadonlyMap<string, ServiceCatalog>) => void): () => void {
    this.serviceListeners.add(listener);
    return () => this.serviceListeners.delete(listener);
  }

  private rebuild(): void {
    const { logger } = this.options;
    const live = this.registry.list();
    const catalogs = catalogsByService(live);
    if (catalogs.has(GATEWAY_SERVICE)) logger.warn(`a service on the bus is named "${GATEWAY_SERVICE}", which is reserved for the gateway's own tools; ignoring it`);
    // No "resources" capability: the gateway's context URIs are routed by their prefix, and the
    // single-resource-server fallback keeps working for the one wrapped server.
    catalogs.set(GATEWAY_SERVICE, { catalog: this.options.context.catalog(), capabilities: { tools: {} } });
    const catalog = new AggregatedCatalog(catalogs);
    this.directory = {
      catalog,
      deliveries: new DeliveryTable(catalogs),
      sessionServices: new Set(live.filter((instance) => instance.announcement.client_sessions === true).map((instance) => instance.service)),
      taskServices: new Set(live.filter((instance) => keepsOwnTasks(instance.announcement.stateless_capabilities)).map((instance) => instance.service)),
    };
    for (const listener of this.serviceListeners) listener(catalogs);
    for (const collision of catalog.collisions) {
      const key = `${collision.kind}:${collision.name}:${collision.services.join(",")}`;
      if (this.reportedCollisions.has(key)) continue;
      this.reportedCollisions.add(key);
      logger.warn(collision, `${collision.kind} "${collision.name}" is offered by several services; exposing it qualified per service`);
    }
    const next: Record<ListKind, string> = {
      tools: JSON.stringify(catalog.tools),
      resources: JSON.stringify(catalog.resources) + JSON.stringify(catalog.resourceTemplates),
      prompts: JSON.stringify(catalog.prompts),
    };
    for (const kind of Object.keys(next) as ListKind[]) {
      if (next[kind] === this.fingerprints[kind]) continue;
      this.fingerprints[kind] = next[kind];
      logger.info({ kind, services: catalog.services }, "catalog changed");
      for (const listener of this.listeners) listener(kind);
    }
  }

  private reportInvalid(problem: InvalidAnnouncementItem): void {
    // Announcements are refreshed every few seconds; report each problem once.
    const key = `${problem.service}/${problem.instance}/${problem.message}`;
    if (this.reportedInvalid.has(key)) return;
    // Each new bad announcement is a new key: bound the memory of what was reported (once more is fine).
    if (this.reportedInvalid.size >= MAX_REMEMBERED_PROBLEMS) this.reportedInvalid.clear();
    this.reportedInvalid.add(key);
    this.options.logger.warn(problem, "ignoring an invalid announcement or announced item");
    const error = errorForCode(problem.code ?? ErrorCode.InvalidEnvelope, `${problem.service}/${problem.instance}: ${problem.message}`, {
      data: { service: problem.service, instance: problem.instance },
    });
    this.options.bus.reportError(this.options.id, error);
  }

  private instrumentRegistry(metrics: Registry): void {
    const registry = this.registry;
    new Gauge({
      name: "dmcp_registry_instances",
      help: "Live instances on the bus, by service and status",
      labelNames: ["service", "status"],
      registers: [metrics],
      collect() {
        this.reset();
        for (const live of registry.list()) this.inc({ service: live.service, status: live.heartbeat?.status ?? live.announcement.status });
      },
    });
    const lost = new Counter({
      name: "dmcp_registry_heartbeats_missed_total",
      help: "Instances dropped because they missed their heartbeats",
      labelNames: ["service"],
      registers: [metrics],
    });
    registry.onLost((live) => lost.inc({ service: live.service }));
  }
}

/** The tasks extension among the capabilities an upstream declared to 2026-07-28 requests. */
function keepsOwnTasks(capabilities: Record<string, unknown> | undefined): boolean {
  const extensions = capabilities?.extensions;
  return typeof extensions === "object" && extensions !== null && (extensions as Record<string, unknown>)[TASKS_EXTENSION] !== undefined;
}

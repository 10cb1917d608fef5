/**
 * The aggregated catalog: what every service on the bus offers, merged into one MCP server's lists.
 *
 * Namespacing rule (PROTOCOL.md, "Aggregation"): a tool or prompt name offered by one service only is
 * exposed unchanged; a name offered by several services is exposed once per service as
 * `<service>__<name>`, never silently shadowed. The qualified form `<service>__<name>` is accepted for
 * every tool and prompt, colliding or not. Resource URIs work the same way, qualified as
 * `dmcp://service/<service>/<percent-encoded uri>`.
 */
import type { UriTemplate } from "@modelcontextprotocol/server";
import type { LiveInstance } from "../../bus/index.js";
import { matchableUri, templateMatcher } from "./template-matcher.js";
import type { CachePlan, Catalog, DeliveryPlan } from "../../protocol/index.js";
import { EXTENSION_METHODS, mergeExtensions } from "./extensions.js";

export const NAME_SEPARATOR = "__";
const QUALIFIED_URI_PREFIX = "dmcp://service/";

type Item = Record<string, unknown>;

export interface Route {
  service: string;
  /** The name or URI as the upstream server knows it. */
  target: string;
}

export type ResourceRoute = Route | { ambiguous: string[] };

export interface Collision {
  kind: "tool" | "prompt" | "resource";
  name: string;
  services: string[];
}

export class AggregatedCatalog {
  readonly tools: Item[] = [];
  readonly prompts: Item[] = [];
  readonly resources: Item[] = [];
  readonly resourceTemplates: Item[] = [];
  readonly collisions: Collision[] = [];
  readonly services: string[];
  readonly instructions: string[] = [];
  /** The upstreams' `capabilities.extensions`, merged (see extensions.ts). */
  readonly extensions: Record<string, unknown>;
  private readonly extensionOwners: Map<string, string>;
  private readonly toolRoutes = new Map<string, Route>();
  private readonly promptRoutes = new Map<string, Route>();
  private readonly resourceRoutes = new Map<string, Route>();
  private readonly templates: { service: string; template: string; matcher: UriTemplate | undefined }[] = [];
  private readonly resourceServices: string[] = [];
  /** Each service's own tool definitions, by `service NUL name`. */
  private readonly toolDefinitions = new Map<string, Item>();

  constructor(catalogs: ReadonlyMap<string, ServiceCatalog>) {
    this.services = [...catalogs.keys()].sort();
    const ordered = this.services.map((service) => [service, catalogs.get(service)!] as const);
    this.merge(
      "tool",
      ordered.map(([service, c]) => [service, c.catalog.tools]),
      "name",
      this.tools,
      this.toolRoutes,
      qualifyName,
    );
    this.merge(
      "prompt",
      ordered.map(([service, c]) => [service, c.catalog.prompts]),
      "name",
      this.prompts,
      this.promptRoutes,
      qualifyName,
    );
    this.merge(
      "resource",
      ordered.map(([service, c]) => [service, c.catalog.resources]),
      "uri",
      this.resources,
      this.resourceRoutes,
      qualifyUri,
    );
    ({ declared: this.extensions, owners: this.extensionOwners } = mergeExtensions(ordered.map(([service, c]) => [service, c.capabilities] as const)));
    for (const [service, c] of ordered) {
      for (const tool of c.catalog.tools) this.toolDefinitions.set(`${service}\0${String(tool.name)}`, tool);
      if (c.capabilities.resources !== undefined) this.resourceServices.push(service);
      if (c.instructions) this.instructions.push(`[${service}] ${c.instructions}`);
      for (const template of c.catalog.resource_templates) {
        this.resourceTemplates.push(template);
        this.templates.push({ service, template: template.uriTemplate, matcher: templateMatcher(template.uriTemplate) });
      }
    }
  }

  tool(name: string): Route | undefined {
    return this.toolRoutes.get(name) ?? this.qualified(name, (service, target) => this.offers(service, "tool", target));
  }

  /** The upstream's definition of an exposed tool name (inputSchema and all), when some service offers it. */
  toolDefinition(name: string): Item | undefined {
    const route = this.tool(name);
    return route && this.toolDefinitions.get(`${route.service}\0${route.target}`);
  }

  /** The service that serves an extension's method (skills/list ...), when one declares the extension. */
  extensionService(method: string): string | undefined {
    const extension = EXTENSION_METHODS[method];
    return extension === undefined ? undefined : this.extensionOwners.get(extension);
  }

  prompt(name: string): Route | undefined {
    return this.promptRoutes.get(name) ?? this.qualified(name, (service, target) => this.offers(service, "prompt", target));
  }

  /** Which service serves a URI: a listed resource, a qualified URI, a matching template, or the only resource server. */
  resource(uri: string): ResourceRoute | undefined {
    const listed = this.resourceRoutes.get(uri);
    if (listed) return listed;
    const qualified = parseQualifiedUri(uri);
    if (qualified && this.services.includes(qualified.service)) return qualified;
    const matching = matchableUri(uri) ? [...new Set(this.templates.filter((t) => t.matcher?.match(uri)).map((t) => t.service))] : [];
    if (matching.length === 1) return { service: matching[0]!, target: uri };
    if (matching.length > 1) return { ambiguous: matching };
    if (this.resourceServices.length === 1) return { service: this.resourceServices[0]!, target: uri };
    return undefined;
  }

  /** Which service owns a resource template (for completion/complete). */
  template(uriTemplate: string): ResourceRoute | undefined {
    const owners = [...new Set(this.templates.filter((t) => t.template === uriTemplate).map((t) => t.service))];
    if (owners.length === 1) return { service: owners[0]!, target: uriTemplate };
    if (owners.length > 1) return { ambiguous: owners };
    return this.resource(uriTemplate);
  }

  /** Splits `<service>__<name>` at each separator in turn: service names may contain `__` too. */
  private qualified(name: string, offers: (service: string, target: string) => boolean): Route | undefined {
    for (let at = name.indexOf(NAME_SEPARATOR); at > 0; at = name.indexOf(NAME_SEPARATOR, at + 1)) {
      const service = name.slice(0, at);
      const target = name.slice(at + NAME_SEPARATOR.length);
      if (offers(service, target)) return { service, target };
    }
    return undefined;
  }

  private offers(service: string, kind: "tool" | "prompt", target: string): boolean {
    const routes = kind === "tool" ? this.toolRoutes : this.promptRoutes;
    for (const route of routes.values()) if (route.service === service && route.target === target) return true;
    return false;
  }

  private merge(
    kind: Collision["kind"],
    perService: (readonly [string, readonly Item[]])[],
    key: "name" | "uri",
    out: Item[],
    routes: Map<string, Route>,
    qualify: (service: string, value: string) => string,
  ): void {
    const owners = new Map<string, string[]>();
    for (const [service, items] of perService) {
      for (const item of items) {
        const value = String(item[key]);
        const list = owners.get(value) ?? [];
        if (!list.includes(service)) list.push(service);
        owners.set(value, list);
      }
    }
    for (const [value, services] of owners) if (services.length > 1) this.collisions.push({ kind, name: value, services });
    for (const [service, items] of perService) {
      for (const item of items) {
        const value = String(item[key]);
        const exposed = owners.get(value)!.length > 1 ? qualify(service, value) : value;
        const taken = routes.get(exposed);
        if (taken) {
          // A duplicate within one service is dropped; a qualified name that equals another service's
          // real name is a collision, reported (the first in service order keeps the name).
          if (taken.service !== service) this.collisions.push({ kind, name: exposed, services: [taken.service, service] });
          continue;
        }
        routes.set(exposed, { service, target: value });
        out.push(exposed === value ? item : { ...item, [key]: exposed });
      }
    }
  }
}

export interface ServiceCatalog {
  catalog: Catalog;
  capabilities: Record<string, unknown>;
  instructions?: string | undefined;
  /** How the service's tools/call requests travel (durable delivery), when it says. */
  delivery?: DeliveryPlan | undefined;
  /** What the service's executors say may be cached, and for how long (the gateway cache). */
  cache?: CachePlan | undefined;
}

/**
 * One catalog per service from the live instances. Replicas should offer the same; a ready instance
 * wins over a degraded one, then the most recently started.
 */
export function catalogsByService(instances: readonly LiveInstance[]): Map<string, ServiceCatalog> {
  const best = new Map<string, LiveInstance>();
  for (const live of instances) {
    const current = best.get(live.service);
    if (!current || rank(live) > rank(current)) best.set(live.service, live);
  }
  const out = new Map<string, ServiceCatalog>();
  for (const [service, live] of best) {
    out.set(service, {
      catalog: live.announcement.catalog,
      capabilities: live.announcement.capabilities,
      instructions: live.announcement.instructions,
      ...(live.announcement.delivery ? { delivery: live.announcement.delivery } : {}),
      ...(live.announcement.cache ? { cache: live.announcement.cache } : {}),
    });
  }
  return out;
}

function rank(live: LiveInstance): number {
  const ready = live.announcement.status === "ready" ? 1e15 : 0;
  return ready + Date.parse(live.announcement.started_at);
}

export function qualifyName(service: string, name: string): string {
  return `${service}${NAME_SEPARATOR}${name}`;
}

export function qualifyUri(service: string, uri: string): string {
  return `${QUALIFIED_URI_PREFIX}${service}/${encodeURIComponent(uri)}`;
}

export function parseQualifiedUri(uri: string): Route | undefined {
  if (!uri.startsWith(QUALIFIED_URI_PREFIX)) return undefined;
  const rest = uri.slice(QUALIFIED_URI_PREFIX.length);
  const slash = rest.indexOf("/");
  if (slash <= 0) return undefined;
  try {
    return { service: rest.slice(0, slash), target: decodeURIComponent(rest.slice(slash + 1)) };
  } catch {
    return undefined;
  }
}

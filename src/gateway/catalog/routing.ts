/**
 * Where a request goes: the service that owns its tool, prompt, resource (or template) or extension
 * method in the aggregated catalog, with its params as that service's upstream knows them (names and
 * URIs translated back from the exposed, possibly qualified, ones; PROTOCOL.md §8.2); how it travels
 * there (durable or direct, to a session's replica or any); and what an access policy judges it by.
 */
import { ErrorCode, JsonRpcErrorCode, type PriorityLane, RequestError } from "../../protocol/index.js";
import type { DeliveryTable } from "../../bus/index.js";
import type { AggregatedCatalog, ResourceRoute, Route } from "./catalog.js";
import { ContextService, GATEWAY_SERVICE } from "../context-service.js";
import type { PolicyTarget } from "../access/policy.js";

export interface RoutedRequest {
  service: string;
  params: Record<string, unknown>;
}

/** The services on the bus as calls are routed by them: one snapshot, replaced whole when the registry changes. */
export interface ServiceDirectory {
  readonly catalog: AggregatedCatalog;
  /** How each service's tools/call travel (its announced delivery plan). */
  readonly deliveries: DeliveryTable;
  /** Services whose instances keep an upstream session per client session (their announcements say so). */
  readonly sessionServices: ReadonlySet<string>;
  /** Services whose upstreams keep MCP Tasks of their own (the tasks extension in their 2026 discovery). */
  readonly taskServices: ReadonlySet<string>;
}

/** A routed call: the service and its params, and how the call travels there. */
export interface CallRoute extends RoutedRequest {
  /** The lane of a durable call (through the work queue, PROTOCOL.md §15), or undefined when it goes direct. */
  lane: PriorityLane | undefined;
  /** The service keeps upstream sessions per client session: a session's call goes to its pinned replica. */
  keepsSessions: boolean;
  /** The service's upstream keeps MCP Tasks of its own (PROTOCOL.md §17). */
  keepsTasks: boolean;
}

/** What routing makes of one request: what a policy judges, and the route or the reason there is none. */
export interface Routing {
  target: PolicyTarget | undefined;
  route: { ok: true; value: CallRoute } | { ok: false; error: unknown };
}

/**
 * Routes a request once: its policy target, and its route (or the routing error, thrown only when the
 * call is sent, so that the policy is applied first: a forbidden unknown resource is FORBIDDEN).
 */
export function routeOf(directory: ServiceDirectory, method: string, params: Record<string, unknown>): Routing {
  const target = policyTarget(directory.catalog, method, params);
  try {
    const { service, params: forwarded } = routeRequest(directory.catalog, method, params);
    const route: CallRoute = {
      service,
      params: forwarded,
      lane: directory.deliveries.laneFor(service, method, forwarded),
      keepsSessions: directory.sessionServices.has(service),
      keepsTasks: directory.taskServices.has(service),
    };
    return { target, route: { ok: true, value: route } };
  } catch (error) {
    return { target, route: { ok: false, error } };
  }
}

/** Throws UNKNOWN_TARGET (with the JSON-RPC code MCP expects) for an unknown name, URI or method. */
function routeRequest(catalog: AggregatedCatalog, method: string, params: Record<string, unknown>): RoutedRequest {
  switch (method) {
    case "tools/call":
      return renamed(params, "name", catalog.tool(requireString(params, "name")), "tool");
    case "prompts/get":
      return renamed(params, "name", catalog.prompt(requireString(params, "name")), "prompt");
    case "resources/subscribe":
    case "resources/unsubscribe":
    case "resources/read": {
      const uri = requireString(params, "uri");
      if (ContextService.topicOf(uri)) return { service: GATEWAY_SERVICE, params };
      return renamed(params, "uri", resourceRoute(catalog.resource(uri), uri), "resource");
    }
    case "completion/complete": {
      const ref = (params.ref ?? {}) as Record<string, unknown>;
      if (ref.type === "ref/prompt") {
        const route = catalog.prompt(requireString(ref, "name"));
        const forwarded = renamed(ref, "name", route, "prompt");
        return { service: forwarded.service, params: { ...params, ref: forwarded.params } };
      }
      if (ref.type === "ref/resource") {
        const uri = requireString(ref, "uri");
        const forwarded = renamed(ref, "uri", resourceRoute(catalog.template(uri), uri), "resource template");
        return { service: forwarded.service, params: { ...params, ref: forwarded.params } };
      }
      throw new RequestError(ErrorCode.UnknownTarget, "completion/complete needs ref.type ref/prompt or ref/resource", {
        jsonrpcCode: JsonRpcErrorCode.InvalidParams,
      });
    }
    default: {
      // An extension's method (skills/list ...) goes to the service that declares the extension.
      const owner = catalog.extensionService(method);
      if (owner) return { service: owner, params };
      throw new RequestError(ErrorCode.UnknownTarget, `Method not found: ${method}`, { jsonrpcCode: JsonRpcErrorCode.MethodNotFound });
    }
  }
}

/** The item a request uses, by the names a policy may match (as exposed, and as <service>/<upstream name>). */
function policyTarget(catalog: AggregatedCatalog, method: string, params: Record<string, unknown>): PolicyTarget | undefined {
  const text = (value: unknown) => (typeof value === "string" && value !== "" ? value : undefined);
  const ref = (params.ref ?? {}) as Record<string, unknown>;
  const [kind, name] =
    method === "tools/call"
      ? (["tools", text(params.name)] as const)
      : method === "prompts/get"
        ? (["prompts", text(params.name)] as const)
        : method === "resources/read" || method === "resources/subscribe"
          ? (["resources", text(params.uri)] as const)
          : method === "completion/complete" && ref.type === "ref/prompt"
            ? (["prompts", text(ref.name)] as const)
            : method === "completion/complete" && ref.type === "ref/resource"
              ? (["resources", text(ref.uri)] as const)
              : ([undefined, undefined] as const);
  if (!kind || !name) return undefined;
  const route = kind === "tools" ? catalog.tool(name) : kind === "prompts" ? catalog.prompt(name) : catalog.resource(name);
  // Unknown tools and prompts are left to routing (an unknown name); a URI is checked even unlisted:
  // context topics can be subscribed to before they exist.
  if (!route) return kind === "resources" ? { kind, names: [name] } : undefined;
  return { kind, names: "service" in route ? [name, `${route.service}/${route.target}`] : [name] };
}

/** The names a listed item is known by, for policy patterns: as exposed, and as <service>/<upstream name>. */
export function listedNames(catalog: AggregatedCatalog, list: "tools" | "prompts" | "resources" | "resourceTemplates", item: Record<string, unknown>): string[] {
  const key = list === "resources" ? "uri" : list === "resourceTemplates" ? "uriTemplate" : "name";
  const exposed = String(item[key]);
  const route =
    list === "tools" ? catalog.tool(exposed) : list === "prompts" ? catalog.prompt(exposed) : list === "resources" ? catalog.resource(exposed) : catalog.template(exposed);
  return route && "service" in route ? [exposed, `${route.service}/${route.target}`] : [exposed];
}

function requireString(params: Record<string, unknown>, field: string): string {
  const value = params[field];
  if (typeof value !== "string" || value === "") {
    throw new RequestError(ErrorCode.UnknownTarget, `params.${field} must be a non-empty string`, { jsonrpcCode: JsonRpcErrorCode.InvalidParams });
  }
  return value;
}

function resourceRoute(route: ResourceRoute | undefined, uri: string): Route | undefined {
  if (route && "ambiguous" in route) {
    throw new RequestError(
      ErrorCode.UnknownTarget,
      `resource ${uri} matches templates of several services (${route.ambiguous.join(", ")}); read it as dmcp://service/<service>/<percent-encoded uri> to choose one`,
      { jsonrpcCode: JsonRpcErrorCode.InvalidParams, data: { uri, services: route.ambiguous } },
    );
  }
  return route;
}

function renamed(params: Record<string, unknown>, field: string, route: Route | undefined, what: string): { service: string; params: Record<string, unknown> } {
  if (!route) {
    const value = String(params[field]);
    const code = what === "resource" ? JsonRpcErrorCode.ResourceNotFound : JsonRpcErrorCode.InvalidParams;
    const message = what === "resource" ? `Resource not found: ${value}` : `Unknown ${what}: ${value}`;
    throw new RequestError(ErrorCode.UnknownTarget, message, { jsonrpcCode: code, data: { [field]: value } });
  }
  return { service: route.service, params: params[field] === route.target ? params : { ...params, [field]: route.target } };
}

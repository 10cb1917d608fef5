/**
 * Where a request goes: the service that owns its tool, prompt, resource (or template) or extension
 * method in the aggregated catalog, with its params as that service's upstream knows them (names and
 * URIs translated back from the exposed, possibly qualified, ones; PROTOCOL.md §8.2); and what an
 * access policy judges it by.
 */
import { DmcpError, ErrorCode, JsonRpcErrorCode } from "../../protocol/index.js";
import type { AggregatedCatalog, ResourceRoute, Route } from "./catalog.js";
import { ContextService, GATEWAY_SERVICE } from "../context-service.js";
import type { ItemKind } from "../access/policy.js";

export interface RoutedRequest {
  service: string;
  params: Record<string, unknown>;
}

/** Throws UNKNOWN_TARGET (with the JSON-RPC code MCP expects) for an unknown name, URI or method. */
export function routeRequest(catalog: AggregatedCatalog, method: string, params: Record<string, unknown>): RoutedRequest {
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
      throw new DmcpError(ErrorCode.UnknownTarget, "completion/complete needs ref.type ref/prompt or ref/resource", {
        jsonrpcCode: JsonRpcErrorCode.InvalidParams,
      });
    }
    default: {
      // An extension's method (skills/list ...) goes to the service that declares the extension.
      const owner = catalog.extensionService(method);
      if (owner) return { service: owner, params };
      throw new DmcpError(ErrorCode.UnknownTarget, `Method not found: ${method}`, { jsonrpcCode: JsonRpcErrorCode.MethodNotFound });
    }
  }
}

/** The item a request uses, by the names a policy may match (as exposed, and as <service>/<upstream name>). */
export function policyTarget(catalog: AggregatedCatalog, method: string, params: Record<string, unknown>): { kind: ItemKind; names: string[] } | undefined {
  const text = (value: unknown) => (typeof value === "string" && value !== "" ? value : undefined);
  const ref = (params.ref ?? {}) as Record<string, unknown>;
  const [kind, name] =
    method === "tools/call" ? (["tools", text(params.name)] as const)
    : method === "prompts/get" ? (["prompts", text(params.name)] as const)
    : method === "resources/read" || method === "resources/subscribe" ? (["resources", text(params.uri)] as const)
    : method === "completion/complete" && ref.type === "ref/prompt" ? (["prompts", text(ref.name)] as const)
    : method === "completion/complete" && ref.type === "ref/resource" ? (["resources", text(ref.uri)] as const)
    : ([undefined, undefined] as const);
  if (!kind || !name) return undefined;
  const route = kind === "tools" ? catalog.tool(name) : kind === "prompts" ? catalog.prompt(name) : catalog.resource(name);
  // Unknown tools and prompts are left to routing (an unknown name); a URI is checked even unlisted:
  // context topics can be subscribed to before they exist.
  if (!route) return kind === "resources" ? { kind, names: [name] } : undefined;
  return { kind, names: "service" in route ? [name, `${route.service}/${route.target}`] : [name] };
}

function requireString(params: Record<string, unknown>, field: string): string {
  const value = params[field];
  if (typeof value !== "string" || value === "") {
    throw new DmcpError(ErrorCode.UnknownTarget, `params.${field} must be a non-empty string`, { jsonrpcCode: JsonRpcErrorCode.InvalidParams });
  }
  return value;
}

function resourceRoute(route: ResourceRoute | undefined, uri: string): Route | undefined {
  if (route && "ambiguous" in route) {
    throw new DmcpError(
      ErrorCode.UnknownTarget,
      `resource ${uri} matches templates of several services (${route.ambiguous.join(", ")}); ` +
        `read it as dmcp://service/<service>/<percent-encoded uri> to choose one`,
      { jsonrpcCode: JsonRpcErrorCode.InvalidParams, data: { uri, services: route.ambiguous } },
    );
  }
  return route;
}

function renamed(
  params: Record<string, unknown>,
  field: string,
  route: Route | undefined,
  what: string,
): { service: string; params: Record<string, unknown> } {
  if (!route) {
    const value = String(params[field]);
    const code = what === "resource" ? JsonRpcErrorCode.ResourceNotFound : JsonRpcErrorCode.InvalidParams;
    const message = what === "resource" ? `Resource not found: ${value}` : `Unknown ${what}: ${value}`;
    throw new DmcpError(ErrorCode.UnknownTarget, message, { jsonrpcCode: code, data: { [field]: value } });
  }
  return { service: route.service, params: params[field] === route.target ? params : { ...params, [field]: route.target } };
}

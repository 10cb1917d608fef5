/** Reads everything an upstream server offers (all pages), as raw objects. */
import type { Catalog } from "../../protocol/index.js";
import type { UpstreamInfo } from "./upstream.js";

type Lister = (method: string, params: Record<string, unknown> | undefined) => Promise<Record<string, unknown>>;

const MAX_PAGES = 1000;

export async function fetchCatalog(info: UpstreamInfo, list: Lister): Promise<Catalog> {
  const has = (capability: string) => info.capabilities[capability] !== undefined;
  const [tools, resources, resource_templates, prompts] = await Promise.all([
    has("tools") ? listAll(list, "tools/list", "tools") : [],
    has("resources") ? listAll(list, "resources/list", "resources") : [],
    has("resources") ? listAll(list, "resources/templates/list", "resourceTemplates") : [],
    has("prompts") ? listAll(list, "prompts/list", "prompts") : [],
  ]);
  return {
    tools: tools as Catalog["tools"],
    resources: resources as Catalog["resources"],
    resource_templates: resource_templates as Catalog["resource_templates"],
    prompts: prompts as Catalog["prompts"],
  };
}

async function listAll(list: Lister, method: string, field: string): Promise<unknown[]> {
  const items: unknown[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const result = await list(method, cursor === undefined ? undefined : { cursor });
    const pageItems = result[field];
    if (Array.isArray(pageItems)) items.push(...pageItems);
    cursor = typeof result.nextCursor === "string" && result.nextCursor !== "" ? result.nextCursor : undefined;
    if (cursor === undefined) break;
  }
  return items;
}

/**
 * MCP extensions of upstream servers (`capabilities.extensions`, e.g. the Skills extension,
 * SEP-2640) offered through the gateway. Aggregation rule: the gateway declares every extension
 * some service declares; when several services declare the same one, the first service in name
 * order owns it (its settings are declared, its methods go to it), as one MCP server cannot offer
 * an extension's methods twice.
 */

export const SKILLS_EXTENSION = "io.modelcontextprotocol/skills";

/** The request methods each forwarded extension adds, with the extension that owns them. */
export const EXTENSION_METHODS: Readonly<Record<string, string>> = {
  "skills/list": SKILLS_EXTENSION,
  "skills/get": SKILLS_EXTENSION,
  "resources/directory/read": SKILLS_EXTENSION,
};

export interface ExtensionOffer {
  /** What the gateway declares in `capabilities.extensions`. */
  declared: Record<string, unknown>;
  /** Which service owns each extension. */
  owners: Map<string, string>;
}

/** `services` in name order, each with the capabilities it announced. */
export function mergeExtensions(services: readonly (readonly [string, Record<string, unknown>])[]): ExtensionOffer {
  const declared: Record<string, unknown> = {};
  const owners = new Map<string, string>();
  for (const [service, capabilities] of services) {
    const extensions = capabilities.extensions;
    if (typeof extensions !== "object" || extensions === null || Array.isArray(extensions)) continue;
    for (const [id, settings] of Object.entries(extensions)) {
      if (owners.has(id)) continue;
      owners.set(id, service);
      declared[id] = settings;
    }
  }
  return { declared, owners };
}

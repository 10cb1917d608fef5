/** The event kinds of ContextVM (kept here so that the guard does not depend on an SDK's internals). */

/** A JSON-RPC message, in the clear: an ephemeral event. */
export const MESSAGE_KIND = 25910;
/** A gift wrap (NIP-59 style, NIP-44 v2 content): kept by relays, and its ephemeral variant. */
export const GIFT_WRAP_KIND = 1059;
export const EPHEMERAL_GIFT_WRAP_KIND = 21059;

/** Public announcements: server, tools, resources, resource templates, prompts. */
export const ANNOUNCEMENT_KINDS = { server: 11316, tools: 11317, resources: 11318, resourceTemplates: 11319, prompts: 11320 } as const;

/** The event kinds of ContextVM and DVMCP (kept here so that the guard does not depend on an SDK's internals). */

/** A JSON-RPC message, in the clear: an ephemeral event (ContextVM; DVMCP's requests too). */
export const MESSAGE_KIND = 25910;
/** A gift wrap (NIP-59 style, NIP-44 v2 content): kept by relays, and its ephemeral variant. */
export const GIFT_WRAP_KIND = 1059;
export const EPHEMERAL_GIFT_WRAP_KIND = 21059;

/** Public announcements: server, tools, resources, resource templates, prompts. */
export const ANNOUNCEMENT_KINDS = { server: 11316, tools: 11317, resources: 11318, resourceTemplates: 11319, prompts: 11320 } as const;

/**
 * DVMCP (spec 2025-03-26): addressable announcements (a `d` tag names each), and its own kinds for
 * responses and notifications; requests are kind 25910, like ContextVM's messages, but carry a
 * simplified JSON-RPC message (no `jsonrpc`, no `id`; a response's result is the content itself).
 */
export const DVMCP_ANNOUNCEMENT_KINDS = { server: 31316, tools: 31317, resources: 31318, prompts: 31319 } as const;
export const DVMCP_REQUEST_KIND = MESSAGE_KIND;
export const DVMCP_RESPONSE_KIND = 26910;
export const DVMCP_NOTIFICATION_KIND = 21316;

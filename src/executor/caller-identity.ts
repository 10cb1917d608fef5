/**
 * The caller's identity at the executor: passed on to the upstream in `_meta` (when asked) so the
 * server can decide per caller, and written to the audit log. The raw token never reaches the log.
 */
import type { RequestHandler } from "../bus/index.js";
import { isDmcpError, type Caller } from "../protocol/index.js";
import type { Logger } from "../util/index.js";

/** The `_meta` key under which an upstream finds the caller (MCP's reverse-DNS prefix convention). */
export const CALLER_META_KEY = "io.dmcp/caller";

export function withCallerMeta(params: Record<string, unknown> | undefined, caller: Caller | undefined): Record<string, unknown> | undefined {
  if (!caller) return params;
  const meta = { ...((params?._meta as Record<string, unknown> | undefined) ?? {}), [CALLER_META_KEY]: caller };
  return { ...(params ?? {}), _meta: meta };
}

/** One info line per call: who (never the token), what, and how it ended. */
export function audited(handler: RequestHandler, logger: Logger): RequestHandler {
  return async (request, context) => {
    const { method, params } = request.payload;
    const target = typeof params?.name === "string" ? params.name : typeof params?.uri === "string" ? params.uri : undefined;
    const caller = request.caller ? { kind: request.caller.kind, subject: request.caller.subject, issuer: request.caller.issuer } : undefined;
    const started = performance.now();
    const entry = { audit: true, correlation: context.correlationId, caller, method, target };
    try {
      const result = await handler(request, context);
      logger.info({ ...entry, outcome: result.isError === true ? "tool_error" : "ok", ms: Math.round(performance.now() - started) }, "call");
      return result;
    } catch (err) {
      const outcome = isDmcpError(err) ? err.code : "error";
      logger.info({ ...entry, outcome, ms: Math.round(performance.now() - started) }, "call");
      throw err;
    }
  };
}

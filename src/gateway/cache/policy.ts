/**
 * What the gateway cache may keep, and for how long (docs/caching.md). An upstream's own `ttlMs` and
 * `cacheScope` on the results MCP 2026-07-28 lets carry them are honoured; where an upstream says
 * nothing, the rules its executors announce give a TTL to tools it marks `readOnlyHint: true` and to
 * resources. Never kept: errors, `isError` and `input_required` results, task-augmented calls, calls
 * that travel sealed, and the gateway's own service (answered in-process by the caller's access).
 */
import { isCacheableMethod, MAX_CACHE_TTL_MS, type CacheScope } from "../../protocol/index.js";
import { globToRegExp } from "../access/policy.js";
import type { ServiceCatalog } from "../catalog/catalog.js";

/** How one call may be cached before its answer is known: by an announced rule, or only by the upstream's word. */
export interface CacheDecision {
  /** The announced rule's TTL and scope; undefined when only the result's own `ttlMs` can make it cacheable. */
  rule: { ttlMs: number; scope: CacheScope } | undefined;
}

/** The result's own word, else the rule: how long it is kept and for whom, or undefined when it is not kept. */
export interface CacheLifetime {
  ttlMs: number;
  scope: CacheScope;
}

const BY_UPSTREAM_ONLY: CacheDecision = { rule: undefined };

/** One service's announced rules, compiled, and which of its tools are read-only. */
export class ServiceCacheRules {
  private readonly rules: { matches: RegExp; ttlMs: number; scope: CacheScope }[];
  private readonly readOnlyTools: ReadonlySet<string>;
  private readonly decisions = new Map<string, CacheDecision | undefined>();

  constructor(service: ServiceCatalog) {
    this.rules = (service.cache?.rules ?? []).map((rule) => ({ matches: globToRegExp(rule.pattern), ttlMs: rule.ttl_ms, scope: rule.scope }));
    this.readOnlyTools = new Set(
      service.catalog.tools.filter((tool) => (tool.annotations as { readOnlyHint?: unknown } | undefined)?.readOnlyHint === true).map((tool) => tool.name),
    );
  }

  get empty(): boolean {
    return this.rules.length === 0;
  }

  /** A read-only tool's rule, or undefined (not read-only, or no rule matches): the call is not cached. */
  tool(name: string): CacheDecision | undefined {
    if (!this.readOnlyTools.has(name)) return undefined;
    return this.ruled(`t\n${name}`, name);
  }

  /** A resource's rule, or only the upstream's word. */
  resource(uri: string): CacheDecision {
    return this.ruled(`r\n${uri}`, uri) ?? BY_UPSTREAM_ONLY;
  }

  private ruled(memo: string, name: string): CacheDecision | undefined {
    if (this.rules.length === 0) return undefined;
    if (this.decisions.has(memo)) return this.decisions.get(memo);
    const rule = this.rules.find((candidate) => candidate.matches.test(name));
    const decision = rule ? { rule: { ttlMs: rule.ttlMs, scope: rule.scope } } : undefined;
    // URIs are unbounded: remember a bounded number of decisions.
    if (this.decisions.size < 10_000) this.decisions.set(memo, decision);
    return decision;
  }
}

/**
 * How a call of `method` may be cached by the service's rules, or undefined when it is never cached
 * (a tool without a rule, prompts, completions ...). Resources and the other methods whose results
 * may carry `ttlMs` are cacheable by the upstream's word even without a rule.
 */
export function decide(rules: ServiceCacheRules | undefined, method: string, params: Record<string, unknown>): CacheDecision | undefined {
  if (method === "tools/call") return rules && typeof params.name === "string" ? rules.tool(params.name) : undefined;
  if (method === "resources/read") return rules && typeof params.uri === "string" ? rules.resource(params.uri) : BY_UPSTREAM_ONLY;
  return isCacheableMethod(method) ? BY_UPSTREAM_ONLY : undefined;
}

/** A call that is never cached whatever the rules: task-augmented (a task is its own answer) or the task runner's own call. */
export function neverCached(params: Record<string, unknown>, transport: string): boolean {
  return transport === "task" || params.task !== undefined;
}

/** How long `result` is kept and for whom, or undefined when it must not be kept. */
export function lifetimeOf(method: string, result: Record<string, unknown>, decision: CacheDecision): CacheLifetime | undefined {
  if (result.isError === true || result.task !== undefined) return undefined;
  // A 2026-07-28 result asking for more input (or any result type but a complete answer).
  if (result.resultType !== undefined && result.resultType !== "complete") return undefined;
  if (isCacheableMethod(method) && typeof result.ttlMs === "number") {
    // The upstream's word wins over any rule, 0 included (not cacheable).
    if (!(result.ttlMs > 0) || !Number.isFinite(result.ttlMs)) return undefined;
    return { ttlMs: Math.min(Math.trunc(result.ttlMs), MAX_CACHE_TTL_MS), scope: result.cacheScope === "public" ? "public" : "private" };
  }
  return decision.rule;
}

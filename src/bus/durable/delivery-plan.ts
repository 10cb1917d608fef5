/**
 * An executor's delivery plan (PROTOCOL.md §15.2): which of its tools are called durably, and in which
 * lane, from the service's mode and per-tool rules, resolved against the upstream's current tools.
 *
 * - `direct`: every tool direct, except those a rule makes durable.
 * - `durable`: every tool durable, except those a rule makes direct.
 * - `auto`: tools the upstream marks `readOnlyHint: true` direct (a read is cheap to repeat and needs
 *   no queue), every other tool durable. `idempotentHint` does not change the mode: an idempotent tool
 *   is simply safe under the at-least-once execution that durable delivery has after a crash.
 *
 * A rule names tools by a pattern (`*` any characters, `?` one). The first rule that sets the mode
 * for a tool decides it, and the first that sets the lane decides that.
 */
import type { Catalog, DeliveryMode, DeliveryPlan, PriorityLane } from "../../protocol/index.js";
import type { DurableSettings } from "./work-queue.js";

export type DeliveryChoice = DeliveryMode | "auto";

export interface ToolRule {
  /** Tool names: `*` matches any characters, `?` one. */
  pattern: string;
  mode?: DeliveryMode;
  priority?: PriorityLane;
}

export interface DeliveryOptions {
  mode: DeliveryChoice;
  rules?: ToolRule[];
  /** The lane of durable calls whose tool no rule puts elsewhere (default normal). */
  priority?: PriorityLane;
  /** Redelivery and concurrency of durable calls (defaults: DEFAULT_DURABLE_SETTINGS). */
  settings?: Partial<DurableSettings>;
}

/** Whether any tool can be durable under these options (the executor then takes durable work). */
export function usesDurable(options: DeliveryOptions | undefined): boolean {
  return options !== undefined && (options.mode !== "direct" || (options.rules ?? []).some((rule) => rule.mode === "durable"));
}

export function planDelivery(catalog: Catalog, options: DeliveryOptions, maxDeliver?: number): DeliveryPlan {
  const mode: DeliveryMode = options.mode === "direct" ? "direct" : "durable";
  const priority: PriorityLane = options.priority ?? "normal";
  const rules = (options.rules ?? []).map((rule) => ({ ...rule, matches: patternMatcher(rule.pattern) }));
  const tools: DeliveryPlan["tools"] = {};
  for (const tool of catalog.tools) {
    const ruled = (key: "mode" | "priority") => rules.find((rule) => rule[key] !== undefined && rule.matches(tool.name))?.[key];
    const readOnly = (tool.annotations as { readOnlyHint?: unknown } | undefined)?.readOnlyHint === true;
    const toolMode = (ruled("mode") as DeliveryMode | undefined) ?? (options.mode === "auto" && readOnly ? "direct" : mode);
    const toolLane = (ruled("priority") as PriorityLane | undefined) ?? priority;
    if (toolMode === mode && toolLane === priority) continue;
    tools[tool.name] = { ...(toolMode === mode ? {} : { mode: toolMode }), ...(toolLane === priority ? {} : { priority: toolLane }) };
  }
  return { mode, priority, tools, ...(maxDeliver ? { max_deliver: maxDeliver } : {}) };
}

/** A glob with `*` and `?` as a matcher of whole names. */
export function patternMatcher(pattern: string): (name: string) => boolean {
  const source = pattern
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  const regex = new RegExp(`^${source}$`);
  return (name) => regex.test(name);
}

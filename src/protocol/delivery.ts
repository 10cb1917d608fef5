/**
 * Delivery modes (PROTOCOL.md §15): how the `tools/call` requests of a service travel. `direct` is core
 * NATS request/reply (at most once, fastest); `durable` is a JetStream work queue that keeps the request
 * until an executor has answered it. Executors announce their plan; gateways route by it.
 */
import * as z from "zod";

export const DELIVERY_MODES = ["direct", "durable"] as const;
export type DeliveryMode = (typeof DELIVERY_MODES)[number];

/** Priority lanes of durable requests: `high` requests overtake a backlog of `normal` ones. */
export const PRIORITY_LANES = ["high", "normal"] as const;
export type PriorityLane = (typeof PRIORITY_LANES)[number];

export function isPriorityLane(value: unknown): value is PriorityLane {
  return typeof value === "string" && (PRIORITY_LANES as readonly string[]).includes(value);
}

/** `params._meta` key by which an MCP client picks the lane of one call: `"high"` or `"normal"`. */
export const META_PRIORITY = "io.dmcp/priority";
/** `params._meta` keys an executor adds to durable calls it forwards upstream, so tools can guard side effects. */
export const META_CORRELATION_ID = "io.dmcp/correlation_id";
export const META_ATTEMPT = "io.dmcp/attempt";

const Mode = z.enum(DELIVERY_MODES);
const Lane = z.enum(PRIORITY_LANES);

/** The announcement's `delivery` field: the service's default and the tools that differ from it. */
export const DeliveryPlan = z.looseObject({
  mode: Mode.default("direct").describe("how tools/call requests travel unless `tools` says otherwise"),
  priority: Lane.default("normal").describe("the lane of durable calls unless `tools` or the caller says otherwise"),
  tools: z
    .record(z.string(), z.looseObject({ mode: Mode.optional(), priority: Lane.optional() }))
    .default({})
    .describe("per tool (by the upstream's name): where its mode or lane differs from the defaults"),
  max_deliver: z.number().int().positive().optional().describe("delivery attempts before a durable request is dead-lettered"),
});
export type DeliveryPlan = z.infer<typeof DeliveryPlan>;

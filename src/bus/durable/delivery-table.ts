/**
 * Which calls the gateway sends durably, and in which lane (PROTOCOL.md §15.2): by the delivery plan
 * each service announces. Only `tools/call` can be durable; the caller may pick the lane of one call
 * with `params._meta["io.dmcp/priority"]`, else the tool's announced lane, else the service's.
 */
import { isPriorityLane, META_PRIORITY, type DeliveryPlan, type PriorityLane } from "../../protocol/index.js";

export class DeliveryTable {
  private readonly plans = new Map<string, DeliveryPlan>();

  /** `catalogs`: what each service announced (the gateway's catalog entries), by service. */
  constructor(catalogs: ReadonlyMap<string, { delivery?: DeliveryPlan | undefined }> = new Map()) {
    for (const [service, catalog] of catalogs) if (catalog.delivery) this.plans.set(service, catalog.delivery);
  }

  /** The lane of a durable call, or undefined when the call goes direct. `params` are as forwarded (upstream names). */
  laneFor(service: string, method: string, params: Record<string, unknown>): PriorityLane | undefined {
    if (method !== "tools/call") return undefined;
    const plan = this.plans.get(service);
    if (!plan) return undefined;
    const tool = typeof params.name === "string" ? plan.tools[params.name] : undefined;
    if ((tool?.mode ?? plan.mode) !== "durable") return undefined;
    const asked = (params._meta as Record<string, unknown> | undefined)?.[META_PRIORITY];
    return isPriorityLane(asked) ? asked : (tool?.priority ?? plan.priority);
  }
}

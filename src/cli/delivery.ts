/** Durable delivery settings of an executor, from `dmcp wrap` flags or a config file's server entry. */
import * as z from "zod";
import type { DeliveryOptions, DurableSettings, ToolRule } from "../bus/index.js";
import { parseDuration, parsePositiveInt, UsageError } from "./args.js";

const Duration = z.union([z.number().int().positive(), z.string().regex(/^\d+(\.\d+)?\s*(ms|s|m|h|d)?$/, "a duration such as 500ms, 30s or 15m")]);
const Lane = z.enum(["high", "normal"]);

/** The keys a config file's server entry may have for durable delivery (docs/durable-calls.md; the table of docs/configuration.md). */
export const DeliveryConfigFields = {
  delivery: z.enum(["direct", "durable", "auto"]).default("direct").describe("how tools/call requests reach the server: direct, durable or auto"),
  priority: Lane.default("normal").describe("the lane of durable calls unless `tools` or the caller says otherwise"),
  tools: z
    .record(z.string().min(1), z.strictObject({ delivery: z.enum(["direct", "durable"]).optional(), priority: Lane.optional() }))
    .default({})
    .describe("per tool, by name pattern (* and ?): its delivery and lane; the first matching entry decides"),
  durable: z
    .strictObject({
      maxDeliver: z.number().int().min(1).max(100).optional().describe("delivery attempts before a request is dead-lettered (default 5)"),
      ackWait: Duration.optional().describe("a request held this long without a sign of life goes to another replica (default 10s)"),
      backoff: z.array(Duration).min(1).optional().describe("delays before the 2nd, 3rd, ... attempt after a failure (default 1s, 5s, 15s)"),
      concurrency: z.number().int().min(1).max(10_000).optional().describe("durable calls one replica runs at once (default 16)"),
      resultTtl: Duration.optional().describe(
        "dmcp up: how long its gateway's result store keeps answers, when it creates the store (the longest of the servers' values; default 15m)",
      ),
    })
    .default({}),
};

type DeliveryConfig = { [K in keyof typeof DeliveryConfigFields]: z.infer<(typeof DeliveryConfigFields)[K]> };

export const deliveryOptionSpec = {
  delivery: { type: "string" },
  "durable-tools": { type: "string", multiple: true },
  "direct-tools": { type: "string", multiple: true },
  "high-priority-tools": { type: "string", multiple: true },
  "max-deliver": { type: "string" },
  "ack-wait": { type: "string" },
  backoff: { type: "string" },
  concurrency: { type: "string" },
  "result-ttl": { type: "string" },
} as const;

export const deliveryHelp = `  --delivery MODE       how tools/call requests reach this service: direct (default: core NATS,
                        at most once), durable (a JetStream work queue keeps each request until a
                        replica has answered it; a replica that dies mid-call is replaced by
                        another) or auto (durable, except tools marked readOnlyHint)
  --durable-tools P,... these tools are durable whatever --delivery says (patterns with * and ?;
                        repeatable)
  --direct-tools P,...  these tools are direct (wins over --durable-tools)
  --high-priority-tools P,...
                        durable calls of these tools take the high lane, ahead of a backlog (a
                        client picks the lane of one call with _meta["io.dmcp/priority"])
  --max-deliver N       deliveries of a durable request before it is dead-lettered (default: 5)
  --ack-wait D          a durable request held this long without a sign of life goes to another
                        replica (default: 10s; running calls send signs of life)
  --backoff D,D,...     delays before the 2nd, 3rd, ... attempt after a failure (default: 1s,5s,15s)
  --concurrency N       durable calls this replica runs at once (default: 16)
`;

/** The delivery options the `dmcp wrap` flags give, or undefined when none is given (all direct). */
export function deliveryFromFlags(values: Partial<Record<keyof typeof deliveryOptionSpec, string | string[]>>): DeliveryOptions | undefined {
  const text = (flag: keyof typeof deliveryOptionSpec) => values[flag] as string | undefined;
  const list = (flag: keyof typeof deliveryOptionSpec) =>
    ((values[flag] as string[] | undefined) ?? [])
      .flatMap((value) => value.split(","))
      .map((p) => p.trim())
      .filter(Boolean);
  const mode = text("delivery") ?? "direct";
  if (mode !== "direct" && mode !== "durable" && mode !== "auto") throw new UsageError(`--delivery must be direct, durable or auto, got ${mode}`);
  const rules: ToolRule[] = [
    ...list("direct-tools").map((pattern) => ({ pattern, mode: "direct" as const })),
    ...list("durable-tools").map((pattern) => ({ pattern, mode: "durable" as const })),
    ...list("high-priority-tools").map((pattern) => ({ pattern, priority: "high" as const })),
  ];
  const settings: Partial<DurableSettings> = {};
  const maxDeliver = parsePositiveInt(text("max-deliver"), "--max-deliver");
  if (maxDeliver) settings.maxDeliver = maxDeliver;
  const concurrency = parsePositiveInt(text("concurrency"), "--concurrency");
  if (concurrency) settings.concurrency = concurrency;
  if (text("ack-wait")) settings.ackWaitMs = parseDuration(text("ack-wait")!, "--ack-wait");
  if (text("result-ttl")) throw new UsageError("--result-ttl is a dmcp gateway option: the gateway creates the result store (executors do not)");
  if (text("backoff"))
    settings.backoffMs = text("backoff")!
      .split(",")
      .map((delay) => parseDuration(delay, "--backoff"));
  const given = text("delivery") !== undefined || rules.length > 0 || Object.keys(settings).length > 0;
  return given ? { mode, rules, settings } : undefined;
}

/** The delivery options of a config file's server entry, or undefined when it keeps every default (all direct). */
export function deliveryFromConfig(server: DeliveryConfig): DeliveryOptions | undefined {
  const rules: ToolRule[] = Object.entries(server.tools).map(([pattern, tool]) => ({
    pattern,
    ...(tool.delivery ? { mode: tool.delivery } : {}),
    ...(tool.priority ? { priority: tool.priority } : {}),
  }));
  const duration = (value: number | string | undefined, path: string) => (typeof value === "string" ? parseDuration(value, path) : value);
  const { maxDeliver, ackWait, backoff, concurrency } = server.durable;
  const settings: Partial<DurableSettings> = {
    ...(maxDeliver ? { maxDeliver } : {}),
    ...(concurrency ? { concurrency } : {}),
    ...(ackWait !== undefined ? { ackWaitMs: duration(ackWait, "durable.ackWait")! } : {}),
    ...(backoff ? { backoffMs: backoff.map((delay) => duration(delay, "durable.backoff")!) } : {}),
  };
  if (server.delivery === "direct" && rules.length === 0 && server.priority === "normal") return undefined;
  return { mode: server.delivery, rules, priority: server.priority, settings };
}

/** `dmcp up`: the result store's TTL its gateway creates it with, the longest of the servers' `durable.resultTtl`. */
export function resultTtlFromConfig(servers: Record<string, DeliveryConfig>): number | undefined {
  const ttls = Object.entries(servers).flatMap(([name, server]) => {
    const ttl = server.durable.resultTtl;
    return ttl === undefined ? [] : [typeof ttl === "string" ? parseDuration(ttl, `servers.${name}.durable.resultTtl`) : ttl];
  });
  return ttls.length > 0 ? Math.max(...ttls) : undefined;
}

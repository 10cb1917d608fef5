import { DEFAULT_HEARTBEAT_MS, RegistryView, type LiveInstance } from "../../bus/index.js";
import type { Logger } from "../../util/index.js";
import { natsHelp, natsOptions, parse, parseNonNegativeInt } from "../args.js";
import { connectCommandBus } from "../bus.js";

export const statusHelp = `Usage: dmcp status [--nats URL] [--json] [--wait MS]

Lists the live services on the bus (executors and native agents), their replicas (status, load,
last heartbeat) and tools; --json adds each agent's profile (version, topics it publishes and
consumes).

Options:
${natsHelp}  --json                print JSON instead of a table
  --wait MS             how long to listen for heartbeats before printing (default: 2500)
  --log-level LEVEL     trace, debug, info, warn, error or silent (default: warn)
  -h, --help            show this help
`;

export async function statusCommand(argv: string[], logger: Logger): Promise<number> {
  const { values } = parse(argv, { ...natsOptions, json: { type: "boolean" }, wait: { type: "string" } });
  if (values.help) {
    process.stdout.write(statusHelp);
    return 0;
  }
  const waitMs = parseNonNegativeInt(values.wait, "--wait") ?? DEFAULT_HEARTBEAT_MS + 500;
  const bus = await connectCommandBus("status", values, { name: "dmcp-status", logger });
  const view = new RegistryView(bus);
  try {
    await view.start();
    // The registry holds the announcements; one heartbeat interval shows which replicas are alive.
    await new Promise((resolve) => setTimeout(resolve, waitMs));
    const instances = view.list();
    process.stdout.write(values.json ? `${JSON.stringify(toJson(instances), null, 2)}\n` : renderTable(instances));
  } finally {
    await view.stop();
    await bus.drain();
  }
  return 0;
}

function toJson(instances: LiveInstance[]) {
  const services: Record<string, { replicas: unknown[]; tools: string[]; resources: number; prompts: number }> = {};
  for (const live of instances) {
    let entry = services[live.service];
    if (!entry) {
      entry = {
        replicas: [],
        tools: live.announcement.catalog.tools.map((t) => t.name),
        resources: live.announcement.catalog.resources.length,
        prompts: live.announcement.catalog.prompts.length,
      };
      services[live.service] = entry;
    }
    entry.replicas.push({
      instance: live.instance,
      status: live.heartbeat?.status ?? live.announcement.status,
      inflight: live.heartbeat?.inflight ?? null,
      handled: live.heartbeat?.handled ?? null,
      last_seen_ms: Date.now() - live.lastSeen,
      heartbeat_seen: live.heartbeat !== undefined,
      kind: live.announcement.profile ? "agent" : "executor",
      server_info: live.announcement.server_info ?? null,
      profile: live.announcement.profile ?? null,
    });
  }
  return { services };
}

function renderTable(instances: LiveInstance[]): string {
  if (instances.length === 0) return "no services on the bus\n";
  const rows = [["SERVICE", "INSTANCE", "KIND", "STATUS", "INFLIGHT", "HANDLED", "LAST SEEN", "TOOLS"]];
  for (const live of instances) {
    const profile = live.announcement.profile;
    rows.push([
      live.service,
      live.instance,
      profile ? `agent ${profile.version}` : "executor",
      live.heartbeat?.status ?? live.announcement.status,
      String(live.heartbeat?.inflight ?? "-"),
      String(live.heartbeat?.handled ?? "-"),
      live.heartbeat ? `${((Date.now() - live.lastSeen) / 1000).toFixed(1)}s ago` : "no heartbeat yet",
      live.announcement.catalog.tools.map((t) => t.name).join(", ") || "-",
    ]);
  }
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  const lines = rows.map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!))).join("  "));
  const services = new Set(instances.map((i) => i.service)).size;
  return `${lines.join("\n")}\n\n${services} service(s), ${instances.length} replica(s)\n`;
}

import { ensureCacheBucket } from "../../bus/index.js";
import { isValidToken } from "../../protocol/index.js";
import type { Logger } from "../../util/index.js";
import { natsHelp, natsOptions, parse, UsageError } from "../args.js";
import { connectCommandBus } from "../bus.js";

export const cacheHelp = `Usage: dmcp cache purge [SERVICE] [--nats URL]

Purges the gateway cache: every cached answer, or those of SERVICE. The entries in the shared bucket
on the bus are removed, and every gateway on the bus is told to drop them from its local cache.

Options:
${natsHelp}  --log-level LEVEL     trace, debug, info, warn, error or silent (default: warn)
  -h, --help            show this help
`;

export async function cacheCommand(argv: string[], logger: Logger): Promise<number> {
  const { values, positionals } = parse(argv, { ...natsOptions }, true);
  if (values.help) {
    process.stdout.write(cacheHelp);
    return 0;
  }
  const [action, service, ...extra] = positionals;
  if (action !== "purge") throw new UsageError(`dmcp cache needs the action purge, got ${JSON.stringify(action ?? "")} (see dmcp cache --help)`);
  if (extra.length > 0) throw new UsageError("dmcp cache purge takes at most one SERVICE");
  if (service !== undefined && !isValidToken(service)) throw new UsageError(`invalid service name ${JSON.stringify(service)}: use 1-128 characters from A-Z a-z 0-9 _ -`);
  const bus = await connectCommandBus("cache", values, { name: "dmcp-cache", logger });
  try {
    const shared = await ensureCacheBucket(bus);
    await shared.purge(service);
    shared.announcePurge({ ...(service ? { service } : {}), sender: "dmcp-cache" });
    await bus.flush();
  } finally {
    await bus.drain();
  }
  process.stdout.write(service ? `purged the cached answers of ${service}\n` : "purged every cached answer\n");
  return 0;
}

/** The bus connection of a `dmcp` command: the NATS server it finds, and advice that fits the command when that fails. */
import { connectBus, hasJetStream, type Bus } from "../bus/index.js";
import { BusError, ErrorCode } from "../protocol/index.js";
import type { MessageSecurity } from "../security/index.js";
import type { Logger } from "../util/index.js";
import { natsConnection, natsTarget, type NatsTarget } from "./args.js";

export type BusCommand = "up" | "gateway" | "wrap" | "status" | "tail" | "cache";

export interface CommandBusOptions {
  name: string;
  logger: Logger;
  security?: MessageSecurity | undefined;
}

/** Connects as the NATS flags say (see natsTarget), and makes sure the server has JetStream. */
export async function connectCommandBus(command: BusCommand, values: Record<string, unknown>, options: CommandBusOptions): Promise<Bus> {
  const target = natsTarget(values);
  if (target.up) options.logger.info({ url: target.url, upPid: target.up.pid, dataDir: target.dataDir }, "using the bus of the dmcp up running on this machine");
  const bus = await connectBus({ ...natsConnection(values, target), ...options, unreachableHint: unreachableAdvice(command, target) });
  try {
    await requireJetStream(bus, target.url, options.logger);
  } catch (err) {
    await bus.drain();
    throw err;
  }
  return bus;
}

function unreachableAdvice(command: BusCommand, target: NatsTarget): string {
  if (command === "up") return "Start that nats-server (with JetStream: nats-server -js), or leave out --nats and the config's nats.url to let `dmcp up` start its own.";
  const startOne = `Start \`dmcp up\` on this machine (dmcp ${command} then finds its bus by itself), or a nats-server with JetStream (nats-server -js) and give its URL with --nats.`;
  switch (target.from) {
    case "dmcp up":
      return `That is the bus of the dmcp up with pid ${target.up!.pid} (store ${target.dataDir}), which does not answer there: is it stuck? Stop it and start it again.`;
    case "default":
      return `No dmcp up is running with the store ${target.dataDir} (give --data-dir if yours uses another). ${startOne}`;
    default:
      return `Start a nats-server with JetStream there (nats-server -js), or correct the URL (${target.from}). Without --nats and $DMCP_NATS_URL, dmcp ${command} uses the bus of the dmcp up running on this machine.`;
  }
}

/** dMCP keeps its registry, context and durable calls in JetStream: a server without it is refused at once. */
async function requireJetStream(bus: Bus, url: string, logger: Logger): Promise<void> {
  let enabled: boolean;
  try {
    enabled = await hasJetStream(bus);
  } catch (err) {
    // No telling (a slow server, a denial): left to the command's own first use of JetStream.
    logger.debug({ err }, "could not check for JetStream");
    return;
  }
  if (!enabled) {
    throw new BusError(
      ErrorCode.BusUnavailable,
      `the NATS server at ${url} has no JetStream, which dMCP needs (registry, context, durable calls): start it with JetStream (nats-server -js), or enable JetStream for this NATS account; on a leafnode server, give the cluster's JetStream domain with --js-domain.`,
    );
  }
}

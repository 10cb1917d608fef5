import { ContextStreams, type ContextEntry } from "../../bus/index.js";
import { decodeEnvelope, subjects, type Envelope } from "../../protocol/index.js";
import type { Logger } from "../../util/index.js";
import { natsHelp, natsOptions, parse, parsePositiveInt, UsageError } from "../args.js";
import { connectCommandBus } from "../bus.js";
import { runUntilSignal } from "../lifecycle.js";

export const tailHelp = `Usage: dmcp tail [--nats URL] [TOPIC...] [--last N] [--no-errors] [--json]

Prints context updates and error notifications from the bus as they happen, one per line, until
Ctrl-C. TOPIC may use NATS wildcards: plant.* (one token), plant.> (the rest); default: every topic.

Options:
${natsHelp}  --last N              first print the last N stored updates of each TOPIC given by name
  --no-errors           do not print error notifications (dmcp.v1.err.>)
  --json                print each envelope as one JSON line instead of text
  --log-level LEVEL     trace, debug, info, warn, error or silent (default: warn)
  -h, --help            show this help
`;

export async function tailCommand(argv: string[], logger: Logger): Promise<number> {
  const { values, positionals } = parse(argv, { ...natsOptions, last: { type: "string" }, "no-errors": { type: "boolean" }, json: { type: "boolean" } }, true);
  if (values.help) {
    process.stdout.write(tailHelp);
    return 0;
  }
  const patterns = positionals.length > 0 ? positionals : [">"];
  for (const pattern of patterns) {
    try {
      subjects.contextPattern(pattern);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  const last = parsePositiveInt(values.last, "--last");
  const json = values.json ?? false;
  const bus = await connectCommandBus("tail", values, { name: "dmcp-tail", logger });
  const streams = new ContextStreams(bus, "dmcp-tail");
  const print = (line: string) => process.stdout.write(`${line}\n`);
  const printUpdate = (entry: Omit<ContextEntry, "seq"> & { seq?: number }) => print(json ? JSON.stringify(entry.envelope) : formatUpdate(entry));

  if (last) {
    // Stream sequences are shared by all topics, so the last N of one topic are found by reading it.
    for (const topic of patterns.filter((pattern) => !/[*>]/.test(pattern))) {
      for (const entry of (await streams.history(topic, { limit: 10_000 })).slice(-last)) printUpdate(entry);
    }
  }
  const watchers = patterns.map((pattern) =>
    streams.watch(pattern, printUpdate, (bad) => process.stderr.write(`dmcp tail: malformed update on ${bad.subject}: ${bad.error.message}\n`)),
  );
  const errors = values["no-errors"]
    ? undefined
    : bus.subscribe(subjects.errorsAll(), (msg) => {
        const decoded = decodeEnvelope(msg.data);
        if (decoded.ok) print(json ? JSON.stringify(decoded.envelope) : formatError(decoded.envelope));
        else process.stderr.write(`dmcp tail: malformed message on ${msg.subject}: ${decoded.error.message}\n`);
      });
  await bus.flush();
  // Ctrl-C is handled from before the line that says tail is watching.
  const stopped = runUntilSignal(logger, async () => {
    for (const watcher of watchers) watcher.unsubscribe();
    errors?.unsubscribe();
    await bus.drain();
  });
  process.stderr.write(`dmcp tail: watching ${patterns.join(", ")}${errors ? " and errors" : ""}\n`);
  await stopped;
  return 0;
}

function formatUpdate(entry: Omit<ContextEntry, "seq"> & { seq?: number }): string {
  const seq = entry.seq ? ` #${entry.seq}` : "";
  return `${entry.envelope.timestamp} ${entry.topic}${seq} ${entry.envelope.sender_id} ${JSON.stringify(entry.envelope.payload.data ?? null)}`;
}

function formatError(envelope: Envelope): string {
  if (envelope.type !== "error_notification") return `${envelope.timestamp} ${envelope.type} from ${envelope.sender_id}`;
  return `${envelope.timestamp} ERROR ${envelope.sender_id} ${envelope.payload.code}: ${envelope.payload.message}`;
}

/**
 * What a pause after a fault is made of, for `npm run chaos:cluster` with CHAOS_TIMELINE=1: which
 * JetStream leaders (the work stream, the service's lane consumer, the result store) were missing and
 * when they came back, what the processes logged around the fault, when each executor ran its first
 * call after it, and the answers per quarter second. Times are milliseconds from the kill.
 */
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";

/** A leader as one poll saw it: a server name, "none" (the asset answered without one) or "no answer". */
interface LeaderChange {
  at: number;
  asset: string;
  leader: string;
}

export interface LeaderWatch {
  /** Stops polling; resolves with every change seen, in order. */
  stop(): Promise<LeaderChange[]>;
}

const POLL_MS = 100;
const API_TIMEOUT_MS = 400;

/** Polls the leaders of the work stream, a lane consumer and the result store every 100 ms. */
export async function watchLeaders(seeds: string, assets: { stream: string; consumer?: string }[]): Promise<LeaderWatch> {
  const nc: NatsConnection = await connect({ servers: seeds.split(","), name: "chaos-timeline", reconnectTimeWait: 100, maxReconnectAttempts: -1 });
  const jsm: JetStreamManager = await jetstreamManager(nc, { timeout: API_TIMEOUT_MS, checkAPI: false });
  const changes: LeaderChange[] = [];
  const last = new Map<string, string>();
  let running = true;
  const poll = async (asset: { stream: string; consumer?: string }): Promise<void> => {
    const name = asset.consumer ? `consumer ${asset.consumer}` : `stream ${asset.stream}`;
    const info = asset.consumer ? jsm.consumers.info(asset.stream, asset.consumer) : jsm.streams.info(asset.stream);
    const leader = await info.then(
      (found) => found.cluster?.leader ?? "none",
      () => "no answer",
    );
    if (last.get(name) !== leader) {
      last.set(name, leader);
      changes.push({ at: Date.now(), asset: name, leader });
    }
  };
  const loop = (async () => {
    while (running) {
      const started = Date.now();
      await Promise.all(assets.map(poll));
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, POLL_MS - (Date.now() - started))));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      await nc.close();
      return changes;
    },
  };
}

/** One process's stderr, labelled. */
export interface LoggedProcess {
  label: string;
  lines: string[];
  /** Where this phase's lines start. */
  since: number;
}

/** Log lines (pino JSON) that say something about the bus, JetStream or durable delivery. */
const TELLING = /bus|reconnect|disconnect|heartbeat|pull|consum|durable|result store|queue|publish|leader|retry|settle|deliver/i;

/** The timeline of one phase: leader changes, telling log lines and each executor's first run after the kill, sorted by time. */
export function formatTimeline(killAt: number, leaders: LeaderChange[], processes: LoggedProcess[], answers: number[], windowMs = 15_000): string {
  const events: { at: number; text: string }[] = [];
  for (const change of leaders) if (change.at >= killAt - 2_000) events.push({ at: change.at, text: `${change.asset}: leader ${change.leader}` });
  for (const process of processes) {
    let firstRun: number | undefined;
    for (const line of process.lines.slice(process.since)) {
      let entry: { time?: number; msg?: string; upstream_stderr?: string; err?: { message?: string }; [key: string]: unknown };
      try {
        entry = JSON.parse(line) as typeof entry;
      } catch {
        continue;
      }
      const at = entry.time;
      if (typeof at !== "number" || at < killAt - 500 || at > killAt + windowMs) continue;
      if (typeof entry.upstream_stderr === "string") {
        if (firstRun === undefined && at > killAt && entry.upstream_stderr.startsWith("sleep: running")) firstRun = at;
        continue;
      }
      if (typeof entry.msg === "string" && TELLING.test(entry.msg)) {
        const detail = [describeStatus(entry.status), entry.err?.message?.slice(0, 120)].filter(Boolean).join(": ");
        events.push({ at, text: `${process.label}: ${entry.msg}${detail ? ` (${detail})` : ""}` });
      }
    }
    if (firstRun !== undefined) events.push({ at: firstRun, text: `${process.label}: first upstream run after the kill` });
  }
  events.sort((a, b) => a.at - b.at);
  const lines = collapse(events).map((event) => `    ${String(event.at - killAt).padStart(6)} ms  ${event.text}`);
  // Answers per 250 ms from the kill until the rate was steady again (the window), so a gap shows as zeros.
  const buckets: number[] = [];
  for (const at of answers) {
    const index = Math.floor((at - killAt) / 250);
    if (index < 0 || index >= windowMs / 250) continue;
    buckets[index] = (buckets[index] ?? 0) + 1;
  }
  const lastBucket = buckets.length;
  const perQuarter = Array.from({ length: lastBucket }, (_, index) => buckets[index] ?? 0);
  lines.push(`    answers per 250 ms from the kill: ${perQuarter.join(" ")}`);
  return lines.join("\n");
}

/** A bus status (a string) or a consumer notification (an object with a type) as logged. */
function describeStatus(status: unknown): string | undefined {
  if (typeof status === "string") return status;
  if (!status || typeof status !== "object") return undefined;
  const { type, count, code } = status as { type?: unknown; count?: unknown; code?: unknown };
  return [type, count === undefined ? undefined : `count ${String(count)}`, code === undefined ? undefined : `code ${String(code)}`].filter(Boolean).join(" ");
}

/** Repeats of one line (a retry per call, a heartbeat missed per tick) as one line: how many, until when. */
function collapse(events: { at: number; text: string }[]): { at: number; text: string }[] {
  const out: { at: number; text: string; until: number; count: number }[] = [];
  const open = new Map<string, { at: number; text: string; until: number; count: number }>();
  for (const event of events) {
    // Counts differ from tick to tick: lines that differ only in them are one.
    const key = event.text.replace(/count \d+/g, "count #");
    const run = open.get(key);
    if (run && event.at - run.until <= 1_000) {
      run.until = event.at;
      run.count++;
      continue;
    }
    const started = { ...event, until: event.at, count: 1 };
    open.set(key, started);
    out.push(started);
  }
  return out.map((run) => (run.count === 1 ? run : { at: run.at, text: `${run.text} (×${run.count} until ${run.until - run.at} ms later)` }));
}

/**
 * A private nats-server with its monitoring port on, so that the bench can count the messages a call
 * costs (/varz) and which of them JetStream stored, by stream (/jsz: a stream's last sequence).
 */
import type { EmbeddedNats } from "../../src/bus/nats-server.js";
import { BenchError } from "./config.js";
import { freePort, startNats } from "./processes.js";

export interface MessageCounts {
  /** Messages published to the server. */
  in: number;
  /** Messages the server delivered to subscribers. */
  out: number;
  /** Messages JetStream stored, by stream (KV buckets are the streams `KV_<bucket>`). */
  stored: Record<string, number>;
}

export interface MonitoredNats {
  server: EmbeddedNats;
  /** The server's counts so far (for the stored ones, each stream's last sequence). */
  counts(): Promise<MessageCounts>;
}

export async function startMonitoredNats(): Promise<MonitoredNats> {
  const monitorPort = await freePort();
  const server = await startNats(["-m", String(monitorPort)]);
  const monitor = async (path: string): Promise<unknown> => {
    const response = await fetch(`http://127.0.0.1:${monitorPort}${path}`);
    if (!response.ok) throw new BenchError(`nats-server ${path} answered ${response.status}`);
    return response.json();
  };
  const counts = async (): Promise<MessageCounts> => {
    const varz = (await monitor("/varz")) as { in_msgs?: number; out_msgs?: number };
    const jsz = (await monitor("/jsz?streams=true")) as { account_details?: Array<{ stream_detail?: Array<{ name: string; state: { last_seq: number } }> }> };
    const stored: Record<string, number> = {};
    for (const account of jsz.account_details ?? []) for (const stream of account.stream_detail ?? []) stored[stream.name] = (stored[stream.name] ?? 0) + stream.state.last_seq;
    return { in: varz.in_msgs ?? Number.NaN, out: varz.out_msgs ?? Number.NaN, stored };
  };
  return { server, counts };
}

/** What the server counted from `before` to `after` (a stream created in between counts from 0). */
export function countedBetween(before: MessageCounts, after: MessageCounts): MessageCounts {
  const stored: Record<string, number> = {};
  for (const [stream, seq] of Object.entries(after.stored)) stored[stream] = seq - (before.stored[stream] ?? 0);
  return { in: after.in - before.in, out: after.out - before.out, stored };
}

/** A private nats-server with its monitoring port on, so that the bench can count the messages a call costs (/varz). */
import type { EmbeddedNats } from "../../src/bus/nats-server.js";
import { BenchError } from "./config.js";
import { freePort, startNats } from "./processes.js";

export interface MessageCounts {
  /** Messages published to the server. */
  in: number;
  /** Messages the server delivered to subscribers. */
  out: number;
}

export interface MonitoredNats {
  server: EmbeddedNats;
  counts(): Promise<MessageCounts>;
}

export async function startMonitoredNats(): Promise<MonitoredNats> {
  const monitorPort = await freePort();
  const server = await startNats(["-m", String(monitorPort)]);
  const counts = async (): Promise<MessageCounts> => {
    const response = await fetch(`http://127.0.0.1:${monitorPort}/varz`);
    if (!response.ok) throw new BenchError(`nats-server /varz answered ${response.status}`);
    const varz = (await response.json()) as { in_msgs?: number; out_msgs?: number };
    return { in: varz.in_msgs ?? Number.NaN, out: varz.out_msgs ?? Number.NaN };
  };
  return { server, counts };
}

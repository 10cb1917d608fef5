/**
 * JetStream as a bus reaches it: in the bus's JetStream domain, if it has one (a process on a
 * leafnode server reaches the cluster's JetStream by its domain), and with the replicas the streams
 * this process creates get. Every module of src/bus gets its JetStream clients here.
 */
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { jetStreamSettingsOf, natsConnectionOf, type Bus } from "./connection.js";

export interface JetStreamClientOptions {
  /** How long one JetStream API request may take (nats.js's default otherwise). */
  timeout?: number | undefined;
}

function clientOptions(bus: Bus, options: JetStreamClientOptions): { domain?: string; timeout?: number } {
  const { domain } = jetStreamSettingsOf(bus);
  return { ...(domain ? { domain } : {}), ...(options.timeout === undefined ? {} : { timeout: options.timeout }) };
}

export function jetStreamOf(bus: Bus, options: JetStreamClientOptions = {}): JetStreamClient {
  return jetstream(natsConnectionOf(bus), clientOptions(bus, options));
}

export function jetStreamManagerOf(bus: Bus, options: JetStreamClientOptions = {}): Promise<JetStreamManager> {
  return jetstreamManager(natsConnectionOf(bus), clientOptions(bus, options));
}

/** How the streams a process creates are replicated, and where it says that an existing one has fewer replicas. */
export interface StreamPlacement {
  replicas: number;
  logger: Bus["logger"];
}

export function streamPlacementOf(bus: Bus): StreamPlacement {
  return { replicas: jetStreamSettingsOf(bus).replicas, logger: bus.logger };
}

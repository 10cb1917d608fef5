/** Test helpers: a real nats-server per test file, on a random loopback port. */
import { connect, type ConnectionOptions, type NatsConnection } from "@nats-io/transport-node";
import { connectBus } from "../../src/bus/connection.js";
import { startNatsServer, type EmbeddedNats, type EmbeddedNatsOptions } from "../../src/bus/nats-server.js";
import { provisionStreams } from "../../src/bus/index.js";
import { silentLogger } from "../../src/util/logger.js";

export type { EmbeddedNats, EmbeddedNatsOptions };

/** Starts a private nats-server (JetStream on, temp store, random port). Call `stop()` in afterAll. */
export function startTestNats(opts: EmbeddedNatsOptions = {}): Promise<EmbeddedNats> {
  return startNatsServer({ host: "127.0.0.1", port: -1, jetstream: true, ...opts });
}

/** Runs `fn` against a fresh server and always stops it afterwards. */
export async function withNatsServer<T>(fn: (server: EmbeddedNats) => Promise<T>, opts: EmbeddedNatsOptions = {}): Promise<T> {
  const server = await startTestNats(opts);
  try {
    return await fn(server);
  } finally {
    await server.stop();
  }
}

/** Creates dMCP's streams as a gateway does at start, for tests that run executors or agents without one. */
export async function provisionTestStreams(url: string): Promise<void> {
  const bus = await connectBus({ servers: url, name: "provision", logger: silentLogger() });
  try {
    await provisionStreams(bus);
  } finally {
    await bus.drain();
  }
}

/**
 * A NATS connection of the test's own, for what no dMCP component does and so the bus does not offer:
 * JetStream and KV used directly, NATS statuses, a subscription to everything. Drain it in afterAll.
 */
export function connectRawNats(url: string, options: Partial<ConnectionOptions> = {}): Promise<NatsConnection> {
  return connect({ servers: url, name: "test-raw", ...options });
}

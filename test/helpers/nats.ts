/** Test helpers: a real nats-server per test file, on a random loopback port. */
import { startNatsServer, type EmbeddedNats, type EmbeddedNatsOptions } from "../../src/bus/nats-server.js";

export type { EmbeddedNats };

/** Starts a private nats-server (JetStream on, temp store, random port). Call `stop()` in afterAll. */
export function startTestNats(opts: EmbeddedNatsOptions = {}): Promise<EmbeddedNats> {
  return startNatsServer({ host: "127.0.0.1", port: -1, jetstream: true, ...opts });
}

/** Runs `fn` against a fresh server and always stops it afterwards. */
export async function withNatsServer<T>(
  fn: (server: EmbeddedNats) => Promise<T>,
  opts: EmbeddedNatsOptions = {},
): Promise<T> {
  const server = await startTestNats(opts);
  try {
    return await fn(server);
  } finally {
    await server.stop();
  }
}

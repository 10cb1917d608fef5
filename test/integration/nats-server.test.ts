import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, expect, afterAll } from "vitest";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { findNatsServerBinary, startNatsServer, NatsServerNotFoundError, NatsServerStartError, type EmbeddedNats } from "../../src/bus/nats-server.js";
import { startTestNats } from "../support/nats.js";

/** Stops servers a failing test left behind. */
const started: EmbeddedNats[] = [];
async function track(p: Promise<EmbeddedNats>): Promise<EmbeddedNats> {
  const server = await p;
  started.push(server);
  return server;
}
afterAll(async () => {
  await Promise.all(started.map((s) => s.stop()));
});

function waitForReconnect(nc: NatsConnection): Promise<void> {
  return (async () => {
    for await (const s of nc.status()) {
      if (s.type === "reconnect") return;
    }
    throw new Error("status iterator ended without a reconnect");
  })();
}

describe("findNatsServerBinary", () => {
  it("finds the installed binary", () => {
    expect(findNatsServerBinary()).toMatch(/nats-server$/);
  });

  it("does not fall back when an explicit path is unusable", () => {
    expect(findNatsServerBinary("/nonexistent/nats-server")).toBeUndefined();
  });
});

describe("startNatsServer", () => {
  it("starts on a random loopback port and accepts clients", async () => {
    const server = await track(startTestNats());
    expect(server.host).toBe("127.0.0.1");
    expect(server.port).toBeGreaterThan(0);
    expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);
    expect(server.pid).toBeGreaterThan(0);

    const nc = await connect({ servers: server.url });
    await nc.flush();
    await nc.close();
    await server.stop();
  });

  it("enables JetStream", async () => {
    const server = await track(startTestNats());
    const nc = await connect({ servers: server.url });
    try {
      const jsm = await jetstreamManager(nc);
      const info = await jsm.getAccountInfo();
      expect(info.streams).toBe(0);
    } finally {
      await nc.close();
      await server.stop();
    }
  });

  it("restart() keeps the port and the store, and clients reconnect", async () => {
    const server = await track(startTestNats());
    const port = server.port;
    const firstPid = server.pid;
    const nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 50 });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: "RESTART_TEST", subjects: ["restart.test"] });

      const reconnected = waitForReconnect(nc);
      await server.restart();
      expect(server.port).toBe(port);
      expect(server.pid).not.toBe(firstPid);
      await reconnected;
      await nc.flush();

      const jsm2 = await jetstreamManager(nc);
      const info = await jsm2.streams.info("RESTART_TEST");
      expect(info.config.name).toBe("RESTART_TEST");
    } finally {
      await nc.close();
      await server.stop();
    }
  });

  it("kill() is abrupt, and restart() brings the server back", async () => {
    const server = await track(startTestNats({ jetstream: false }));
    server.kill();
    await server.restart();
    const nc = await connect({ servers: server.url });
    await nc.flush();
    await nc.close();
    await server.stop();
  });

  it("throws NatsServerNotFoundError for a missing binary", async () => {
    const err: unknown = await startNatsServer({ binary: "/nonexistent/nats-server" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NatsServerNotFoundError);
    const notFound = err as NatsServerNotFoundError;
    expect(notFound.code).toBe("NATS_SERVER_NOT_FOUND");
    expect(notFound.message).toContain("apt-get install -y nats-server");
    expect(notFound.message).toContain("https://github.com/nats-io/nats-server/releases");
    expect(notFound.message).toContain("NATS_SERVER_BIN");
  });

  it("throws NatsServerStartError with the server's stderr when the port is taken", async () => {
    const first = await track(startTestNats({ jetstream: false }));
    const err: unknown = await startTestNats({ port: first.port, jetstream: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NatsServerStartError);
    const startErr = err as NatsServerStartError;
    expect(startErr.code).toBe("NATS_SERVER_START_FAILED");
    expect(startErr.message).toContain("address already in use");
    await first.stop();
  });

  it("stop() removes the temp store dir and is idempotent", async () => {
    const server = await track(startTestNats());
    expect(existsSync(server.dataDir)).toBe(true);
    await server.stop();
    expect(existsSync(server.dataDir)).toBe(false);
    await server.stop();
    expect(server.pid).toBeGreaterThan(0);
    expect(() => process.kill(server.pid, 0)).toThrow();
  });

  it("stop() keeps a user-supplied store dir", async () => {
    const dir = await mkdtemp(join(tmpdir(), "dmcp-nats-test-"));
    try {
      const server = await track(startTestNats({ dataDir: dir }));
      expect(server.dataDir).toBe(dir);
      await server.stop();
      expect(existsSync(join(dir, "jetstream"))).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

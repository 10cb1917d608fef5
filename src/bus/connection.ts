/**
 * The NATS connection of one dMCP component: connect with a clear error when nothing answers, reconnect
 * forever while running, log status changes, drain on stop.
 */
import { readFileSync } from "node:fs";
import { connect, credsAuthenticator, nkeyAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { DmcpError, ErrorCode } from "../protocol/index.js";
import type { BusMetrics } from "../metrics/registry.js";
import type { Logger } from "../util/logger.js";

export interface BusConnectOptions {
  /** One URL or several (a cluster); e.g. nats://127.0.0.1:4222. */
  servers: string | string[];
  /** Shown by the NATS server's monitoring, e.g. `dmcp-gateway`. */
  name: string;
  logger: Logger;
  /** How long the first connection may take. */
  connectTimeoutMs?: number;
  user?: string;
  pass?: string;
  token?: string;
  /** A NATS credentials file (user JWT and nkey seed), as `nsc` writes it. */
  credsFile?: string;
  /** A file holding an nkey seed (SU...). */
  nkeySeedFile?: string;
  /** TLS: the CA that signed the server's certificate, and a client certificate and key if the server asks. */
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
}

export interface Bus {
  readonly nc: NatsConnection;
  readonly logger: Logger;
  /** The largest message the server accepts (its max_payload). */
  readonly maxPayload: number;
  /** Resolves when the connection is closed for good, with the error that closed it, if any. */
  readonly closed: Promise<Error | void>;
  isConnected(): boolean;
  /** Called each time the connection to the server is lost (before any reconnect). */
  onDisconnect(listener: () => void): void;
  /** Called each time the connection is re-established. */
  onReconnect(listener: () => void): void;
  /** Stops subscriptions after their pending messages are processed, flushes, closes. */
  drain(): Promise<void>;
}

export async function connectBus(options: BusConnectOptions): Promise<Bus> {
  const servers = options.servers;
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers,
      name: options.name,
      timeout: options.connectTimeoutMs ?? 5000,
      // Async stack traces cost about half the request rate on hot connections.
      noAsyncTraces: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      pingInterval: 10_000,
      ...(options.user ? { user: options.user } : {}),
      ...(options.pass ? { pass: options.pass } : {}),
      ...(options.token ? { token: options.token } : {}),
      ...(options.credsFile ? { authenticator: credsAuthenticator(readFileSync(options.credsFile)) } : {}),
      ...(options.nkeySeedFile ? { authenticator: nkeyAuthenticator(new TextEncoder().encode(readFileSync(options.nkeySeedFile, "utf8").trim())) } : {}),
      ...(options.tls ? { tls: options.tls } : {}),
    });
  } catch (cause) {
    throw new DmcpError(
      ErrorCode.BusUnavailable,
      `cannot connect to NATS at ${[servers].flat().join(", ")}: ${(cause as Error).message}. ` +
        "Start a nats-server (with -js) or leave out --nats to let `dmcp up` start its own.",
      { cause },
    );
  }
  const logger = options.logger;
  let connected = true;
  const disconnectListeners: (() => void)[] = [];
  const reconnectListeners: (() => void)[] = [];
  void (async () => {
    for await (const status of nc.status()) {
      switch (status.type) {
        case "disconnect":
          connected = false;
          logger.warn({ server: status.server }, "bus disconnected; reconnecting");
          for (const listener of disconnectListeners) listener();
          break;
        case "reconnect":
          connected = true;
          logger.info({ server: status.server }, "bus reconnected");
          for (const listener of reconnectListeners) listener();
          break;
        case "error":
          logger.error({ err: status.error }, "bus error");
          break;
        default:
          logger.debug({ status: status.type }, "bus status");
      }
    }
  })().catch(() => undefined);
  const closed = nc.closed();
  return {
    nc,
    logger,
    maxPayload: nc.info?.max_payload ?? 1024 * 1024,
    closed,
    isConnected: () => connected && !nc.isClosed(),
    onDisconnect: (listener) => void disconnectListeners.push(listener),
    onReconnect: (listener) => void reconnectListeners.push(listener),
    async drain() {
      if (nc.isClosed() || nc.isDraining()) return closed.then(() => undefined);
      await nc.drain().catch((err: unknown) => logger.debug({ err }, "drain failed; closing"));
      await nc.close().catch(() => undefined);
    },
  };
}

/** Counts this bus's disconnects and reconnects in a metrics registry. */
export function instrumentBus(bus: Bus, metrics: BusMetrics): void {
  bus.onDisconnect(() => metrics.disconnects.inc());
  bus.onReconnect(() => metrics.reconnects.inc());
}

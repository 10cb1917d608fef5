/**
 * The NATS connection of one dMCP component: connect with a clear error when nothing answers, reconnect
 * forever while running, log status changes, drain on stop.
 */
import { readFileSync } from "node:fs";
import {
  AuthorizationError,
  connect,
  credsAuthenticator,
  nkeyAuthenticator,
  PermissionViolationError,
  type Authenticator,
  type NatsConnection,
} from "@nats-io/transport-node";
import { DmcpError, ErrorCode } from "../protocol/index.js";
import type { BusMetrics } from "../metrics/registry.js";
import type { MessageSecurity } from "../security/security.js";
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
  /**
   * The prefix of this connection's reply subjects (default `_INBOX`). With one prefix per NATS user,
   * a user allowed to subscribe only to `<prefix>.>` cannot read the replies meant for others.
   */
  inboxPrefix?: string;
  /** Signs, verifies and seals the envelopes this process sends and receives on the bus (PROTOCOL.md §14). */
  security?: MessageSecurity | undefined;
  /** What to do when nothing answers at `servers` (default: start a nats-server with JetStream there). */
  unreachableHint?: string;
}

/**
 * Subjects whose messages are never answered, so an invalid one is dropped: cancellations, heartbeats,
 * registry entries, context updates. The reason is `invalid_subject`, `unexpected_type`, `key_mismatch`
 * (an announcement under another instance's registry key) or the decoding error's code in lower case.
 */
export type DroppedSubject = "cancel" | "heartbeat" | "registry" | "context" | "session";

/** The reason of a dropped message: its decoding error's code in lower case, or `unexpected_type` for a valid envelope of the wrong kind. */
export function dropReason(decoded: { ok: true } | { ok: false; error: { code: string } }): string {
  return decoded.ok ? "unexpected_type" : decoded.error.code.toLowerCase();
}

/** An operation the NATS server refused because the connection's user lacks the permission. */
export interface PermissionDenial {
  operation: "publish" | "subscription";
  subject: string;
  queue?: string;
}

export interface Bus {
  readonly nc: NatsConnection;
  readonly logger: Logger;
  /** The largest message the server accepts (its max_payload). */
  readonly maxPayload: number;
  /** Message security: signing, verification, sealing. Without it envelopes travel as plain JSON, unverified. */
  readonly security?: MessageSecurity | undefined;
  /** The prefix of this connection's reply subjects. */
  readonly inboxPrefix: string;
  /** Resolves when the connection is closed for good, with the error that closed it, if any. */
  readonly closed: Promise<Error | void>;
  isConnected(): boolean;
  /** Called each time the connection to the server is lost (before any reconnect). */
  onDisconnect(listener: () => void): void;
  /** Called each time the connection is re-established. */
  onReconnect(listener: () => void): void;
  /** Called each time the server refuses a publish or a subscription for lack of permission. */
  onPermissionDenied(listener: (denial: PermissionDenial) => void): void;
  /** A refusal of this subject is expected where permissions are tight: logged once at info, saying `why`, not as an error. */
  tolerateDenial(subject: string, why: string): void;
  /** Tells of a received message dropped unanswered because it is invalid, so that it is counted (see instrumentBus). */
  dropped(subject: DroppedSubject, reason: string): void;
  onDropped(listener: (subject: DroppedSubject, reason: string) => void): void;
  /**
   * Shutdown has begun: a connection that is lost (or is lost from now on) is closed, not
   * re-established, so that nothing waits for a server that stops too (the embedded one gets the same
   * Ctrl-C); what was still to be said on the bus is given up.
   */
  beginShutdown(): void;
  /** Stops subscriptions after their pending messages are processed, flushes, closes. */
  drain(): Promise<void>;
}

export async function connectBus(options: BusConnectOptions): Promise<Bus> {
  const servers = options.servers;
  const authenticator = authenticatorFor(options);
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
      ...(authenticator ? { authenticator } : {}),
      ...(options.tls ? { tls: options.tls } : {}),
      ...(options.inboxPrefix ? { inboxPrefix: options.inboxPrefix } : {}),
    });
  } catch (cause) {
    const where = [servers].flat().join(", ");
    // Wrong credentials are not fixed by starting a server: say which problem it is.
    const hint =
      cause instanceof AuthorizationError
        ? "The server refused the credentials: check the creds file, nkey, user and password or token given."
        : (options.unreachableHint ?? "Start a nats-server with JetStream there (nats-server -js).");
    throw new DmcpError(ErrorCode.BusUnavailable, `cannot connect to NATS at ${where}: ${(cause as Error).message}. ${hint}`, { cause });
  }
  const logger = options.logger;
  let connected = true;
  let shuttingDown = false;
  const closeLost = () => {
    logger.debug("bus connection lost during shutdown; closing it");
    void nc.close().catch(() => undefined);
  };
  const disconnectListeners: (() => void)[] = [];
  const reconnectListeners: (() => void)[] = [];
  const denialListeners: ((denial: PermissionDenial) => void)[] = [];
  const dropListeners: ((subject: DroppedSubject, reason: string) => void)[] = [];
  const tolerated = new Map<string, string>();
  const reportDenial = denialReporter(logger, tolerated);
  void (async () => {
    for await (const status of nc.status()) {
      switch (status.type) {
        case "disconnect":
          connected = false;
          if (shuttingDown) closeLost();
          else logger.warn({ server: status.server }, "bus disconnected; reconnecting");
          for (const listener of disconnectListeners) listener();
          break;
        case "reconnect":
          connected = true;
          logger.info({ server: status.server }, "bus reconnected");
          for (const listener of reconnectListeners) listener();
          break;
        case "error":
          if (status.error instanceof PermissionViolationError) {
            const denial = toDenial(status.error);
            reportDenial(denial);
            for (const listener of denialListeners) listener(denial);
          } else {
            logger.error({ err: status.error }, "bus error");
          }
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
    ...(options.security ? { security: options.security } : {}),
    inboxPrefix: options.inboxPrefix ?? "_INBOX",
    closed,
    isConnected: () => connected && !nc.isClosed(),
    onDisconnect: (listener) => void disconnectListeners.push(listener),
    onReconnect: (listener) => void reconnectListeners.push(listener),
    onPermissionDenied: (listener) => void denialListeners.push(listener),
    tolerateDenial: (subject, why) => void tolerated.set(subject, why),
    dropped: (subject, reason) => {
      for (const listener of dropListeners) listener(subject, reason);
    },
    onDropped: (listener) => void dropListeners.push(listener),
    beginShutdown() {
      shuttingDown = true;
      if (!connected && !nc.isClosed()) closeLost();
    },
    async drain() {
      if (nc.isClosed() || nc.isDraining()) return closed.then(() => undefined);
      await nc.drain().catch((err: unknown) => logger.debug({ err }, "drain failed; closing"));
      await nc.close().catch(() => undefined);
    },
  };
}

/** The authenticator of a creds file or nkey seed file, read now so that a missing file is named as such. */
function authenticatorFor(options: BusConnectOptions): Authenticator | undefined {
  const read = (file: string, what: string): string => {
    try {
      return readFileSync(file, "utf8");
    } catch (cause) {
      throw new DmcpError(ErrorCode.BusUnavailable, `cannot read the NATS ${what} ${file}: ${(cause as Error).message}`, { cause });
    }
  };
  if (options.credsFile) return credsAuthenticator(new TextEncoder().encode(read(options.credsFile, "credentials file")));
  if (options.nkeySeedFile) return nkeyAuthenticator(new TextEncoder().encode(read(options.nkeySeedFile, "nkey seed file").trim()));
  return undefined;
}

/** Whether an error (or one of its causes: nats.js wraps a refused request) is a permission refusal. */
export function isPermissionDenied(error: unknown): boolean {
  for (let depth = 0; error instanceof Error && depth < 5; depth++, error = error.cause) {
    if (error instanceof PermissionViolationError) return true;
  }
  return false;
}

function toDenial(error: PermissionViolationError): PermissionDenial {
  const operation = error.operation === "subscription" ? "subscription" : "publish";
  return { operation, subject: error.subject, ...(error.queue ? { queue: error.queue } : {}) };
}

const MAX_REPORTED_DENIALS = 1000;

/**
 * Logs each refused subject once as an error (a heartbeat refused every two seconds would flood the
 * log), or at info with its reason when the refusal is tolerated, and again at debug level.
 */
function denialReporter(logger: Logger, tolerated: ReadonlyMap<string, string>): (denial: PermissionDenial) => void {
  const reported = new Set<string>();
  return (denial) => {
    const key = `${denial.operation} ${denial.subject} ${denial.queue ?? ""}`;
    const first = !reported.has(key);
    if (first) {
      if (reported.size >= MAX_REPORTED_DENIALS) reported.clear();
      reported.add(key);
    }
    const why = tolerated.get(denial.subject);
    if (why !== undefined) {
      logger[first ? "info" : "debug"](denial, `the NATS server denied ${denial.subject}: ${why}`);
      return;
    }
    logger[first ? "error" : "debug"](
      denial,
      `the NATS server denied ${denial.operation === "publish" ? "publishing to" : "subscribing to"} ${denial.subject}${denial.queue ? ` (queue ${denial.queue})` : ""}: this connection's NATS user lacks the permission`,
    );
  };
}

/** Counts this bus's disconnects, reconnects and dropped invalid messages in a metrics registry. */
export function instrumentBus(bus: Bus, metrics: BusMetrics): void {
  bus.onDisconnect(() => metrics.disconnects.inc());
  bus.onReconnect(() => metrics.reconnects.inc());
  bus.onDropped((subject, reason) => metrics.dropped.inc({ subject, reason }));
}

/**
 * The bus of one dMCP component: its NATS connection (connect with a clear error when nothing answers,
 * reconnect forever while running, log status changes, drain on stop) and the operations its users
 * get, in dMCP terms. The connection itself stays inside src/bus (natsConnectionOf).
 */
import { readFileSync } from "node:fs";
import {
  AuthorizationError,
  connect,
  credsAuthenticator,
  errors,
  nkeyAuthenticator,
  PermissionViolationError,
  type Authenticator,
  type NatsConnection,
} from "@nats-io/transport-node";
import { BusError, createEnvelope, type DmcpError, ErrorCode, errorForCode, errorPayload, subjects, type Envelope } from "../protocol/index.js";
import type { BusMetrics } from "../metrics/index.js";
import type { Logger } from "../util/index.js";
import { JSON_CODEC, type EnvelopeCodec } from "./codec.js";
import { NatsMessage, type BusMessage } from "./message.js";
import { tapConnection, type BusTap } from "./tap.js";

export interface BusConnectOptions {
  /**
   * The seed URLs: one, or several of a cluster (a list, or one string of comma-separated URLs), e.g.
   * `nats://10.0.0.1:4222,nats://10.0.0.2:4222`. The connection takes any live one, and on losing its
   * server reconnects to another seed or to a server the cluster announced.
   */
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
  /**
   * Signs, verifies and seals the envelopes this process sends and receives on the bus (PROTOCOL.md
   * §14): a MessageSecurity (src/security), the codec envelopes travel in. Default: plain JSON.
   */
  security?: EnvelopeCodec | undefined;
  /** What to do when nothing answers at `servers` (default: start a nats-server with JetStream there). */
  unreachableHint?: string;
  /**
   * The JetStream domain to address (the `domain` of the servers' jetstream block): a process on a
   * leafnode server reaches the cluster's JetStream through it. Default: the server's own JetStream.
   */
  jsDomain?: string | undefined;
  /** Replicas of the streams and buckets this process creates. Default: 3 on a cluster of three or more servers, else 1. */
  streamReplicas?: number | undefined;
}

/** How a bus uses JetStream: the domain it addresses, and the replicas of the streams it creates. */
export interface JetStreamSettings {
  domain: string | undefined;
  replicas: number;
}

/**
 * 3 when the server says it is one of a cluster of three or more (its INFO's connect_urls lists the
 * cluster's servers), else 1: a stream needs a majority of its replicas up, so 2 servers gain nothing.
 */
export function defaultStreamReplicas(info: { cluster?: string | undefined; connect_urls?: string[] | undefined } | undefined): number {
  const servers = info?.cluster ? new Set(info.connect_urls ?? []).size : 1;
  return servers >= 3 ? 3 : 1;
}

/**
 * Subjects whose messages are never answered, so an invalid one is dropped: cancellations, heartbeats,
 * registry entries, context updates, relayed client messages, purge notices, rate shares, recover
 * lookups, max-deliveries advisories (`dead-letter`); and records read from buckets (task records,
 * delivery records in the result store, shared cache entries), skipped as if absent. The reason is
 * `invalid_subject`, `unexpected_type`, `key_mismatch` (an announcement under another instance's
 * registry key), `subject_mismatch` (a heartbeat naming another instance than its subject), the decoding error's code in lower case, or one the reader names (`invalid_json`:
 * no JSON object; `invalid_message`, `invalid_record` and the like: an object of the wrong shape).
 */
export type DroppedSubject =
  | "cancel"
  | "heartbeat"
  | "registry"
  | "context"
  | "session"
  | "cache-purge"
  | "rate"
  | "recover"
  | "dead-letter"
  | "task-record"
  | "delivery-record"
  | "cache-entry";

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

export interface BusSubscription {
  unsubscribe(): void;
  /** Stops after the messages already received are handled. */
  drain(): Promise<void>;
  isClosed(): boolean;
}

export interface BusSubscribeOptions {
  /** Share the subject's messages with the other members of this queue group (one gets each). */
  queue?: string | undefined;
  /** Called when the subscription fails (e.g. the server refused it); logged at debug level otherwise. */
  onError?: ((error: Error) => void) | undefined;
}

export interface Bus {
  readonly logger: Logger;
  /** The largest message the server accepts (its max_payload). */
  readonly maxPayload: number;
  /** How envelopes are encoded and decoded: signed, verified and sealed with message security, else plain JSON. */
  readonly codec: EnvelopeCodec;
  /** The prefix of this connection's reply subjects. */
  readonly inboxPrefix: string;
  /** Resolves when the connection is closed for good, with the error that closed it, if any. */
  readonly closed: Promise<Error | undefined>;
  isConnected(): boolean;
  /** Publishes an envelope (encoded by the codec) or bytes encoded already. Throws when the connection is closed. */
  publish(subject: string, message: Envelope | Uint8Array): void;
  /**
   * Calls `handler` with each message on `subject` (NATS wildcards allowed) until unsubscribed. A
   * handler that throws is logged; the subscription goes on.
   */
  subscribe(subject: string, handler: (message: BusMessage) => void, options?: BusSubscribeOptions): BusSubscription;
  /**
   * Sends a request and resolves with the first answer. Rejects with NO_RESPONDERS when nothing
   * subscribes to `subject`, DEADLINE_EXCEEDED when no answer came within `timeoutMs`, else BUS_UNAVAILABLE.
   */
  request(subject: string, message: Envelope | Uint8Array, options: { timeoutMs: number }): Promise<BusMessage>;
  /** Resolves when the server has processed everything sent so far (subscriptions included). */
  flush(): Promise<void>;
  /**
   * Publishes `error` (its data merged with `details`) as an `error_notification` on
   * `dmcp.v1.err.<reporter>`, where operators and tooling watch. Best effort: never throws.
   */
  reportError(reporter: string, error: DmcpError, details?: Record<string, unknown>): void;
  /** The same connection with another codec: e.g. an agent with message security of its own. */
  withCodec(codec: EnvelopeCodec): Bus;
  /**
   * The same connection with its traffic shown to `tap`: what is published through the returned bus
   * (its bus modules, and the JetStream clients they build, included) and what its subscriptions
   * receive. Only this bus's own traffic: nothing is subscribed to for the tap.
   */
  tapped(tap: BusTap): Bus;
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

/** The URLs of a `servers` option: a list, or comma-separated in one string (nats.js would take "a,b" as one URL). */
export function seedUrls(servers: string | string[]): string[] {
  return [servers]
    .flat()
    .flatMap((entry) => entry.split(","))
    .map((url) => url.trim())
    .filter((url) => url !== "");
}

export async function connectBus(options: BusConnectOptions): Promise<Bus> {
  const servers = seedUrls(options.servers);
  if (servers.length === 0) throw new BusError(ErrorCode.BusUnavailable, "cannot connect to NATS: no server URL given");
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
    const where = servers.join(", ");
    // Wrong credentials are not fixed by starting a server: say which problem it is.
    const hint =
      cause instanceof AuthorizationError
        ? "The server refused the credentials: check the creds file, nkey, user and password or token given."
        : (options.unreachableHint ?? "Start a nats-server with JetStream there (nats-server -js).");
    throw new BusError(ErrorCode.BusUnavailable, `cannot connect to NATS at ${where}: ${(cause as Error).message}. ${hint}`, { cause });
  }
  return new NatsBus(nc, new SharedConnection(nc, options), options.security ?? JSON_CODEC);
}

/**
 * What every view of one connection shares (a view differs in its codec or its tap): its state,
 * its listeners, its shutdown.
 */
class SharedConnection {
  readonly logger: Logger;
  readonly maxPayload: number;
  readonly inboxPrefix: string;
  readonly closed: Promise<Error | undefined>;
  connected = true;
  private shuttingDown = false;
  readonly disconnectListeners: (() => void)[] = [];
  readonly reconnectListeners: (() => void)[] = [];
  readonly denialListeners: ((denial: PermissionDenial) => void)[] = [];
  readonly dropListeners: ((subject: DroppedSubject, reason: string) => void)[] = [];
  readonly tolerated = new Map<string, string>();
  readonly jsDomain: string | undefined;
  private readonly streamReplicas: number | undefined;

  constructor(
    private readonly nc: NatsConnection,
    options: BusConnectOptions,
  ) {
    this.logger = options.logger;
    this.jsDomain = options.jsDomain;
    this.streamReplicas = options.streamReplicas;
    this.maxPayload = nc.info?.max_payload ?? 1024 * 1024;
    this.inboxPrefix = options.inboxPrefix ?? "_INBOX";
    this.closed = nc.closed().then((err) => err || undefined);
    void this.followStatus().catch(() => undefined);
  }

  /** Read when a stream is made, so that it counts the cluster's servers as the server knows them then. */
  jetStreamSettings(): JetStreamSettings {
    return { domain: this.jsDomain, replicas: this.streamReplicas ?? defaultStreamReplicas(this.nc.info) };
  }

  private async followStatus(): Promise<void> {
    const { logger, nc } = this;
    const reportDenial = denialReporter(logger, this.tolerated);
    for await (const status of nc.status()) {
      switch (status.type) {
        case "disconnect":
          this.connected = false;
          if (this.shuttingDown) this.closeLost();
          else logger.warn({ server: status.server }, "bus disconnected; reconnecting");
          for (const listener of this.disconnectListeners) listener();
          break;
        case "reconnect":
          this.connected = true;
          logger.info({ server: status.server }, "bus reconnected");
          for (const listener of this.reconnectListeners) listener();
          break;
        case "error":
          if (status.error instanceof PermissionViolationError) {
            const denial = toDenial(status.error);
            reportDenial(denial);
            for (const listener of this.denialListeners) listener(denial);
          } else {
            logger.error({ err: status.error }, "bus error");
          }
          break;
        default:
          logger.debug({ status: status.type }, "bus status");
      }
    }
  }

  private closeLost(): void {
    this.logger.debug("bus connection lost during shutdown; closing it");
    void this.nc.close().catch(() => undefined);
  }

  beginShutdown(): void {
    this.shuttingDown = true;
    if (!this.connected && !this.nc.isClosed()) this.closeLost();
  }

  async drain(): Promise<void> {
    const nc = this.nc;
    if (nc.isClosed() || nc.isDraining()) return this.closed.then(() => undefined);
    await nc.drain().catch((err: unknown) => this.logger.debug({ err }, "drain failed; closing"));
    await nc.close().catch(() => undefined);
  }
}

/** A view of one connection: the connection as this view uses it (tapped or not), and its codec. */
class NatsBus implements Bus {
  readonly #nc: NatsConnection;

  constructor(
    nc: NatsConnection,
    private readonly shared: SharedConnection,
    readonly codec: EnvelopeCodec,
  ) {
    this.#nc = nc;
  }

  /** The NATS connection of a bus, for the modules of src/bus (see natsConnectionOf). */
  static connectionOf(bus: Bus): NatsConnection {
    if (!(#nc in bus)) throw new TypeError("not a bus made by connectBus");
    return (bus as NatsBus).#nc;
  }

  /** The JetStream settings of a bus, for the modules of src/bus (see jetStreamSettingsOf). */
  static jetStreamSettingsOf(bus: Bus): JetStreamSettings {
    if (!(#nc in bus)) throw new TypeError("not a bus made by connectBus");
    return (bus as NatsBus).shared.jetStreamSettings();
  }

  get logger(): Logger {
    return this.shared.logger;
  }

  get maxPayload(): number {
    return this.shared.maxPayload;
  }

  get inboxPrefix(): string {
    return this.shared.inboxPrefix;
  }

  get closed(): Promise<Error | undefined> {
    return this.shared.closed;
  }

  isConnected(): boolean {
    return this.shared.connected && !this.#nc.isClosed();
  }

  publish(subject: string, message: Envelope | Uint8Array): void {
    this.#nc.publish(subject, this.bytesOf(message));
  }

  subscribe(subject: string, handler: (message: BusMessage) => void, options: BusSubscribeOptions = {}): BusSubscription {
    const onError = options.onError ?? ((err: Error) => this.logger.debug({ err, subject }, "subscription error"));
    return this.#nc.subscribe(subject, {
      ...(options.queue ? { queue: options.queue } : {}),
      callback: (err, msg) => {
        if (err) {
          onError(err);
          return;
        }
        // A throwing callback would stop the connection's reader: bad input is logged, never thrown.
        try {
          handler(new NatsMessage(msg, this.codec));
        } catch (error) {
          this.logger.warn({ err: error, subject: msg.subject }, "a bus message handler failed");
        }
      },
    });
  }

  async request(subject: string, message: Envelope | Uint8Array, options: { timeoutMs: number }): Promise<BusMessage> {
    try {
      return new NatsMessage(await this.#nc.request(subject, this.bytesOf(message), { timeout: options.timeoutMs }), this.codec);
    } catch (cause) {
      const code = isNoResponders(cause) ? ErrorCode.NoResponders : cause instanceof errors.TimeoutError ? ErrorCode.DeadlineExceeded : ErrorCode.BusUnavailable;
      throw errorForCode(code, (cause as Error).message, { cause, data: { subject } });
    }
  }

  flush(): Promise<void> {
    return this.#nc.flush();
  }

  reportError(reporter: string, error: DmcpError, details: Record<string, unknown> = {}): void {
    const payload = errorPayload(error);
    const data = typeof payload.data === "object" && payload.data !== null && !Array.isArray(payload.data) ? payload.data : {};
    payload.data = { ...data, ...details };
    try {
      if (!this.#nc.isClosed()) this.#nc.publish(subjects.errors(reporter), this.codec.encode(createEnvelope("error_notification", payload, { sender: reporter })));
    } catch (err) {
      this.logger.debug({ err }, "could not report an error on the bus");
    }
  }

  withCodec(codec: EnvelopeCodec): Bus {
    return new NatsBus(this.#nc, this.shared, codec);
  }

  tapped(tap: BusTap): Bus {
    return new NatsBus(tapConnection(this.#nc, tap, this.codec, this.logger), this.shared, this.codec);
  }

  onDisconnect(listener: () => void): void {
    this.shared.disconnectListeners.push(listener);
  }

  onReconnect(listener: () => void): void {
    this.shared.reconnectListeners.push(listener);
  }

  onPermissionDenied(listener: (denial: PermissionDenial) => void): void {
    this.shared.denialListeners.push(listener);
  }

  tolerateDenial(subject: string, why: string): void {
    this.shared.tolerated.set(subject, why);
  }

  dropped(subject: DroppedSubject, reason: string): void {
    for (const listener of this.shared.dropListeners) listener(subject, reason);
  }

  onDropped(listener: (subject: DroppedSubject, reason: string) => void): void {
    this.shared.dropListeners.push(listener);
  }

  beginShutdown(): void {
    this.shared.beginShutdown();
  }

  drain(): Promise<void> {
    return this.shared.drain();
  }

  private bytesOf(message: Envelope | Uint8Array): Uint8Array {
    return message instanceof Uint8Array ? message : this.codec.encode(message);
  }
}

/**
 * The NATS connection under a bus. For the modules of src/bus only (it is not exported from the
 * folder's index): everyone else uses the bus's own operations.
 */
export function natsConnectionOf(bus: Bus): NatsConnection {
  return NatsBus.connectionOf(bus);
}

/** How a bus uses JetStream (src/bus only, like natsConnectionOf): see jetstream.ts. */
export function jetStreamSettingsOf(bus: Bus): JetStreamSettings {
  return NatsBus.jetStreamSettingsOf(bus);
}

/** The authenticator of a creds file or nkey seed file, read now so that a missing file is named as such. */
function authenticatorFor(options: BusConnectOptions): Authenticator | undefined {
  const read = (file: string, what: string): string => {
    try {
      return readFileSync(file, "utf8");
    } catch (cause) {
      throw new BusError(ErrorCode.BusUnavailable, `cannot read the NATS ${what} ${file}: ${(cause as Error).message}`, { cause });
    }
  };
  if (options.credsFile) return credsAuthenticator(new TextEncoder().encode(read(options.credsFile, "credentials file")));
  if (options.nkeySeedFile) return nkeyAuthenticator(new TextEncoder().encode(read(options.nkeySeedFile, "nkey seed file").trim()));
  return undefined;
}

/** Whether a request failed because nothing subscribes to its subject. */
export function isNoResponders(err: unknown): boolean {
  if (err instanceof errors.NoRespondersError) return true;
  return err instanceof errors.RequestError && err.isNoResponders();
}

/** Whether an error (or one of its causes: nats.js wraps a refused request) is a permission refusal. */
export function isPermissionDenied(error: unknown): boolean {
  return causedBy(error, (cause) => cause instanceof PermissionViolationError);
}

/** Whether `error` or one of its causes (a few deep: nats.js wraps what a server answered) passes `test`. */
export function causedBy(error: unknown, test: (cause: Error) => boolean): boolean {
  for (let depth = 0; error instanceof Error && depth < 5; depth++, error = error.cause) {
    if (test(error)) return true;
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

/** Composition shared by `dmcp gateway` and `dmcp up`: a gateway on the bus plus its inbound adapters. */
import { resolve } from "node:path";
import { serveHttp, serveStdio, type HttpGatewayServer, type HttpServeOptions } from "../../adapters/inbound/index.js";
import type { NostrServeOptions } from "../../adapters/inbound/nostr/index.js";
import { httpConnector, stdioConnector } from "../../adapters/outbound/index.js";
import type { Bus, ContextRetention } from "../bus/index.js";
import type { Registry } from "prom-client";
import { serveProbes } from "../metrics/index.js";
import { Executor } from "../executor/index.js";
import { callerAccess, Gateway, type CallerAccess } from "../gateway/index.js";
import { GatewayMonitor } from "../../adapters/inbound/dashboard/index.js";
import type { Logger } from "../util/index.js";
import { deliveryFromConfig } from "./delivery.js";
import { cacheFromConfig, type GatewayCacheSettings } from "./cache.js";
import { durationMs, isNostrServer, isStdioServer, resolveHeaders, type ServerConfig } from "./config.js";

export interface GatewayServeOptions extends CallerAccess {
  bus: Bus;
  logger: Logger;
  http?: { port: number; host: string } | undefined;
  stdio?: boolean;
  callTimeoutMs?: number | undefined;
  contextRetention?: ContextRetention | undefined;
  /** The TTL of the result store of durable calls, should the gateway create it. */
  resultTtlMs?: number | undefined;
  /** The gateway cache: on unless `enabled` is false, its local tier bounded by `maxBytes`, the shared bucket by `sharedMaxBytes`. */
  cache?: GatewayCacheSettings | undefined;
  metrics?: Registry | undefined;
  /** Serve /metrics, /healthz and /readyz on their own port (for a stdio gateway). */
  metricsPort?: number | undefined;
  /** How long a stop waits for calls in flight. */
  shutdownGraceMs?: number | undefined;
  /** Serve the live dashboard at /dashboard on the HTTP gateway (off by default). */
  dashboard?: boolean | undefined;
  /** Plain JSON answers on the HTTP gateway (no in-call notifications such as progress). */
  jsonResponses?: boolean | undefined;
  ssePollMs?: number | undefined;
  /** A plain HTTP call unanswered this long gets a resumable stream (0: never). */
  resumableAfterMs?: number | undefined;
  /** Authentication of the HTTP gateway. */
  auth?: HttpServeOptions["auth"];
  /** Per-client request rate of the HTTP gateway. */
  rateLimit?: HttpServeOptions["rateLimit"];
  /** Browser origins allowed to call the HTTP gateway (CORS). */
  corsOrigins?: string[] | undefined;
  /** The identity of the stdio client (default "local"). */
  stdioIdentity?: string | undefined;
  /** Serve the bus's services to Nostr clients (ContextVM) on these relays. */
  nostr?: Omit<NostrServeOptions, "logger"> | undefined;
}

export interface RunningGateway {
  gateway: Gateway;
  http?: HttpGatewayServer;
  /** Resolves when the stdio client goes away (never, without stdio). */
  stdioClosed: Promise<void>;
  stop(): Promise<void>;
}

export async function startGateway(options: GatewayServeOptions): Promise<RunningGateway> {
  // The dashboard's monitor sees the gateway's bus traffic through the connection it hands the gateway.
  const monitor = options.dashboard && options.http ? new GatewayMonitor({ bus: options.bus, logger: options.logger }) : undefined;
  const gateway = new Gateway({
    bus: monitor?.bus ?? options.bus,
    logger: options.logger,
    ...(options.callTimeoutMs ? { callTimeoutMs: options.callTimeoutMs } : {}),
    ...(options.contextRetention ? { contextRetention: options.contextRetention } : {}),
    resultTtlMs: options.resultTtlMs,
    cache: options.cache,
    ...(options.metrics ? { metrics: options.metrics } : {}),
    ...callerAccess(options),
  });
  await gateway.start();
  monitor?.attach(gateway);
  let probes: Awaited<ReturnType<typeof serveProbes>> | undefined;
  let http: HttpGatewayServer | undefined;
  try {
    probes =
      options.metricsPort !== undefined && options.metrics
        ? await listening(serveProbes({ registry: options.metrics, port: options.metricsPort, ready: () => gateway.core.ready }), "--metrics-port")
        : undefined;
    if (probes) options.logger.info({ url: `${probes.url}/metrics` }, "serving metrics");
    http = options.http
      ? await listening(
          serveHttp(gateway, {
            ...options.http,
            logger: options.logger,
            dashboard: monitor,
            jsonResponses: options.jsonResponses ?? false,
            ssePollMs: options.ssePollMs,
            resumableAfterMs: options.resumableAfterMs,
            auth: options.auth,
            rateLimit: options.rateLimit,
            corsOrigins: options.corsOrigins,
          }),
          "--http",
        )
      : undefined;
  } catch (err) {
    // A port that is taken: the gateway started must stop too, or its watches outlive the failed start.
    await probes?.close();
    monitor?.stop();
    await gateway.stop(0);
    throw err;
  }
  // Loaded only when asked for: the ContextVM SDK is heavy to load.
  const nostr = options.nostr ? await (await import("../../adapters/inbound/nostr/index.js")).serveNostr(gateway, { ...options.nostr, logger: options.logger }) : undefined;
  const stdioClosed = options.stdio ? (await serveStdio(gateway, {}, options.stdioIdentity)).closed : new Promise<void>(() => undefined);
  return {
    gateway,
    ...(http ? { http } : {}),
    stdioClosed,
    async stop() {
      http?.stopAccepting();
      await nostr?.close();
      await gateway.stop(options.shutdownGraceMs);
      await http?.close();
      monitor?.stop();
      await probes?.close();
    },
  };
}

/** A listen that fails because the address is taken says which one and which option picks another. */
async function listening<T>(server: Promise<T>, flag: string): Promise<T> {
  try {
    return await server;
  } catch (err) {
    const { code, address, port } = err as NodeJS.ErrnoException & { address?: string; port?: number };
    if (code !== "EADDRINUSE" && code !== "EACCES") throw err;
    const why = code === "EADDRINUSE" ? "is in use" : "may not be opened by this user";
    throw new Error(`cannot listen on ${address}:${port}: the port ${why}; pick another with ${flag} PORT (0: any free port)`);
  }
}

export async function connectorFor(service: string, server: ServerConfig, baseDir?: string) {
  if (isNostrServer(server)) return nostrConnectorFor(service, server, baseDir);
  if (isStdioServer(server)) {
    return stdioConnector({
      command: server.command,
      args: server.args,
      env: server.env,
      // A relative cwd is relative to the config file, like every other path in it.
      ...(server.cwd || baseDir ? { cwd: baseDir ? resolve(baseDir, server.cwd ?? ".") : server.cwd! } : {}),
    });
  }
  // Secrets from the environment or files are read now, at start; a missing one is a config error.
  const headers = resolveHeaders(server.headers, server.bearerToken, `servers.${service}`, baseDir);
  return httpConnector({ url: server.url, headers, transport: server.transport });
}

/** A ContextVM server of the config; the Nostr side (the ContextVM SDK, heavy to load) is loaded only for one. */
async function nostrConnectorFor(service: string, server: Extract<ServerConfig, { nostr: string }>, baseDir?: string) {
  const { generateSecretKeyHex, parsePublicKey, readSecretKey } = await import("../nostr/index.js");
  const { nostrConnector } = await import("../../adapters/outbound/nostr/index.js");
  const where = `servers.${service}`;
  const secretKey = server.nostrKey ? readSecretKey(baseDir ? resolve(baseDir, server.nostrKey) : server.nostrKey, `${where}.nostrKey`) : generateSecretKeyHex();
  return nostrConnector({
    serverPubkey: parsePublicKey(server.nostr, `${where}.nostr`),
    relays: [...new Set(server.relays)],
    secretKey,
    encryption: server.encryption,
    dialect: server.dialect,
  });
}

/**
 * Starts `replicas` executors for each configured server. A server that does not start fails them all
 * (those that started are stopped again), naming each that failed, unless `waitForUpstream`.
 */
export async function startExecutors(
  bus: Bus,
  logger: Logger,
  servers: Record<string, ServerConfig>,
  options: { baseDir?: string | undefined; metrics?: Registry | undefined; waitForUpstream?: boolean | undefined } = {},
): Promise<Executor[]> {
  const { baseDir, metrics } = options;
  const executors: Executor[] = [];
  for (const [service, server] of Object.entries(servers)) {
    for (let replica = 0; replica < server.replicas; replica++) {
      const connector = await connectorFor(service, server, baseDir);
      const delivery = deliveryFromConfig(server);
      const cache = cacheFromConfig(server.cache, `servers.${service}.cache`);
      executors.push(
        new Executor({
          bus,
          service,
          logger,
          connector,
          forwardCaller: server.forwardCaller,
          audit: server.audit,
          maxSessions: server.maxSessions,
          sessionIdleMs: server.sessionIdle === undefined ? undefined : durationMs(server.sessionIdle, `servers.${service}.sessionIdle`),
          ...(metrics ? { metrics } : {}),
          ...(delivery ? { delivery } : {}),
          cache,
          waitForUpstream: options.waitForUpstream,
        }),
      );
    }
  }
  const started = await Promise.allSettled(executors.map((executor) => executor.start()));
  const failures = started.flatMap((outcome, i) => (outcome.status === "rejected" ? [`servers.${executors[i]!.service}: ${(outcome.reason as Error).message}`] : []));
  if (failures.length > 0) {
    // A failed start leaves nothing running; the others are stopped.
    await Promise.allSettled(executors.filter((_, i) => started[i]!.status === "fulfilled").map((executor) => executor.stop()));
    throw new Error([...new Set(failures)].join("; "));
  }
  return executors;
}

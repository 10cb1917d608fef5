import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { connectBus, provisionStreams, startNatsServer, type Bus, type EmbeddedNats } from "../../bus/index.js";
import type { Executor } from "../../executor/index.js";
import type { Logger } from "../../util/index.js";
import { natsOptions, parse, parsePort, UsageError, otelHelp } from "../args.js";
import { connectCommandBus } from "../bus.js";
import { createMetricsRegistry } from "../../metrics/index.js";
import { contextRetention, loadConfig, loadPolicy, withDataDir, type Config } from "../config.js";
import { defaultDataDir, lockStore, UP_FILE, type StoreLock } from "../up-store.js";
import { runUntilSignal, startTracing } from "../lifecycle.js";
import { startExecutors, startGateway } from "../serve.js";
import { resultTtlFromConfig } from "../delivery.js";
import { gatewayCacheFromConfig } from "../cache.js";
import { createSecurity, securityFromConfig, securityFromFlags, securityHelp, securityOptions } from "../security.js";

/** The sample config shipped with the package, used when no config file is given or found. */
export const SAMPLE_CONFIG = fileURLToPath(new URL("../../../../dmcp.config.json", import.meta.url));

export const upHelp = `Usage: dmcp up [--config FILE] [--http PORT] [--host HOST] [--stdio] [--nats URL]

The embedded default: starts a private nats-server (JetStream, loopback, random port), the MCP
servers the config names as executors, and a gateway in front of them. Stops them all on exit.
A stdio server inherits this process's environment, plus its "env" from the config.

Config: --config FILE, else ./dmcp.config.json, else the sample config shipped with dmcp-gateway
(it wraps @modelcontextprotocol/server-everything and @modelcontextprotocol/server-memory, which keeps
its graph in memory.jsonl in the data directory). \${DMCP_DATA_DIR} in a stdio server's args and env
values stands for the data directory (see --data-dir).

Its gateway's settings (call timeout, context limits, policy, cache) come from the config's
"gateway" and "context" sections only: dmcp gateway's flags for them have no counterpart here.

Options:
  --config FILE         config file (JSON; see docs/configuration.md)
  --http PORT           serve MCP over HTTP on PORT (default: the config's gateway.http, 8808)
  --host HOST           address for --http (default: the config's, 127.0.0.1)
  --no-http             do not serve HTTP
  --stdio               also serve MCP on stdin/stdout (for Claude Desktop)
  --dashboard           serve the live dashboard at /dashboard on the HTTP gateway
  --nats URL[,URL...]   use this NATS server, or the cluster of these seed URLs, instead of starting
                        one (with --nats-user, --nats-pass, --nats-token, --nats-creds, --nats-nkey,
                        --nats-tls-*, --nats-inbox-prefix, --js-domain, --stream-replicas as for dmcp
                        gateway; the config's nats.jsDomain and nats.streamReplicas where not given)
  --data-dir DIR        JetStream store of the embedded server (default: the config's nats.dataDir,
                        else $XDG_STATE_HOME/dmcp/nats or ~/.local/state/dmcp/nats). A store belongs
                        to one dmcp up at a time: a second one with the same store exits with an
                        error. While it runs, ${UP_FILE} there names its pid and bus, which
                        dmcp gateway, wrap, status and tail use when given no --nats
  --wait-for-upstream   a configured server that does not start is retried with backoff (its service
                        serves as degraded meanwhile); without it dmcp up fails at start, naming it
${securityHelp}                        (these add to, or override, the config's "security" section; all
                        components of dmcp up share one key and trust list)
${otelHelp}  --log-level LEVEL     trace, debug, info, warn, error or silent (default: info; logs go to stderr)
  -h, --help            show this help
`;

export async function upCommand(argv: string[], logger: Logger): Promise<number> {
  const { values } = parse(argv, {
    config: { type: "string" },
    http: { type: "string" },
    host: { type: "string" },
    "no-http": { type: "boolean" },
    stdio: { type: "boolean" },
    ...natsOptions,
    "data-dir": { type: "string" },
    "wait-for-upstream": { type: "boolean" },
    "otel-endpoint": { type: "string" },
    dashboard: { type: "boolean" },
    ...securityOptions,
  });
  if (values.help) {
    process.stdout.write(upHelp);
    return 0;
  }
  const stopTracing = startTracing(values["otel-endpoint"], "dmcp-up", logger);
  const configPath = values.config ?? (existsSync("dmcp.config.json") ? "dmcp.config.json" : SAMPLE_CONFIG);
  const { config, baseDir } = loadConfig(configPath);
  logger.info({ config: resolve(configPath) }, "loaded config");
  const policy = config.gateway.policy === undefined ? undefined : loadPolicy(config.gateway.policy, baseDir);

  // Flags are checked before anything starts: a bad one must not cost a nats-server and the servers' start.
  const http = httpOf(values, config);
  const securitySettings = securityFromFlags(values, securityFromConfig(config.security, baseDir));
  if (values.dashboard && !http)
    throw new UsageError(`--dashboard needs the HTTP gateway (${values["no-http"] ? "leave out --no-http" : "give --http PORT: the config's gateway.http is false"})`);

  let embedded: EmbeddedNats | undefined;
  let lock: StoreLock | undefined;
  const url = values.nats ?? config.nats.url;
  const dataDir = resolve(values["data-dir"] ?? (config.nats.dataDir ? resolve(baseDir, config.nats.dataDir) : defaultDataDir()));
  if (!url) {
    lock = await lockStore(dataDir);
    try {
      embedded = await startNatsServer({ dataDir, logger });
    } catch (err) {
      lock.release();
      throw err;
    }
    lock.publish(embedded.url, embedded.pid);
    logger.info({ url: embedded.url, dataDir }, "embedded nats-server started");
  }
  const stopEmbedded = async () => {
    await embedded?.stop();
    lock?.release();
  };
  let executors: Executor[] = [];
  /** For the clean-up of a failed start. */
  let openedBus: Bus | undefined;
  try {
    // One registry for the process: the gateway's /metrics shows the executors' series too.
    const metrics = createMetricsRegistry();
    const security = createSecurity(securitySettings, metrics);
    // The private server needs no credentials; an external one gets those given on the command line.
    const bus = embedded
      ? await connectBus({ servers: embedded.url, name: "dmcp-up", logger, security })
      : await connectCommandBus("up", { ...values, nats: url, ...jetStreamFromConfig(values, config) }, { name: "dmcp-up", logger, security });
    openedBus = bus;
    const resultTtlMs = resultTtlFromConfig(config.servers);
    // Its gateway's streams first: executors use them and never create them.
    const cache = gatewayCacheFromConfig(config.gateway.cache);
    await provisionStreams(bus, { contextRetention: contextRetention(config.context), resultTtlMs, cacheMaxBytes: cache.sharedMaxBytes });
    executors = await startExecutors(bus, logger, withDataDir(config.servers, dataDir), { baseDir, metrics, waitForUpstream: values["wait-for-upstream"] });
    const running = await startGateway({
      bus,
      logger,
      http,
      stdio: values.stdio ?? false,
      callTimeoutMs: config.gateway.callTimeoutMs,
      contextRetention: contextRetention(config.context),
      resultTtlMs,
      cache,
      metrics,
      dashboard: values.dashboard ?? false,
      policy,
      forwardClaims: config.gateway.forwardClaims,
    });
    const services = Object.keys(config.servers).join(", ") || "none";
    process.stderr.write(`dmcp up: ${servedAt(running.http?.url, values.stdio ?? false)}; NATS at ${embedded?.url ?? url}; services: ${services}\n`);
    await runUntilSignal(
      logger,
      async () => {
        // At once: in a terminal, Ctrl-C reaches the wrapped servers and the embedded nats-server too.
        for (const executor of executors) executor.beginShutdown();
        bus.beginShutdown();
        await running.stop();
        await Promise.allSettled(executors.map((executor) => executor.stop()));
        await bus.drain();
        await stopEmbedded();
        await stopTracing();
      },
      values.stdio ? running.stdioClosed : undefined,
    );
  } catch (err) {
    await Promise.allSettled(executors.map((executor) => executor.stop()));
    await openedBus?.drain();
    await stopEmbedded();
    throw err;
  }
  return 0;
}

/** Where its gateway serves MCP: --no-http, --http PORT, --host, else the config's gateway.http. */
function httpOf(values: { "no-http"?: boolean; http?: string; host?: string }, config: Config): { port: number; host: string } | undefined {
  const configured = config.gateway.http;
  if (values["no-http"]) {
    if (values.http !== undefined || values.host !== undefined) throw new UsageError("--no-http does not go with --http or --host");
    return undefined;
  }
  if (values.http !== undefined) return { port: parsePort(values.http, "--http"), host: values.host ?? (configured ? configured.host : "127.0.0.1") };
  return configured ? { port: configured.port, host: values.host ?? configured.host } : undefined;
}

/** The start line's account of where MCP is served: a gateway without HTTP or stdio serves no client here. */
function servedAt(httpUrl: string | undefined, stdio: boolean): string {
  if (httpUrl) return `MCP at ${httpUrl}${stdio ? " and on stdio" : ""}`;
  return stdio ? "MCP on stdio" : "MCP not served here (no --stdio, and --no-http or gateway.http false)";
}

/** The config's JetStream domain and stream replicas, where the command line gives none. */
function jetStreamFromConfig(values: Record<string, unknown>, config: Config): Record<string, string> {
  const domain = values["js-domain"] ?? config.nats.jsDomain;
  const replicas = values["stream-replicas"] ?? config.nats.streamReplicas;
  return { ...(domain === undefined ? {} : { "js-domain": String(domain) }), ...(replicas === undefined ? {} : { "stream-replicas": String(replicas) }) };
}

import { httpConnector, stdioConnector } from "../../../adapters/outbound/index.js";
import type { UpstreamConnector } from "../../executor/index.js";
import type { EncryptionPolicy, NostrDialect } from "../../nostr/index.js";
import { Executor } from "../../executor/index.js";
import { assertToken } from "../../protocol/index.js";
import type { Logger } from "../../util/index.js";
import { instrumentBus } from "../../bus/index.js";
import { BusMetrics, createMetricsRegistry, serveProbes } from "../../metrics/index.js";
import { natsHelp, natsOptions, parse, parseEnv, parseHeaders, parseNonNegativeInt, parsePort, parsePositiveInt, UsageError, otelHelp } from "../args.js";
import { connectCommandBus } from "../bus.js";
import { runUntilSignal, startTracing } from "../lifecycle.js";
import { createSecurity, securityFromFlags, securityHelp, securityOptions, curveSeedFrom } from "../security.js";
import { resolveHeaders, type Secret } from "../config.js";
import { deliveryFromFlags, deliveryHelp, deliveryOptionSpec } from "../delivery.js";
import { cacheFromFlags, cacheHelp, cacheOptionSpec } from "../cache.js";

export const wrapHelp = `Usage: dmcp wrap --name NAME [--nats URL] -- COMMAND [ARGS...]
       dmcp wrap --name NAME [--nats URL] --url URL [--header 'Name: value']...
       dmcp wrap --name NAME [--nats URL] --nostr PUBKEY --relay URL [--relay URL]...

Makes an existing MCP server an executor on the bus: it takes the requests for service NAME,
calls the server and publishes the answers. Run it several times with the same NAME and the
replicas share the load. A server that does not start (no such command, nobody at the URL, no
answer to initialize) fails dmcp wrap at once, naming it, with exit code 1 (unless
--wait-for-upstream). A server that dies after it started is restarted with backoff; while it is
down, calls get a clear error. A stdio server that also speaks MCP 2026-07-28 gets a second
process, never initialized, for the stateless requests of 2026-07-28 clients. A server that
serves MCP 2026-07-28 only (it refuses initialize) is spoken to statelessly, and its requests for
input are asked of 2025 clients as server-to-client requests.

Options:
  --name NAME           service name (1-128 characters from A-Z a-z 0-9 _ -)
${natsHelp}  --url URL             wrap a remote MCP server over Streamable HTTP (legacy SSE as fallback)
  --header 'K: V'       HTTP header for every request to --url (repeatable); visible in the process
                        list, so prefer the two options below for secrets
  --header-env 'K=VAR'  HTTP header K for every request to --url, its value read from the
                        environment variable VAR (repeatable)
  --bearer-token-env VAR
                        send Authorization: Bearer <token> to --url, the token read from $VAR
  --bearer-token-file FILE
                        the same, the token read from FILE (trailing newline dropped)
  --nostr PUBKEY        wrap a ContextVM (or DVMCP) server on Nostr: its public key (hex or npub);
                        only the --relay URLs are used (see docs/nostr.md)
  --relay URL           with --nostr: a relay (ws:// or wss://) to reach the server on (repeatable)
  --nostr-key FILE      with --nostr: the secret key (hex or nsec) the executor signs with; without
                        it, a one-time key is generated at start (its public key is logged)
  --nostr-encryption MODE
                        with --nostr: optional (default: requests gift-wrapped, answers taken
                        either way), required (gift wraps only) or disabled (plain events only)
  --nostr-dialect D     with --nostr: contextvm (default) or dvmcp: a DVMCP server (spec 2025-03-26:
                        answers of kind 26910, simplified messages), reached in plain events only;
                        auto: dvmcp if the relays hold the server's DVMCP announcement (kind 31316)
                        and no ContextVM one (11316), else contextvm
  --env K=V             environment variable for the wrapped command (repeatable); the command
                        also inherits this process's environment
  --transport MODE      with --url: auto (default), streamable-http or sse
  --wait-for-upstream   a server that does not start is retried with backoff (the instance serves
                        as degraded meanwhile) instead of failing dmcp wrap
  --forward-caller      pass the caller's identity (the envelope's caller: kind, subject, issuer,
                        forwarded claims) to the server in each request's _meta["io.dmcp/caller"]
  --audit               log every call at info level with its caller, method, target and outcome
  --max-sessions N      MCP client sessions that get an upstream session of their own on this replica
                        (default: 32; a stdio server runs one process per session); further sessions
                        (all with 0) share one, without sampling, elicitation, roots, logging or
                        resource updates
  --session-idle MS     close a client session's upstream session after MS without calls
                        (default: 600000)
${deliveryHelp}${cacheHelp}  --instance ID         instance id on the bus (default: NAME-<random>)
  --heartbeat MS        heartbeat interval (default: 2000)
${securityHelp}  --seal-key FILE       the service's curve (xkey) seed in FILE (dmcp keygen --curve): requests
                        sealed to its public half are opened, answers sealed back; it is announced,
                        so gateways seal requests to it. Every replica of NAME needs the same key
  --metrics-port PORT   serve /metrics, /healthz and /readyz (ready: upstream connected) on PORT
  --metrics-host HOST   address for --metrics-port (default: 127.0.0.1)
${otelHelp}  --log-level LEVEL     trace, debug, info, warn, error or silent (default: info; logs go to stderr)
  -h, --help            show this help
`;

export async function wrapCommand(argv: string[], logger: Logger): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      name: { type: "string" },
      ...natsOptions,
      url: { type: "string" },
      header: { type: "string", multiple: true },
      "header-env": { type: "string", multiple: true },
      "bearer-token-env": { type: "string" },
      "bearer-token-file": { type: "string" },
      "forward-caller": { type: "boolean" },
      audit: { type: "boolean" },
      env: { type: "string", multiple: true },
      transport: { type: "string" },
      nostr: { type: "string" },
      relay: { type: "string", multiple: true },
      "nostr-key": { type: "string" },
      "nostr-encryption": { type: "string" },
      "nostr-dialect": { type: "string" },
      "wait-for-upstream": { type: "boolean" },
      instance: { type: "string" },
      heartbeat: { type: "string" },
      "max-sessions": { type: "string" },
      "session-idle": { type: "string" },
      "metrics-port": { type: "string" },
      "metrics-host": { type: "string" },
      "otel-endpoint": { type: "string" },
      ...securityOptions,
      "seal-key": { type: "string" },
      ...deliveryOptionSpec,
      ...cacheOptionSpec,
    },
    true,
  );
  if (values.help) {
    process.stdout.write(wrapHelp);
    return 0;
  }
  if (!values.name) throw new UsageError("dmcp wrap needs --name NAME (see dmcp wrap --help)");
  if (values.name === "dmcp") throw new UsageError("the service name dmcp is reserved for the gateway's own tools");
  try {
    assertToken("service name", values.name);
    if (values.instance) assertToken("instance id", values.instance);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const connector = await upstreamConnector(values, positionals, logger);

  const delivery = deliveryFromFlags(values);
  const cache = cacheFromFlags(values);
  const stopTracing = startTracing(values["otel-endpoint"], `dmcp-wrap-${values.name}`, logger);
  const heartbeatMs = parsePositiveInt(values.heartbeat, "--heartbeat");
  const maxSessions = parseNonNegativeInt(values["max-sessions"], "--max-sessions");
  const sessionIdleMs = parsePositiveInt(values["session-idle"], "--session-idle");
  const metricsPort = values["metrics-port"] === undefined ? undefined : parsePort(values["metrics-port"], "--metrics-port");
  const metrics = metricsPort === undefined ? undefined : createMetricsRegistry();
  const sealKeys = values["seal-key"] ? { [values.name]: curveSeedFrom(values["seal-key"], "--seal-key") } : undefined;
  const security = createSecurity(securityFromFlags(values, { sealKeys }), metrics);
  const bus = await connectCommandBus("wrap", values, { name: `dmcp-wrap-${values.name}`, logger, security });
  if (metrics) instrumentBus(bus, new BusMetrics(metrics));
  const executor = new Executor({
    bus,
    service: values.name,
    connector,
    logger,
    ...(values.instance ? { instance: values.instance } : {}),
    ...(heartbeatMs ? { heartbeatMs } : {}),
    maxSessions,
    sessionIdleMs,
    ...(metrics ? { metrics } : {}),
    forwardCaller: values["forward-caller"] ?? false,
    audit: values.audit ?? false,
    ...(delivery ? { delivery } : {}),
    cache,
    waitForUpstream: values["wait-for-upstream"] ?? false,
  });
  try {
    await executor.start();
  } catch (err) {
    await bus.drain();
    await stopTracing();
    throw err;
  }
  const probes =
    metrics && metricsPort !== undefined
      ? await serveProbes({ registry: metrics, port: metricsPort, host: values["metrics-host"] ?? "127.0.0.1", ready: () => executor.ready })
      : undefined;
  if (probes) logger.info({ url: `${probes.url}/metrics` }, "serving metrics");
  let failure: Error | undefined;
  const failed = executor.failed.then((err) => {
    failure = err;
    return "the executor cannot go on";
  });
  await runUntilSignal(
    logger,
    async () => {
      bus.beginShutdown();
      await executor.stop();
      await probes?.close();
      await bus.drain();
      await stopTracing();
    },
    failed,
  );
  if (failure) throw failure;
  return 0;
}

type WrapValues = Parameters<typeof upstreamHeaders>[0] & {
  url?: string;
  env?: string[];
  transport?: string;
  nostr?: string;
  relay?: string[];
  "nostr-key"?: string;
  "nostr-encryption"?: string;
  "nostr-dialect"?: string;
};

/** How the executor reaches its server: a command (stdio), a URL (HTTP) or a public key on Nostr relays. */
async function upstreamConnector(values: WrapValues, positionals: string[], logger: Logger): Promise<UpstreamConnector> {
  const kinds = [positionals.length > 0, values.url !== undefined, values.nostr !== undefined].filter(Boolean).length;
  if (kinds > 1) throw new UsageError("give one of -- COMMAND ARGS..., --url URL and --nostr PUBKEY, not two");
  if (kinds === 0) throw new UsageError("dmcp wrap needs -- COMMAND ARGS..., or --url URL, or --nostr PUBKEY (see dmcp wrap --help)");
  if (values.nostr === undefined && (values.relay || values["nostr-key"] || values["nostr-encryption"] || values["nostr-dialect"])) {
    throw new UsageError("--relay, --nostr-key, --nostr-encryption and --nostr-dialect apply to --nostr servers");
  }
  if (values.nostr !== undefined) return nostrUpstream(values, logger);
  const transport = values.transport ?? "auto";
  if (!["auto", "streamable-http", "sse"].includes(transport)) throw new UsageError(`--transport must be auto, streamable-http or sse, got ${transport}`);
  if (values.url && !URL.canParse(values.url)) throw new UsageError(`--url needs a URL, got ${JSON.stringify(values.url)}`);
  if (!values.url && (values["header-env"] || values["bearer-token-env"] || values["bearer-token-file"])) {
    throw new UsageError("--header-env and --bearer-token-* apply to --url servers; a command gets --env");
  }
  return values.url
    ? httpConnector({ url: values.url, headers: upstreamHeaders(values), transport: transport as "auto" })
    : stdioConnector({ command: positionals[0]!, args: positionals.slice(1), env: parseEnv(values.env) });
}

/** Loads the Nostr side (the ContextVM SDK, heavy to load) only for --nostr. */
async function nostrUpstream(values: WrapValues, logger: Logger): Promise<UpstreamConnector> {
  if (values.url || values.header || values["header-env"] || values["bearer-token-env"] || values["bearer-token-file"] || values.transport || values.env) {
    throw new UsageError("--header*, --bearer-token-*, --transport and --env do not apply to --nostr servers");
  }
  const encryption = values["nostr-encryption"] ?? "optional";
  if (!["optional", "required", "disabled"].includes(encryption)) {
    throw new UsageError(`--nostr-encryption must be optional, required or disabled, got ${encryption}`);
  }
  const dialect = values["nostr-dialect"] ?? "contextvm";
  if (!["contextvm", "dvmcp", "auto"].includes(dialect)) throw new UsageError(`--nostr-dialect must be contextvm, dvmcp or auto, got ${dialect}`);
  const { generateSecretKeyHex, parsePublicKey, parseRelayUrls, publicKeyOf, readSecretKey } = await import("../../nostr/index.js");
  const { nostrConnector } = await import("../../../adapters/outbound/nostr/index.js");
  try {
    const serverPubkey = parsePublicKey(values.nostr ?? "", "--nostr");
    const relays = parseRelayUrls(values.relay, "--relay");
    if (relays.length === 0) throw new Error("--nostr needs at least one --relay URL");
    const secretKey = values["nostr-key"] ? readSecretKey(values["nostr-key"], "--nostr-key") : generateSecretKeyHex();
    logger.info({ pubkey: publicKeyOf(secretKey), oneTimeKey: !values["nostr-key"] }, "the executor's Nostr identity");
    return await nostrConnector({ serverPubkey, relays, secretKey, encryption: encryption as EncryptionPolicy, dialect: dialect as NostrDialect | "auto" });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** The --url server's headers: plain ones, and secrets read from the environment or a file now. */
function upstreamHeaders(values: { header?: string[]; "header-env"?: string[]; "bearer-token-env"?: string; "bearer-token-file"?: string }): Record<string, string> {
  if (values["bearer-token-env"] && values["bearer-token-file"]) throw new UsageError("give --bearer-token-env or --bearer-token-file, not both");
  const secrets: Record<string, Secret> = parseHeaders(values.header);
  for (const pair of values["header-env"] ?? []) {
    const equals = pair.indexOf("=");
    if (equals <= 0 || equals === pair.length - 1) throw new UsageError(`--header-env needs Name=VARIABLE, got ${JSON.stringify(pair)}`);
    secrets[pair.slice(0, equals).trim()] = { env: pair.slice(equals + 1).trim() };
  }
  const bearer: Secret | undefined = values["bearer-token-env"]
    ? { env: values["bearer-token-env"] }
    : values["bearer-token-file"]
      ? { file: values["bearer-token-file"] }
      : undefined;
  try {
    return resolveHeaders(secrets, bearer, "--url server");
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

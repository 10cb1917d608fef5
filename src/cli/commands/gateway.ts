import type { Logger } from "../../util/index.js";
import { readFileSync } from "node:fs";
import {
  createAuthenticator,
  followTokensFile,
  parseRateLimit,
  parseTokens,
  readTokensFile,
  StaticTokens,
  type Authenticate,
  type HttpGatewayServer,
  type RateLimit,
} from "../../../adapters/inbound/index.js";
import type { ContextRetention } from "../../bus/index.js";
import { createMetricsRegistry } from "../../metrics/index.js";
import { natsHelp, natsOptions, parse, parseDuration, parseNonNegativeInt, parsePort, parsePositiveInt, parseSize, UsageError, otelHelp } from "../args.js";
import { connectCommandBus } from "../bus.js";
import { runUntilSignal, startTracing } from "../lifecycle.js";
import { startGateway, type GatewayServeOptions } from "../serve.js";
import { createSecurity, securityFromFlags, securityHelp, securityOptions, curveSeedFrom, servicePairs } from "../security.js";
import { loadPolicy } from "../config.js";
import { gatewayCacheFromFlags, gatewayCacheHelp } from "../cache.js";
import type { AccessPolicy } from "../../gateway/index.js";

export const gatewayHelp = `Usage: dmcp gateway [--nats URL] (--stdio | --http PORT [--host HOST] [--dashboard] | --nostr --relay URL... --nostr-key FILE) [options]

Serves every service on the bus as one MCP server.

Options:
${natsHelp}  --stdio               serve MCP on stdin/stdout (for Claude Desktop and other stdio clients)
  --http PORT           serve MCP over Streamable HTTP at http://HOST:PORT/mcp (0 = any free port)
  --host HOST           address to listen on with --http (default: 127.0.0.1)
  --dashboard           with --http, also serve a live dashboard at http://HOST:PORT/dashboard:
                        services and replicas, calls in flight, recent errors, bus traffic (metadata
                        only, no payloads; like /mcp, anyone who can reach the port can open it)
  --json-responses      with --http: answer every call with plain JSON, also those that ask for
                        progress, whose notifications then do not reach HTTP clients. Default: a
                        call that asks for progress gets a resumable SSE stream; any other call a
                        JSON answer, or an SSE stream (without event ids) when a message of the call
                        comes before its answer
  --sse-poll MS         with --http: answer every call on a resumable SSE stream, and close the
                        stream of a call still waiting for its answer after MS, once; the client
                        resumes it with Last-Event-ID and gets the answer there (SSE polling,
                        SEP-1699; 2025-11-25 clients). Default: streams stay open
  --resumable-after MS  with --http: a plain call of a 2025-11-25 client still unanswered after MS
                        (default 50) gets a resumable SSE stream, which the client resumes with
                        Last-Event-ID on this or, should this one die, another gateway; 0: never
                        (plain calls get JSON, or SSE without event ids when a message of the
                        call comes first)
  --auth-tokens FILE    with --http: require a bearer token from FILE (lines name:token; the
                        name is the caller's identity); also $DMCP_AUTH_TOKENS (name:token,...).
                        FILE is reread when it changes and on SIGHUP: a name taken out gets 401
                        from its next request and its sessions close; a bad FILE keeps the last
                        good tokens (logged as an error)
  --jwt-jwks URL        with --http: accept JWTs signed by a key of this JWKS
  --jwt-public-key FILE with --http: accept JWTs signed by this PEM public key (RS256)
  --jwt-issuer ISS      required iss of accepted JWTs
  --jwt-audience AUD    required aud of accepted JWTs (e.g. this gateway's /mcp URL)
  --auth-server URL     authorization server announced in /.well-known/oauth-protected-resource
                        (repeatable)
  --cors-origin ORIGIN  with --http: let browser pages from ORIGIN (e.g. https://app.example.com;
                        * for any) call /mcp; repeatable. Without it no CORS headers are sent
  --policy FILE         per-identity access to tools, resources and prompts (JSON; see
                        docs/security.md); denied items are left out of lists and calls get FORBIDDEN
  --forward-claims LIST JWT claims (comma-separated) copied into each request's caller for executors
                        (the caller's kind, subject and issuer always travel)
  --forward-token       also copy the caller's raw bearer token into each request (off by default)
  --nostr               serve the bus's services to Nostr clients as a ContextVM server (see
                        docs/nostr.md); with --stdio or --http, or on its own
  --relay URL           with --nostr: a relay (ws:// or wss://) to serve on (repeatable); no other
                        relay is used
  --nostr-key FILE      with --nostr: the gateway's secret key (hex or nsec): its public key is the
                        server's Nostr identity
  --nostr-encryption MODE
                        with --nostr: optional (default: answers as the client asked), required
                        (gift wraps only) or disabled (plain events only)
  --identity NAME       with --stdio: the identity of the stdio client for --policy (default: local)
  --rate-limit N/s      with --http: at most N requests per second per client (its token's name or
                        JWT subject, else its address), bursts up to N; or N/s,burst=M. Over it: 429.
                        Shared by the gateways on the bus (give them all the same limit)
${securityHelp}  --seal-to SERVICE=KEY seal requests to SERVICE (and so its answers) with its public curve key KEY
                        (X…); without it, to the key the service announces, if any (repeatable)
  --caller-seal-key FILE
                        seal requests with, and open their answers with, the curve seed in FILE
                        (dmcp keygen --curve) instead of a key made per process; the SSE events of
                        sealed calls go on the bus sealed to it. Gateways given the same one open
                        each other's answers and resume each other's sealed calls' streams, so that
                        a sealed call whose gateway died is answered through another
  --call-timeout MS     deadline of each forwarded call (default: 60000)
  --context-max-age D   keep context updates this long, e.g. 24h or 7d (default: 7d)
  --context-max-bytes S keep at most this much context, e.g. 512MB (default: 1GiB)
  --context-max-msgs N  keep at most N context updates in all (default: 1000000)
  --context-max-per-topic N
                        keep at most N updates per topic (default: 10000)
                        (the context limits are set on the stream only when one of them is given)
  --result-ttl D        how long the result store keeps the answers of durable calls, e.g. 1h
                        (default: 15m; longer than the longest call timeout). It applies when this
                        gateway creates the store: an existing one keeps its own
${gatewayCacheHelp}  --shutdown-grace MS   on SIGTERM, how long calls in flight may take to finish (default: 10000)
  --metrics-port PORT   also serve /metrics, /healthz and /readyz on this port (the HTTP gateway
                        serves them on its own port as well)
${otelHelp}  --log-level LEVEL     trace, debug, info, warn, error or silent (default: info; logs go to stderr)
  -h, --help            show this help
`;

/** Options that only the HTTP gateway reads: given without --http they would do nothing. */
const HTTP_ONLY_FLAGS = ["host", "json-responses", "sse-poll", "resumable-after", "rate-limit", "cors-origin"] as const;

export async function gatewayCommand(argv: string[], logger: Logger): Promise<number> {
  const { values } = parse(argv, {
    ...natsOptions,
    stdio: { type: "boolean" },
    http: { type: "string" },
    host: { type: "string" },
    "call-timeout": { type: "string" },
    "context-max-age": { type: "string" },
    "context-max-bytes": { type: "string" },
    "context-max-msgs": { type: "string" },
    "context-max-per-topic": { type: "string" },
    "result-ttl": { type: "string" },
    "cache-max-bytes": { type: "string" },
    "cache-shared-max-bytes": { type: "string" },
    "no-cache": { type: "boolean" },
    "metrics-port": { type: "string" },
    "shutdown-grace": { type: "string" },
    "otel-endpoint": { type: "string" },
    dashboard: { type: "boolean" },
    "json-responses": { type: "boolean" },
    "sse-poll": { type: "string" },
    "resumable-after": { type: "string" },
    "auth-tokens": { type: "string" },
    "jwt-jwks": { type: "string" },
    "jwt-public-key": { type: "string" },
    "jwt-issuer": { type: "string" },
    "jwt-audience": { type: "string" },
    "auth-server": { type: "string", multiple: true },
    "rate-limit": { type: "string" },
    ...securityOptions,
    "seal-to": { type: "string", multiple: true },
    "caller-seal-key": { type: "string" },
    policy: { type: "string" },
    "cors-origin": { type: "string", multiple: true },
    "forward-claims": { type: "string" },
    "forward-token": { type: "boolean" },
    identity: { type: "string" },
    nostr: { type: "boolean" },
    relay: { type: "string", multiple: true },
    "nostr-key": { type: "string" },
    "nostr-encryption": { type: "string" },
  });
  if (values.help) {
    process.stdout.write(gatewayHelp);
    return 0;
  }
  if (!values.stdio && values.http === undefined && !values.nostr) throw new UsageError("dmcp gateway needs --stdio or --http PORT, or --nostr (see dmcp gateway --help)");
  const nostr = await nostrFlags(values);
  const cache = gatewayCacheFromFlags(values);
  if (values.dashboard && values.http === undefined) throw new UsageError("--dashboard needs --http PORT: the dashboard is served by the HTTP gateway");
  const auth = await authFlags(values);
  const policy = values.policy === undefined ? undefined : policyFlag(values.policy);
  if (auth && values.http === undefined) throw new UsageError("authentication options apply to the HTTP gateway: add --http PORT");
  const httpOnly = HTTP_ONLY_FLAGS.filter((flag) => values[flag] !== undefined).map((flag) => `--${flag}`);
  if (httpOnly.length > 0 && values.http === undefined)
    throw new UsageError(`${httpOnly.join(", ")} ${httpOnly.length > 1 ? "apply" : "applies"} to the HTTP gateway: add --http PORT`);
  if (values.identity !== undefined && !values.stdio) throw new UsageError("--identity names the stdio client: it applies with --stdio");
  const stopTracing = startTracing(values["otel-endpoint"], "dmcp-gateway", logger);
  const metrics = createMetricsRegistry();
  const callerSealKey = values["caller-seal-key"] === undefined ? undefined : curveSeedFrom(values["caller-seal-key"], "--caller-seal-key");
  const security = createSecurity(securityFromFlags(values, { sealTo: servicePairs(values["seal-to"], "--seal-to"), callerSealKey }), metrics);
  // Every flag is read before the bus is reached: a wrong value is a usage error, whether NATS is up or not.
  const serving: Omit<GatewayServeOptions, "bus"> = {
    logger,
    stdio: values.stdio ?? false,
    http: values.http === undefined ? undefined : { port: parsePort(values.http, "--http"), host: values.host ?? "127.0.0.1" },
    callTimeoutMs: parsePositiveInt(values["call-timeout"], "--call-timeout"),
    contextRetention: retentionFlags(values),
    resultTtlMs: values["result-ttl"] === undefined ? undefined : parseDuration(values["result-ttl"], "--result-ttl"),
    cache,
    metrics,
    metricsPort: values["metrics-port"] === undefined ? undefined : parsePort(values["metrics-port"], "--metrics-port"),
    shutdownGraceMs: parsePositiveInt(values["shutdown-grace"], "--shutdown-grace"),
    jsonResponses: values["json-responses"] ?? false,
    ssePollMs: parsePositiveInt(values["sse-poll"], "--sse-poll"),
    resumableAfterMs: parseNonNegativeInt(values["resumable-after"], "--resumable-after"),
    auth,
    rateLimit: rateLimitFlag(values["rate-limit"]),
    dashboard: values.dashboard ?? false,
    policy,
    corsOrigins: values["cors-origin"],
    forwardClaims: values["forward-claims"]
      ?.split(",")
      .map((claim) => claim.trim())
      .filter(Boolean),
    forwardToken: values["forward-token"] ?? false,
    stdioIdentity: values.identity,
    nostr,
  };
  const bus = await connectCommandBus("gateway", values, { name: "dmcp-gateway", logger, security });
  const running = await startGateway({ bus, ...serving });
  const tokensFile = auth?.tokensFile && running.http ? followTokens(auth.tokensFile, running.http, logger) : undefined;
  if (running.http) process.stderr.write(`dmcp gateway: serving MCP at ${running.http.url}\n`);
  if (running.http?.dashboardUrl) process.stderr.write(`dmcp gateway: dashboard at ${running.http.dashboardUrl}\n`);
  await runUntilSignal(
    logger,
    async () => {
      tokensFile?.close();
      await running.stop();
      await bus.drain();
      await stopTracing();
    },
    values.stdio ? running.stdioClosed : undefined,
  );
  return 0;
}

/** The Nostr side of the gateway, from --nostr, --relay, --nostr-key and --nostr-encryption. */
async function nostrFlags(values: { nostr?: boolean; relay?: string[]; "nostr-key"?: string; "nostr-encryption"?: string }) {
  if (!values.nostr) {
    if (values.relay || values["nostr-key"] || values["nostr-encryption"]) throw new UsageError("--relay, --nostr-key and --nostr-encryption apply to --nostr");
    return undefined;
  }
  const encryption = values["nostr-encryption"] ?? "optional";
  if (encryption !== "optional" && encryption !== "required" && encryption !== "disabled") {
    throw new UsageError(`--nostr-encryption must be optional, required or disabled, got ${encryption}`);
  }
  if (!values["nostr-key"]) throw new UsageError("--nostr needs --nostr-key FILE: the gateway's Nostr identity");
  const { parseRelayUrls, readSecretKey } = await import("../../nostr/index.js");
  try {
    const relays = parseRelayUrls(values.relay, "--relay");
    if (relays.length === 0) throw new Error("--nostr needs at least one --relay URL");
    return { relays, secretKey: readSecretKey(values["nostr-key"], "--nostr-key"), encryption } as const;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function retentionFlags(values: Record<string, unknown>): ContextRetention | undefined {
  const retention: ContextRetention = {};
  const text = (flag: string) => (typeof values[flag] === "string" ? (values[flag] as string) : undefined);
  if (text("context-max-age")) retention.maxAgeMs = parseDuration(text("context-max-age")!, "--context-max-age");
  if (text("context-max-bytes")) retention.maxBytes = parseSize(text("context-max-bytes")!, "--context-max-bytes");
  const msgs = parsePositiveInt(text("context-max-msgs"), "--context-max-msgs");
  if (msgs) retention.maxMessages = msgs;
  const perTopic = parsePositiveInt(text("context-max-per-topic"), "--context-max-per-topic");
  if (perTopic) retention.maxMessagesPerTopic = perTopic;
  return Object.keys(retention).length > 0 ? retention : undefined;
}

interface AuthFlags {
  authenticate: Authenticate;
  authorizationServers: string[];
  /** With --auth-tokens: the file, what it held at start, and the tokens to replace when it changes. */
  tokensFile?: { path: string; initial: Record<string, string>; fromEnvironment: Record<string, string>; tokens: StaticTokens };
}

/** The authenticator the flags (and $DMCP_AUTH_TOKENS) describe, or undefined for an open gateway. */
async function authFlags(values: Record<string, unknown>): Promise<AuthFlags | undefined> {
  const text = (flag: string) => (typeof values[flag] === "string" ? (values[flag] as string) : undefined);
  const path = text("auth-tokens");
  const fromEnvironment = process.env.DMCP_AUTH_TOKENS ? await flagged("$DMCP_AUTH_TOKENS", () => parseTokens(process.env.DMCP_AUTH_TOKENS!)) : {};
  const fromFile = path ? await flagged("--auth-tokens", () => readTokensFile(path)) : {};
  // With a tokens file, authentication is on even while the file names nobody: users may be added later.
  const fileTokens = path ? new StaticTokens({ ...fromEnvironment, ...fromFile }) : undefined;
  const jwksUrl = text("jwt-jwks");
  if (jwksUrl !== undefined && !URL.canParse(jwksUrl)) throw new UsageError(`--jwt-jwks needs the URL of a JWKS, got ${JSON.stringify(jwksUrl)}`);
  const keyFile = text("jwt-public-key");
  const publicKeyPem = keyFile ? await flagged("--jwt-public-key", () => pemPublicKey(readFileSync(keyFile, "utf8"), keyFile)) : undefined;
  const jwt =
    jwksUrl || publicKeyPem
      ? {
          ...(jwksUrl ? { jwksUrl } : {}),
          ...(publicKeyPem ? { publicKeyPem } : {}),
          ...(text("jwt-issuer") ? { issuer: text("jwt-issuer")! } : {}),
          ...(text("jwt-audience") ? { audience: text("jwt-audience")! } : {}),
        }
      : undefined;
  if (!path && Object.keys(fromEnvironment).length === 0 && !jwt) return undefined;
  const authenticate = await flagged("authentication", () => createAuthenticator({ tokens: fileTokens ?? fromEnvironment, ...(jwt ? { jwt } : {}) }));
  return {
    authenticate,
    authorizationServers: (values["auth-server"] as string[] | undefined) ?? [],
    ...(path && fileTokens ? { tokensFile: { path, initial: fromFile, fromEnvironment, tokens: fileTokens } } : {}),
  };
}

/** The key of --jwt-public-key: a PEM public key (SPKI), the only form it takes. */
function pemPublicKey(pem: string, file: string): string {
  if (!pem.includes("-----BEGIN PUBLIC KEY-----")) throw new Error(`${file} holds no PEM public key (-----BEGIN PUBLIC KEY-----)`);
  return pem;
}

/** Runs a reading of what FLAG names; its failure is a usage error that names FLAG. */
async function flagged<T>(flag: string, read: () => T | Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (err) {
    throw new UsageError(`${flag}: ${(err as Error).message}`);
  }
}

/**
 * Keeps the accepted tokens those of the file (and $DMCP_AUTH_TOKENS) as it changes, and on SIGHUP.
 * A user who is no longer named is refused (401) from the next request, and their open sessions close.
 */
function followTokens(file: NonNullable<AuthFlags["tokensFile"]>, http: HttpGatewayServer, logger: Logger): { close(): void } {
  const followed = followTokensFile(file.path, file.initial, {
    logger,
    onChange: (fromFile) => {
      file.tokens.replace({ ...file.fromEnvironment, ...fromFile });
      void http.closeSessionsOf((identity) => identity.kind === "token" && !file.tokens.has(identity.subject));
    },
  });
  const onHangup = () => followed.reload("SIGHUP");
  process.on("SIGHUP", onHangup);
  return {
    close() {
      process.off("SIGHUP", onHangup);
      followed.close();
    },
  };
}

function policyFlag(path: string): AccessPolicy {
  try {
    return loadPolicy(path);
  } catch (err) {
    throw new UsageError(`--policy: ${(err as Error).message}`);
  }
}

function rateLimitFlag(value: string | undefined): RateLimit | undefined {
  if (value === undefined) return undefined;
  try {
    return parseRateLimit(value);
  } catch (err) {
    throw new UsageError(`--rate-limit: ${(err as Error).message}`);
  }
}

/** Command-line parsing shared by the commands (node's util.parseArgs), with errors users can act on. */
import { parseArgs } from "node:util";
import { seedUrls } from "../bus/index.js";
import { defaultDataDir, findRunningUp, type RunningUp } from "./up-store.js";

export class UsageError extends Error {
  readonly code = "USAGE";
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export const DEFAULT_NATS_URL = "nats://127.0.0.1:4222";

interface OptionSpec {
  type: "string" | "boolean";
  multiple?: boolean;
  short?: string;
}

type Values<O extends Record<string, OptionSpec>> = {
  [K in keyof O]?: O[K] extends { type: "boolean" } ? boolean : O[K] extends { multiple: true } ? string[] : string;
} & { help?: boolean; "log-level"?: string };

const commonOptions = {
  help: { type: "boolean", short: "h" },
  "log-level": { type: "string" },
} as const;

export function parse<const O extends Record<string, OptionSpec>>(argv: string[], options: O, allowPositionals = false): { values: Values<O>; positionals: string[] } {
  try {
    const parsed = parseArgs({ args: argv, options: { ...commonOptions, ...options }, allowPositionals, strict: true });
    return { values: parsed.values as Values<O>, positionals: parsed.positionals };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** The NATS server a command connects to, and where that choice came from (for advice when it fails). */
export interface NatsTarget {
  url: string;
  from: "--nats" | "$DMCP_NATS_URL" | "dmcp up" | "default";
  /** The store where a running `dmcp up` was looked for (and, if found, that `dmcp up`). */
  dataDir: string;
  up?: RunningUp;
}

/** --nats, else $DMCP_NATS_URL, else the bus of the `dmcp up` running with the store --data-dir, else 4222. */
export function natsTarget(values: Record<string, unknown>): NatsTarget {
  const dataDir = typeof values["data-dir"] === "string" ? values["data-dir"] : defaultDataDir();
  if (typeof values.nats === "string") return { url: values.nats, from: "--nats", dataDir };
  if (process.env.DMCP_NATS_URL) return { url: process.env.DMCP_NATS_URL, from: "$DMCP_NATS_URL", dataDir };
  const up = findRunningUp(dataDir);
  if (up) return { url: up.url, from: "dmcp up", dataDir: up.dataDir, up };
  return { url: DEFAULT_NATS_URL, from: "default", dataDir };
}

export function parsePort(value: string, flag: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`${flag} needs a port number (0-65535), got ${JSON.stringify(value)}`);
  return port;
}

export function parsePositiveInt(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isInteger(number) || number <= 0) throw new UsageError(`${flag} needs a positive whole number, got ${JSON.stringify(value)}`);
  return number;
}

export function parseNonNegativeInt(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isInteger(number) || number < 0) throw new UsageError(`${flag} needs a whole number >= 0, got ${JSON.stringify(value)}`);
  return number;
}

/** Parses `--header 'Name: value'` flags into a record. */
export function parseHeaders(values: string[] | undefined): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const value of values ?? []) {
    const colon = value.indexOf(":");
    if (colon <= 0) throw new UsageError(`--header needs 'Name: value', got ${JSON.stringify(value)}`);
    headers[value.slice(0, colon).trim()] = value.slice(colon + 1).trim();
  }
  return headers;
}

/** Parses `--env NAME=value` flags into a record. */
export function parseEnv(values: string[] | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  for (const value of values ?? []) {
    const equals = value.indexOf("=");
    if (equals <= 0) throw new UsageError(`--env needs NAME=value, got ${JSON.stringify(value)}`);
    env[value.slice(0, equals)] = value.slice(equals + 1);
  }
  return env;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };

/** `90s`, `15m`, `24h`, `7d` or plain milliseconds; at least 1 ms (0 would mean "no limit" to JetStream, or nothing at all). */
export function parseDuration(value: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(value.trim());
  const ms = match ? Math.round(Number(match[1]) * DURATION_UNITS[match[2] ?? "ms"]!) : 0;
  if (ms < 1) throw new UsageError(`${flag} needs a duration such as 30s, 15m, 24h or 7d (1ms or more), got ${JSON.stringify(value)}`);
  return ms;
}

/** `512MB`, `1GiB` or plain bytes. */
export function parseSize(value: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?$/i.exec(value.trim());
  if (!match) throw new UsageError(`${flag} needs a size such as 512MB or 1GiB, got ${JSON.stringify(value)}`);
  return Math.round(Number(match[1]) * SIZE_UNITS[(match[2] ?? "b").toLowerCase()]!);
}

/** The connection flags every command that talks to NATS takes. */
export const natsOptions = {
  nats: { type: "string" },
  "nats-user": { type: "string" },
  "nats-pass": { type: "string" },
  "nats-token": { type: "string" },
  "nats-creds": { type: "string" },
  "nats-nkey": { type: "string" },
  "nats-tls-ca": { type: "string" },
  "nats-tls-cert": { type: "string" },
  "nats-tls-key": { type: "string" },
  "nats-inbox-prefix": { type: "string" },
  "js-domain": { type: "string" },
  "stream-replicas": { type: "string" },
  "data-dir": { type: "string" },
} as const;

export const natsHelp = `  --nats URL[,URL...]   NATS server URL, or the comma-separated seed URLs of a cluster (any live one
                        will do; on losing its server the process reconnects to another). Default:
                        $DMCP_NATS_URL, else the bus of the dmcp up running on this machine with the
                        store --data-dir (its dmcp-up.json there names it), else nats://127.0.0.1:4222
  --data-dir DIR        without --nats: the store of the dmcp up whose bus to use (default:
                        $XDG_STATE_HOME/dmcp/nats, else ~/.local/state/dmcp/nats, as for dmcp up)
  --nats-user U, --nats-pass P, --nats-token T
                        NATS credentials (also $DMCP_NATS_USER, $DMCP_NATS_PASS, $DMCP_NATS_TOKEN)
  --nats-creds FILE     a NATS credentials file (JWT and nkey seed)
  --nats-nkey FILE      a file holding an nkey seed
  --nats-tls-ca FILE    TLS: the CA of the server's certificate (also use a tls:// URL)
  --nats-tls-cert FILE, --nats-tls-key FILE
                        TLS client certificate and key
  --nats-inbox-prefix P reply subjects start with P (default: $DMCP_NATS_INBOX_PREFIX or
                        _INBOX), so that a NATS user may subscribe to P.> only (deploy/nats/)
  --js-domain D         use the JetStream of domain D (the domain in the servers' jetstream block):
                        how a process on a leafnode server reaches the cluster's JetStream
  --stream-replicas N   replicas of the JetStream streams and buckets this process creates (gateways
                        and dmcp up create them). Default: 3 when the server is one of a cluster of
                        3 or more, else 1
`;

/** BusConnectOptions from the NATS flags (and their environment variables). */
export function natsConnection(values: Record<string, unknown>, target: NatsTarget = natsTarget(values)) {
  const text = (flag: string, env?: string) => (typeof values[flag] === "string" ? (values[flag] as string) : env ? process.env[env] : undefined);
  const user = text("nats-user", "DMCP_NATS_USER");
  const pass = text("nats-pass", "DMCP_NATS_PASS");
  const token = text("nats-token", "DMCP_NATS_TOKEN");
  const credsFile = text("nats-creds");
  const nkeySeedFile = text("nats-nkey");
  if (credsFile && nkeySeedFile) throw new UsageError("give --nats-creds or --nats-nkey, not both");
  const [caFile, certFile, keyFile] = [text("nats-tls-ca"), text("nats-tls-cert"), text("nats-tls-key")];
  if (Boolean(certFile) !== Boolean(keyFile)) throw new UsageError("--nats-tls-cert and --nats-tls-key go together");
  const inboxPrefix = text("nats-inbox-prefix", "DMCP_NATS_INBOX_PREFIX");
  if (inboxPrefix !== undefined && !/^[^.*>\s]+(\.[^.*>\s]+)*$/.test(inboxPrefix)) {
    throw new UsageError(`--nats-inbox-prefix needs dot-separated tokens without wildcards or spaces, e.g. _INBOX.gateway; got ${JSON.stringify(inboxPrefix)}`);
  }
  const jsDomain = text("js-domain");
  if (jsDomain !== undefined && !/^[A-Za-z0-9_-]+$/.test(jsDomain)) throw new UsageError(`--js-domain needs a name of letters, digits, - and _, got ${JSON.stringify(jsDomain)}`);
  const streamReplicas = parsePositiveInt(text("stream-replicas"), "--stream-replicas");
  const tls = caFile || certFile ? { ...(caFile ? { caFile } : {}), ...(certFile ? { certFile, keyFile: keyFile! } : {}) } : undefined;
  const servers = seedUrls(target.url);
  if (servers.length === 0) throw new UsageError(`${target.from} needs a NATS URL or comma-separated URLs, got ${JSON.stringify(target.url)}`);
  return {
    servers,
    ...(user ? { user } : {}),
    ...(pass ? { pass } : {}),
    ...(token ? { token } : {}),
    ...(credsFile ? { credsFile } : {}),
    ...(nkeySeedFile ? { nkeySeedFile } : {}),
    ...(tls ? { tls } : {}),
    ...(inboxPrefix ? { inboxPrefix } : {}),
    ...(jsDomain ? { jsDomain } : {}),
    ...(streamReplicas ? { streamReplicas } : {}),
  };
}

export const otelHelp = `  --otel-endpoint URL   export OpenTelemetry spans over OTLP/HTTP, e.g. http://localhost:4318/v1/traces
                        (default: $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or $OTEL_EXPORTER_OTLP_ENDPOINT; off)
`;

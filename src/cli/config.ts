/** The `dmcp up` config file: validated by zod, every error reported with its exact path. */
import { mkdirSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import * as z from "zod";
import type { ContextRetention } from "../bus/index.js";
import { formatIssues } from "../protocol/index.js";
import { AccessPolicy, PolicySchema } from "../gateway/index.js";
import { parseDuration, parseSize } from "./args.js";
import { DeliveryConfigFields } from "./delivery.js";
import { CacheConfigFields, GatewayCacheConfig } from "./cache.js";

const ServiceName = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, "service names use 1-128 characters from A-Z a-z 0-9 _ -");
const Duration = z.union([z.number().int().positive(), z.string().regex(/^\d+(\.\d+)?\s*(ms|s|m|h|d)?$/, "a duration such as 30s, 15m, 24h or 7d")]);
const SigningPublicKey = z.string().regex(/^[ACNOU][A-Z2-7]{55}$/, "a public signing nkey (U…, 56 characters)");

/** Message security of every component `dmcp up` starts (PROTOCOL.md §14); key files are relative to the config file. */
const SecurityConfig = z.strictObject({
  signKey: z.string().min(1).optional().describe("file holding the ed25519 nkey seed every component signs with"),
  trustedKeys: z.array(SigningPublicKey).default([]).describe("public keys trusted for every role"),
  serviceKeys: z.record(ServiceName, z.array(SigningPublicKey)).default({}).describe("public keys trusted to speak for one service only"),
  requireSignatures: z.boolean().default(false).describe("reject unsigned messages and untrusted signers"),
  replayWindow: Duration.optional().describe("how far a signed message's timestamp may be off (default 2m)"),
  sealKeys: z.record(ServiceName, z.string().min(1)).default({}).describe("files holding the curve (xkey) seeds of configured services: their calls travel sealed"),
  sealTo: z
    .record(ServiceName, z.string().regex(/^X[A-Z2-7]{55}$/, "a public curve key (X…)"))
    .default({})
    .describe("public curve keys of services elsewhere on the bus"),
  callerSealKey: z
    .string()
    .min(1)
    .optional()
    .describe("file holding the curve (xkey) seed the gateway seals its requests and its sealed calls' SSE events with (as dmcp gateway --caller-seal-key)"),
});
export type SecurityConfig = z.infer<typeof SecurityConfig>;

/** What `dmcp wrap --forward-caller`, `--audit`, `--max-sessions` and `--session-idle` set, for servers of the config. */
const ExecutorSettings = {
  forwardCaller: z.boolean().default(false).describe('pass the caller to the server in _meta["io.dmcp/caller"]'),
  audit: z.boolean().default(false).describe("log every call with its caller at info level"),
  maxSessions: z.number().int().min(0).optional().describe("MCP client sessions that get an upstream session of their own on each replica (default 32; 0: none)"),
  sessionIdle: Duration.optional().describe("close a client session's upstream session after this long without calls (default 10m)"),
  ...DeliveryConfigFields,
  ...CacheConfigFields,
};

const StdioServer = z.strictObject({
  command: z.string().min(1),
  args: z.array(z.string()).default([]),
  env: z.record(z.string(), z.string()).default({}),
  cwd: z.string().optional(),
  replicas: z.number().int().min(1).max(64).default(1),
  ...ExecutorSettings,
});

/** A secret given inline, or read at start from an environment variable or a file (so the config can be shared). */
const Secret = z.union(
  [
    z.string(),
    z.strictObject({ env: z.string().min(1).describe("environment variable holding the value") }),
    z.strictObject({ file: z.string().min(1).describe("file holding the value (trailing newline dropped); relative to the config file") }),
  ],
  { error: () => 'a value is a string, {"env": "VARIABLE"} or {"file": "path"}' },
);
export type Secret = z.infer<typeof Secret>;

const HttpServer = z.strictObject({
  url: z.url(),
  headers: z.record(z.string(), Secret).default({}).describe("HTTP headers for every request to the server"),
  bearerToken: Secret.optional().describe("sent as Authorization: Bearer <token>"),
  transport: z.enum(["auto", "streamable-http", "sse"]).default("auto"),
  replicas: z.number().int().min(1).max(64).default(1),
  ...ExecutorSettings,
});

const NostrServer = z.strictObject({
  nostr: z.string().min(1).describe("the ContextVM (or DVMCP) server's public key (hex or npub)"),
  relays: z
    .array(z.string().regex(/^wss?:\/\/\S+$/, "a ws:// or wss:// URL"))
    .min(1)
    .describe("the only relays used to reach the server"),
  nostrKey: z.string().min(1).optional().describe("file holding the executor's secret key (hex or nsec), relative to the config file; default: a one-time key"),
  encryption: z.enum(["optional", "required", "disabled"]).default("optional"),
  dialect: z
    .enum(["contextvm", "dvmcp", "auto"])
    .default("contextvm")
    .describe("the form of the server's messages: ContextVM's, DVMCP's (spec 2025-03-26, plain events only), or auto: told by the server's announcements"),
  replicas: z.number().int().min(1).max(64).default(1),
  ...ExecutorSettings,
});

const ServerEntry = z.union([StdioServer, HttpServer, NostrServer], {
  error: () => 'a server needs either "command" (a stdio MCP server) or "url" (a remote MCP server) or "nostr" (a ContextVM server), and no unknown keys',
});

export const ConfigSchema = z.strictObject({
  $schema: z.string().optional(),
  nats: z
    .strictObject({
      /** Use an existing NATS server (or cluster); without it `dmcp up` starts its own. */
      url: z.string().min(1).optional().describe("an existing NATS server's URL, or the comma-separated seed URLs of a cluster; without it dmcp up starts its own nats-server"),
      /** The JetStream domain to address (`--js-domain`): how a process on a leafnode server reaches the cluster's JetStream. */
      jsDomain: z
        .string()
        .regex(/^[A-Za-z0-9_-]+$/, "a name of letters, digits, - and _")
        .optional()
        .describe("the JetStream domain to use (the domain in the servers' jetstream block), as --js-domain"),
      /** Replicas of the streams and buckets `dmcp up` creates (`--stream-replicas`). */
      streamReplicas: z
        .number()
        .int()
        .positive()
        .optional()
        .describe("replicas of the JetStream streams and buckets dmcp up creates, as --stream-replicas; default 3 on a cluster of 3 or more servers, else 1"),
      /** Where the embedded server keeps its JetStream store. */
      dataDir: z.string().min(1).optional(),
    })
    .default({}),
  gateway: z
    .strictObject({
      http: z
        .union([z.strictObject({ port: z.number().int().min(0).max(65535).default(8808), host: z.string().min(1).default("127.0.0.1") }), z.literal(false)])
        .default({ port: 8808, host: "127.0.0.1" }),
      callTimeoutMs: z.number().int().positive().default(60_000),
      /** Per-identity access to tools, resources and prompts: a policy file's path, or the policy itself. */
      policy: z.union([z.string().min(1), PolicySchema]).optional(),
      /** JWT claims copied into each request's `caller` for executors. */
      forwardClaims: z.array(z.string().min(1)).optional(),
      /** The gateway cache (docs/caching.md). */
      cache: GatewayCacheConfig,
    })
    .default({ http: { port: 8808, host: "127.0.0.1" }, callTimeoutMs: 60_000, cache: { enabled: true } }),
  /** Limits of the context stream (see PROTOCOL.md §13.3); each as a number or a string like "7d" / "1GiB". */
  context: z
    .strictObject({
      maxAge: Duration.optional(),
      maxBytes: z.union([z.number().int().positive(), z.string().regex(/^\d+(\.\d+)?\s*([kmgKMG]i?[bB]|[bB])?$/, "a size such as 512MB or 1GiB")]).optional(),
      maxMessages: z.number().int().positive().optional(),
      maxMessagesPerTopic: z.number().int().positive().optional(),
    })
    .optional(),
  security: SecurityConfig.optional(),
  servers: z
    .record(
      ServiceName.refine((name) => name !== "dmcp", "the service name dmcp is reserved for the gateway"),
      ServerEntry,
    )
    .default({}),
});

export type Config = z.infer<typeof ConfigSchema>;
export type ServerConfig = Config["servers"][string];

export class ConfigError extends Error {
  readonly code = "CONFIG_INVALID";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConfigError";
  }
}

/** Reads and validates a config file; relative paths inside it are relative to the file. */
export function loadConfig(path: string): { config: Config; baseDir: string } {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (cause) {
    throw new ConfigError(`cannot read config ${path}: ${(cause as Error).message}`, { cause });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new ConfigError(`config ${path} is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  return { config: parseConfig(raw, path), baseDir: dirname(resolve(path)) };
}

export function parseConfig(raw: unknown, source = "config"): Config {
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(`invalid ${source}: ${formatIssues(parsed.error.issues)}`);
  return parsed.data;
}

export function isStdioServer(server: ServerConfig): server is z.infer<typeof StdioServer> {
  return "command" in server;
}

export function isNostrServer(server: ServerConfig): server is z.infer<typeof NostrServer> {
  return "nostr" in server;
}

// biome-ignore lint/suspicious/noTemplateCurlyInString: the placeholder as a config file writes it, replaced by withDataDir, not a template
const DATA_DIR_PLACEHOLDER = "${DMCP_DATA_DIR}";

/**
 * The servers with `${DMCP_DATA_DIR}` in a stdio server's args and env values replaced by `dmcp up`'s
 * data directory (created if a server names it), so that a server can keep its state beside the store.
 */
export function withDataDir(servers: Record<string, ServerConfig>, dataDir: string): Record<string, ServerConfig> {
  let named = false;
  const replace = (value: string) => {
    if (!value.includes(DATA_DIR_PLACEHOLDER)) return value;
    named = true;
    return value.replaceAll(DATA_DIR_PLACEHOLDER, dataDir);
  };
  const replaced = Object.fromEntries(
    Object.entries(servers).map(([name, server]) => [
      name,
      isStdioServer(server)
        ? { ...server, args: server.args.map(replace), env: Object.fromEntries(Object.entries(server.env).map(([key, value]) => [key, replace(value)])) }
        : server,
    ]),
  );
  if (named) mkdirSync(dataDir, { recursive: true });
  return replaced;
}

/** The config's context limits in the units the bus uses, or undefined when none are set. */
/** A config duration (milliseconds, or a string such as "15m") in milliseconds. */
export function durationMs(value: number | string, path: string): number {
  return typeof value === "number" ? value : parseDuration(value, path);
}

export function contextRetention(context: Config["context"]): ContextRetention | undefined {
  if (!context) return undefined;
  const retention: ContextRetention = {};
  if (context.maxAge !== undefined) retention.maxAgeMs = durationMs(context.maxAge, "context.maxAge");
  if (context.maxBytes !== undefined) retention.maxBytes = typeof context.maxBytes === "number" ? context.maxBytes : parseSize(context.maxBytes, "context.maxBytes");
  if (context.maxMessages !== undefined) retention.maxMessages = context.maxMessages;
  if (context.maxMessagesPerTopic !== undefined) retention.maxMessagesPerTopic = context.maxMessagesPerTopic;
  return retention;
}

/** Reads a secret's value: inline, from the environment, or from a file (relative to `baseDir`). */
export function resolveSecret(secret: Secret, what: string, baseDir?: string): string {
  if (typeof secret === "string") return secret;
  if ("env" in secret) {
    const value = process.env[secret.env];
    if (value === undefined || value === "") throw new ConfigError(`${what}: the environment variable ${secret.env} is not set`);
    return value;
  }
  const path = baseDir ? resolve(baseDir, secret.file) : secret.file;
  try {
    return readFileSync(path, "utf8").replace(/\r?\n$/, "");
  } catch (cause) {
    throw new ConfigError(`${what}: cannot read ${path}: ${(cause as Error).message}`, { cause });
  }
}

/** The HTTP headers of a remote server with every secret resolved (bearerToken becomes Authorization). */
export function resolveHeaders(headers: Record<string, Secret>, bearerToken: Secret | undefined, what: string, baseDir?: string): Record<string, string> {
  const resolved = Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, resolveSecret(value, `${what} header ${name}`, baseDir)]));
  if (bearerToken !== undefined) resolved.Authorization = `Bearer ${resolveSecret(bearerToken, `${what} bearerToken`, baseDir)}`;
  return resolved;
}

/** Reads a policy file (JSON), or checks an inline policy; errors name the file. */
export function loadPolicy(policy: string | z.input<typeof PolicySchema>, baseDir?: string): AccessPolicy {
  if (typeof policy !== "string") return toPolicy(policy, "gateway.policy");
  const path = baseDir ? resolve(baseDir, policy) : policy;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (cause) {
    throw new ConfigError(`cannot read policy ${path}: ${(cause as Error).message}`, { cause });
  }
  return toPolicy(raw as z.input<typeof PolicySchema>, `policy ${path}`);
}

function toPolicy(raw: z.input<typeof PolicySchema>, source: string): AccessPolicy {
  try {
    return new AccessPolicy(raw, source);
  } catch (cause) {
    throw new ConfigError((cause as Error).message, { cause });
  }
}

/** The `dmcp up` config file: validated by zod, every error reported with its exact path. */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import * as z from "zod";
import type { ContextRetention } from "../bus/context.js";
import { formatIssues } from "../protocol/index.js";
import { parseDuration, parseSize } from "./args.js";

const ServiceName = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, "service names use 1-128 characters from A-Z a-z 0-9 _ -");

const StdioServer = z.strictObject({
  command: z.string().min(1),
  args: z.array(z.string()).default([]),
  env: z.record(z.string(), z.string()).default({}),
  cwd: z.string().optional(),
  replicas: z.number().int().min(1).max(64).default(1),
});

const HttpServer = z.strictObject({
  url: z.url(),
  headers: z.record(z.string(), z.string()).default({}),
  transport: z.enum(["auto", "streamable-http", "sse"]).default("auto"),
  replicas: z.number().int().min(1).max(64).default(1),
});

const ServerEntry = z.union([StdioServer, HttpServer], {
  error: () => 'a server needs either "command" (a stdio MCP server) or "url" (a remote MCP server), and no unknown keys',
});

export const ConfigSchema = z.strictObject({
  $schema: z.string().optional(),
  nats: z
    .strictObject({
      /** Use an existing NATS server; without it `dmcp up` starts its own. */
      url: z.string().min(1).optional(),
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
    })
    .default({ http: { port: 8808, host: "127.0.0.1" }, callTimeoutMs: 60_000 }),
  /** Limits of the context stream (see PROTOCOL.md §13.3); each as a number or a string like "7d" / "1GiB". */
  context: z
    .strictObject({
      maxAge: z.union([z.number().int().positive(), z.string().regex(/^\d+(\.\d+)?\s*(ms|s|m|h|d)?$/, "a duration such as 30s, 15m, 24h or 7d")]).optional(),
      maxBytes: z.union([z.number().int().positive(), z.string().regex(/^\d+(\.\d+)?\s*([kmgKMG]i?[bB]|[bB])?$/, "a size such as 512MB or 1GiB")]).optional(),
      maxMessages: z.number().int().positive().optional(),
      maxMessagesPerTopic: z.number().int().positive().optional(),
    })
    .optional(),
  servers: z.record(ServiceName.refine((name) => name !== "dmcp", "the service name dmcp is reserved for the gateway"), ServerEntry).default({}),
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

/** The config's context limits in the units the bus uses, or undefined when none are set. */
export function contextRetention(context: Config["context"]): ContextRetention | undefined {
  if (!context) return undefined;
  const retention: ContextRetention = {};
  if (context.maxAge !== undefined) retention.maxAgeMs = typeof context.maxAge === "number" ? context.maxAge : parseDuration(context.maxAge, "context.maxAge");
  if (context.maxBytes !== undefined) retention.maxBytes = typeof context.maxBytes === "number" ? context.maxBytes : parseSize(context.maxBytes, "context.maxBytes");
  if (context.maxMessages !== undefined) retention.maxMessages = context.maxMessages;
  if (context.maxMessagesPerTopic !== undefined) retention.maxMessagesPerTopic = context.maxMessagesPerTopic;
  return retention;
}

#!/usr/bin/env node
/** The `dmcp` command. */
import { createLogger } from "../util/index.js";
import { UsageError } from "./args.js";
import { catchStopSignals } from "./lifecycle.js";
import { cacheCommand, cacheHelp } from "./commands/cache.js";
import { gatewayCommand, gatewayHelp } from "./commands/gateway.js";
import { keygenCommand, keygenHelp } from "./commands/keygen.js";
import { statusCommand, statusHelp } from "./commands/status.js";
import { tailCommand, tailHelp } from "./commands/tail.js";
import { upCommand, upHelp } from "./commands/up.js";
import { wrapCommand, wrapHelp } from "./commands/wrap.js";

const VERSION = "0.1.0";

const mainHelp = `dmcp ${VERSION}: an MCP-to-dMCP bridge gateway over NATS

Usage: dmcp <command> [options]

Commands:
  up        start everything on this machine: a private nats-server, the configured MCP
            servers as executors, and a gateway (the embedded default)
  gateway   serve every service on the bus as one MCP server (--stdio or --http PORT)
  wrap      make an MCP server (stdio command or HTTP URL) an executor on the bus
  status    list live services, their replicas and tools
  tail      print context updates and errors from the bus as they happen
  cache     purge the gateway cache (every answer, or one service's) on every gateway
  keygen    create a signing key (--sign-key) or a curve key (--seal-key) for message security
  help      show help for a command

Without --nats, a command connects to $DMCP_NATS_URL, else to the bus of the dmcp up running on
this machine (found through dmcp-up.json in its store, see --data-dir), else to nats://127.0.0.1:4222.

Run 'dmcp <command> --help' for a command's options. Logs go to stderr.
`;

const commands = {
  up: { run: upCommand, help: upHelp },
  gateway: { run: gatewayCommand, help: gatewayHelp },
  wrap: { run: wrapCommand, help: wrapHelp },
  status: { run: statusCommand, help: statusHelp },
  tail: { run: tailCommand, help: tailHelp },
  keygen: { run: keygenCommand, help: keygenHelp },
  cache: { run: cacheCommand, help: cacheHelp },
} as const;
type CommandName = keyof typeof commands;
/** Commands that run until SIGINT or SIGTERM. */
const LONG_RUNNING = new Set<CommandName>(["up", "gateway", "wrap", "tail"]);

function isCommand(name: string | undefined): name is CommandName {
  return name !== undefined && Object.hasOwn(commands, name);
}

/** Reads --log-level wherever it stands, before the command parses the rest. */
function logLevel(argv: string[], fallback: string): string {
  const at = argv.findIndex((arg) => arg === "--log-level" || arg.startsWith("--log-level="));
  if (at === -1) return process.env.DMCP_LOG_LEVEL ?? fallback;
  const arg = argv[at]!;
  return arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : (argv[at + 1] ?? fallback);
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h") {
    process.stdout.write(mainHelp);
    return 0;
  }
  if (name === "--version" || name === "-v") {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  if (name === "help") {
    const topic = rest[0];
    if (topic !== undefined && !isCommand(topic)) {
      process.stderr.write(`dmcp help: unknown command ${JSON.stringify(topic)}\n\n${mainHelp}`);
      return 2;
    }
    process.stdout.write(topic === undefined ? mainHelp : commands[topic].help);
    return 0;
  }
  if (!isCommand(name)) {
    process.stderr.write(`dmcp: unknown command ${JSON.stringify(name)}\n\n${mainHelp}`);
    return 2;
  }
  const level = logLevel(rest, name === "status" || name === "tail" || name === "keygen" || name === "cache" ? "warn" : "info");
  const levels = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];
  if (!levels.includes(level)) {
    const from = rest.some((arg) => arg === "--log-level" || arg.startsWith("--log-level=")) ? "--log-level" : "$DMCP_LOG_LEVEL";
    process.stderr.write(`dmcp ${name}: ${from} must be one of ${levels.join(", ")}, got ${JSON.stringify(level)}\n`);
    return 2;
  }
  const logger = createLogger({ name: `dmcp-${name}`, level });
  // From the start: a stop signal that comes while a long-running command starts is not lost.
  if (LONG_RUNNING.has(name)) catchStopSignals(logger);
  try {
    return await commands[name].run(rest, logger);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`dmcp ${name}: ${err.message}\n`);
      return 2;
    }
    // Printed once, readable; the stack is for --log-level debug.
    const message = err instanceof Error ? err.message : String(err);
    logger.debug({ err }, "fatal error");
    process.stderr.write(`dmcp ${name}: ${message}\n`);
    return 1;
  }
}

// Unhandled failures are bugs; log them instead of dying silently, and keep serving.
process.on("unhandledRejection", (reason) => {
  process.stderr.write(`dmcp: unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}\n`);
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Give pino's async stderr writer a moment, then leave even if a handle lingers.
    setTimeout(() => process.exit(code), 200).unref();
  },
  (err: unknown) => {
    process.stderr.write(`dmcp: ${String(err)}\n`);
    process.exit(1);
  },
);

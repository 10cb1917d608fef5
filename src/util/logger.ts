/** Logging: pino to stderr only (in stdio mode stdout belongs to MCP). */
import { pino, type Logger } from "pino";

export type { Logger };

export function createLogger(options: { name?: string; level?: string } = {}): Logger {
  return pino(
    { name: options.name ?? "dmcp", level: options.level ?? process.env.DMCP_LOG_LEVEL ?? "info" },
    pino.destination({ fd: 2, sync: false }),
  );
}

/** A logger that writes nothing, for embedding and tests that do not read logs. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}

/** Logging: pino to stderr only (in stdio mode stdout belongs to MCP). */
import { pino, type Logger } from "pino";

export type { Logger };

const REDACTED = [
  "authorization",
  "*.authorization",
  "headers.authorization",
  "*.headers.authorization",
  "*.headers.Authorization",
  "token",
  "*.token",
  "password",
  "*.password",
  "pass",
  "*.pass",
];

export function createLogger(options: { name?: string; level?: string } = {}): Logger {
  return pino(
    {
      name: options.name ?? "dmcp",
      level: options.level ?? process.env.DMCP_LOG_LEVEL ?? "info",
      // Credentials never reach the log, whichever object carries them.
      redact: { paths: REDACTED, censor: "[redacted]" },
    },
    pino.destination({ fd: 2, sync: false }),
  );
}

/** A logger that writes nothing, for embedding and tests that do not read logs. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}

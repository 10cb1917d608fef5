/** Runs a long-lived command until SIGINT/SIGTERM, then stops it in order, once. */
import { enableTracing, tracingEndpoint } from "../tracing/setup.js";
import type { Logger } from "../util/logger.js";

export function runUntilSignal(logger: Logger, stop: () => Promise<void>, also?: Promise<unknown>): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const shutdown = (reason: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ reason }, "shutting down");
      const force = setTimeout(() => {
        logger.error("shutdown took too long; exiting");
        process.exit(1);
      }, 20_000);
      force.unref();
      stop()
        .catch((err: unknown) => logger.error({ err }, "error during shutdown"))
        .finally(() => {
          clearTimeout(force);
          resolve();
        });
    };
    process.once("SIGINT", () => shutdown("SIGINT"));
    process.once("SIGTERM", () => shutdown("SIGTERM"));
    void also?.then(() => shutdown("input closed"));
  });
}

/** Span export when an endpoint is configured (flag or OTEL_* environment); returns its stop. */
export function startTracing(flag: string | undefined, serviceName: string, logger: Logger): () => Promise<void> {
  const endpoint = tracingEndpoint(flag);
  if (!endpoint) return async () => undefined;
  logger.info({ endpoint, serviceName }, "exporting OpenTelemetry spans");
  const stop = enableTracing({ endpoint, serviceName });
  return () => stop().catch((err: unknown) => logger.warn({ err }, "could not flush spans"));
}

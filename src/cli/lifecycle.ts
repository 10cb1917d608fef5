/** Runs a long-lived command until SIGINT/SIGTERM, then stops it in order, once. */
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

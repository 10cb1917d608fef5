/** Runs a long-lived command until SIGINT, SIGTERM or SIGHUP, then stops it in order, once. */
import { constants } from "node:os";
import { enableTracing, tracingEndpoint } from "../tracing/index.js";
import type { Logger } from "../util/index.js";

/** The first stop signal heard, and what to do with it once the command runs (set by runUntilSignal). */
let heard: NodeJS.Signals | undefined;
let onStopSignal: ((signal: NodeJS.Signals) => void) | undefined;
let catching = false;

/**
 * Catches SIGINT and SIGTERM from now on, for a command that runs until one, and SIGHUP (its terminal
 * closed) unless the command rereads something on it (dmcp gateway's tokens file). A signal that comes
 * while the command starts is kept: it stops once started, in order, instead of dying half-started
 * (its nats-server and children left behind). A second signal ends the process at once.
 */
export function catchStopSignals(logger: Logger): void {
  if (catching) return;
  catching = true;
  const onSignal = (signal: NodeJS.Signals) => {
    if (heard !== undefined) {
      process.stderr.write(`dmcp: ${signal} again: exiting at once\n`);
      process.exit(128 + constants.signals[signal]);
    }
    heard = signal;
    if (onStopSignal) onStopSignal(signal);
    else logger.info({ reason: signal }, "stopping once started");
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.on("SIGHUP", (signal) => {
    if (process.listenerCount("SIGHUP") === 1) onSignal(signal);
  });
}

/** `also`: stops it too when it resolves, with its value (a string) as the reason, else "input closed". */
export function runUntilSignal(logger: Logger, stop: () => Promise<void>, also?: Promise<unknown>): Promise<void> {
  catchStopSignals(logger);
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
    onStopSignal = shutdown;
    if (heard) shutdown(heard);
    void also?.then((reason) => shutdown(typeof reason === "string" ? reason : "input closed"));
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

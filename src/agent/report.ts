/**
 * Reports context updates that cannot be read (bad JSON, not a context_update, wrong topic, refused by
 * message security). Whoever published them learns of it on the error subject, where `dmcp` tooling
 * and operators watch; the subscription itself goes on with the next update.
 */
import type { BadContextMessage, Bus } from "../bus/index.js";
import type { Logger } from "../util/index.js";

export function badUpdateReporter(bus: Bus, instance: string, logger: Logger): (bad: BadContextMessage) => void {
  return (bad) => {
    logger.warn({ err: bad.error, subject: bad.subject, seq: bad.seq }, "ignoring a malformed context update");
    bus.dropped("context", bad.error.code.toLowerCase());
    bus.reportError(instance, bad.error, { subject: bad.subject, ...(bad.seq !== undefined ? { seq: bad.seq } : {}), instance });
  };
}

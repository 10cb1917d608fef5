/**
 * Reports context updates that cannot be read (bad JSON, not a context_update, wrong topic). Whoever
 * published them learns of it on the error subject, where `dmcp` tooling and operators watch; the
 * subscription itself goes on with the next update.
 */
import type { BadContextMessage } from "../bus/context.js";
import type { Bus } from "../bus/connection.js";
import { createEnvelope, encodeEnvelope, errorPayload, subjects } from "../protocol/index.js";
import type { Logger } from "../util/logger.js";

export function badUpdateReporter(bus: Bus, instance: string, logger: Logger): (bad: BadContextMessage) => void {
  return (bad) => {
    logger.warn({ err: bad.error, subject: bad.subject, seq: bad.seq }, "ignoring a malformed context update");
    const payload = errorPayload(bad.error);
    const details = typeof payload.data === "object" && payload.data !== null && !Array.isArray(payload.data) ? payload.data : {};
    payload.data = { ...details, subject: bad.subject, ...(bad.seq !== undefined ? { seq: bad.seq } : {}), instance };
    try {
      if (!bus.nc.isClosed()) bus.nc.publish(subjects.errors(instance), encodeEnvelope(createEnvelope("error_notification", payload, { sender: instance })));
    } catch (err) {
      // The report is best effort: a closed or reconnecting connection must not break the subscription.
      logger.debug({ err }, "could not publish the error notification");
    }
  };
}

/**
 * What another gateway needs to go on serving a 2025-11-25 client session (PROTOCOL.md §19): kept in
 * the sessions bucket, read back and checked (a record that fails the check is treated as absent).
 */
import { z } from "zod";

export const SessionStateSchema = z.object({
  v: z.literal(1),
  /** The session's id on the bus (`session_id` of its calls). */
  busSessionId: z.string().min(1),
  /** The identity that opened the session: the only one that may use it. */
  owner: z.object({ kind: z.enum(["token", "jwt", "local", "nostr", "anonymous"]), subject: z.string() }),
  protocolVersion: z.string().optional(),
  /** The client sent `notifications/initialized`. */
  initialized: z.boolean(),
  /** The client's capabilities from its initialize, declared to the upstream sessions. */
  capabilities: z.record(z.string(), z.unknown()),
  logLevel: z.string().optional(),
  /** Context topics the client subscribed to. */
  topics: z.array(z.string()),
  /** The gateway on which the session's GET stream opened last: the one that sends what every gateway would send alike (list changes, context topic updates). */
  listener: z.string().optional(),
  /**
   * The listener's caller key (public curve key), when it has one: the sealed traffic other gateways
   * write outside any call on the GET stream is sealed to it (PROTOCOL.md §19.3). Older records have none.
   */
  listenerKey: z
    .string()
    .regex(/^X[A-Z2-7]{55}$/)
    .optional(),
  /** The gateway that opened the session: the executors key its upstream sessions by it (PROTOCOL.md §16, §19). */
  origin: z.string().optional(),
  /** The replica holding the session's upstream session, by service, for each service a call of it reached. */
  pins: z.record(z.string(), z.string()).optional(),
  /** The gateway that wrote the record last. */
  gateway: z.string(),
});

export type SessionState = z.infer<typeof SessionStateSchema>;

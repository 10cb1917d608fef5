/** JSON Schemas generated from the zod schemas, so that agents in any language can validate messages. */
import * as z from "zod";
import { AgentHeartbeat, ContextUpdate, Envelope, ErrorNotification, PromptRequest, PromptResponse, SealedEnvelope } from "./envelope.js";

/** Base of the `$id` of every schema this package publishes (`schemas/<file>`). */
export const SCHEMA_BASE = "https://dmcp-gateway.dev/schemas/v0.1/";

const sources = {
  "envelope.schema.json": Envelope,
  "prompt_request.schema.json": PromptRequest,
  "prompt_response.schema.json": PromptResponse,
  "error_notification.schema.json": ErrorNotification,
  "context_update.schema.json": ContextUpdate,
  "agent_heartbeat.schema.json": AgentHeartbeat,
  "sealed_envelope.schema.json": SealedEnvelope,
} as const;

/**
 * Converts one zod schema as it is accepted on input (fields with defaults are optional). Anything JSON
 * Schema cannot express makes this throw: a schema silently widened to `{}` would accept messages that
 * the zod schema rejects.
 */
export function toPublishedSchema(file: string, schema: z.ZodType): Record<string, unknown> {
  return { $id: SCHEMA_BASE + file, ...z.toJSONSchema(schema, { io: "input", unrepresentable: "throw" }) };
}

export function jsonSchemas(): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const [file, schema] of Object.entries(sources)) out[file] = toPublishedSchema(file, schema);
  return out;
}

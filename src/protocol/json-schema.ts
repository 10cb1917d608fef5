/** JSON Schemas generated from the zod schemas, so that agents in any language can validate messages. */
import * as z from "zod";
import { AgentHeartbeat, ContextUpdate, Envelope, ErrorNotification, PromptRequest, PromptResponse } from "./envelope.js";

const SCHEMA_BASE = "https://dmcp-gateway.dev/schemas/v0.1/";

const sources = {
  "envelope.schema.json": Envelope,
  "prompt_request.schema.json": PromptRequest,
  "prompt_response.schema.json": PromptResponse,
  "error_notification.schema.json": ErrorNotification,
  "context_update.schema.json": ContextUpdate,
  "agent_heartbeat.schema.json": AgentHeartbeat,
} as const;

export function jsonSchemas(): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const [file, schema] of Object.entries(sources)) {
    out[file] = { $id: SCHEMA_BASE + file, ...z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) };
  }
  return out;
}

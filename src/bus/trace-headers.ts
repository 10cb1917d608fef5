/** The trace context of a call in NATS message headers (W3C traceparent/tracestate, src/tracing). */
import { ROOT_CONTEXT, type Context } from "@opentelemetry/api";
import { headers as natsHeaders, type MsgHdrs } from "@nats-io/transport-node";
import { contextFromFields, traceFields } from "../tracing/index.js";

/** NATS headers carrying the context, or undefined when there is none to carry. */
export function natsHeadersFor(ctx: Context): MsgHdrs | undefined {
  // The context of a call that carried no trace: nothing to inject (the common case, checked first).
  if (ctx === ROOT_CONTEXT) return undefined;
  const fields = traceFields(ctx);
  if (!fields) return undefined;
  const headers = natsHeaders();
  for (const [field, value] of Object.entries(fields)) headers.set(field, value);
  return headers;
}

/** The context carried by a NATS message's headers. */
export function contextFromNats(headers: MsgHdrs | undefined): Context {
  if (!headers) return ROOT_CONTEXT;
  return contextFromFields((field) => headers.get(field));
}

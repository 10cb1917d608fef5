/**
 * W3C trace context across the hops: MCP `_meta` (traceparent/tracestate) and HTTP headers on the
 * client side, NATS headers on the bus (src/bus/trace-headers.ts puts these fields there), `_meta`
 * again towards the upstream MCP server. The W3C propagator is used directly, so trace ids travel
 * even when no tracing SDK is set up.
 */
import {
  context as otelContext,
  INVALID_SPAN_CONTEXT,
  ProxyTracerProvider,
  ROOT_CONTEXT,
  trace,
  type Context,
  type Span,
  type SpanKind,
  type TextMapGetter,
  type TextMapSetter,
} from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";

const propagator = new W3CTraceContextPropagator();
const FIELDS = ["traceparent", "tracestate"] as const;

type Carrier = Record<string, unknown>;
const getter: TextMapGetter<Carrier> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => (typeof carrier[key] === "string" ? (carrier[key] as string) : undefined),
};
const setter: TextMapSetter<Carrier> = {
  set: (carrier, key, value) => {
    carrier[key] = value;
  },
};

export const tracer = () => trace.getTracer("dmcp-gateway", "0.1.0");

/** What the API's tracer provider delegates to while no SDK is registered. */
const NO_SDK = new ProxyTracerProvider().getDelegate();
const NO_SPAN = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/** Whether spans are recorded: a tracer provider (an SDK) is registered, by enableTracing or by whoever embeds this. */
export function spansRecorded(): boolean {
  const provider = trace.getTracerProvider();
  return !(provider instanceof ProxyTracerProvider) || provider.getDelegate() !== NO_SDK;
}

/** The trace context carried in an MCP request's `params._meta`, else in HTTP-style headers. */
export function contextFromMeta(params: Record<string, unknown> | undefined, headers?: Carrier): Context {
  const meta = params?._meta;
  if (meta && typeof meta === "object" && typeof (meta as Carrier).traceparent === "string") return propagator.extract(ROOT_CONTEXT, meta as Carrier, getter);
  return headers ? propagator.extract(ROOT_CONTEXT, headers, getter) : ROOT_CONTEXT;
}

/** `params` with `_meta.traceparent`/`tracestate` set to the given context (other `_meta` kept). */
export function withTraceMeta(params: Record<string, unknown> | undefined, ctx: Context): Record<string, unknown> | undefined {
  // No span context, nothing to inject (the propagator would find the same): the executor's calls mostly carry none.
  if (!trace.getSpanContext(ctx)) return params;
  const carrier: Carrier = {};
  propagator.inject(ctx, carrier, setter);
  if (!carrier.traceparent) return params;
  const meta = { ...((params?._meta as Carrier | undefined) ?? {}), ...carrier };
  return { ...(params ?? {}), _meta: meta };
}

/** The W3C fields (traceparent, tracestate) that carry the context, or undefined when there is none to carry. */
export function traceFields(ctx: Context): Record<string, string> | undefined {
  const carrier: Carrier = {};
  propagator.inject(ctx, carrier, setter);
  if (!carrier.traceparent) return undefined;
  const fields: Record<string, string> = {};
  for (const field of FIELDS) if (typeof carrier[field] === "string") fields[field] = carrier[field] as string;
  return fields;
}

/** The context carried by the W3C fields that `get` reads (e.g. from a bus message's headers). */
export function contextFromFields(get: (field: string) => string | undefined): Context {
  const carrier: Carrier = {};
  for (const field of FIELDS) {
    const value = get(field);
    if (value) carrier[field] = value;
  }
  return propagator.extract(ROOT_CONTEXT, carrier, getter);
}

/**
 * Runs `work` inside a span that is a child of `parent`, ends it, and records a failure. The span's
 * context is handed to `work` for the next hop. With no SDK registered a span would record nothing
 * and carry its parent's trace context unchanged, so `work` runs in `parent` itself: the hot path
 * makes no span, context switch or extra promise per call.
 */
export function inSpan<T>(
  name: string,
  kind: SpanKind,
  parent: Context,
  attributes: Record<string, string | number | boolean>,
  work: (ctx: Context, span: Span) => Promise<T>,
): Promise<T> {
  if (!spansRecorded()) {
    try {
      return work(parent, trace.getSpan(parent) ?? NO_SPAN);
    } catch (err) {
      return Promise.reject(err);
    }
  }
  const span = tracer().startSpan(name, { kind, attributes }, parent);
  return runInSpan(span, trace.setSpan(parent, span), work);
}

/** Runs `work` in `ctx` (which holds `span`), records its failure on the span and ends it. */
async function runInSpan<T>(span: Span, ctx: Context, work: (ctx: Context, span: Span) => Promise<T>): Promise<T> {
  try {
    return await otelContext.with(ctx, () => work(ctx, span));
  } catch (err) {
    span.recordException(err as Error);
    span.setStatus({ code: 2, message: (err as Error)?.message ?? String(err) });
    throw err;
  } finally {
    span.end();
  }
}

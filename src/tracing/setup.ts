/**
 * Turns span export on (off by default): spans go to an OTLP/HTTP collector such as Jaeger, Tempo
 * or the OpenTelemetry Collector.
 */
import { trace } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider, BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";

export interface TracingOptions {
  /** OTLP/HTTP traces endpoint, e.g. http://localhost:4318/v1/traces. */
  endpoint: string;
  /** `service.name` of the spans, e.g. dmcp-gateway or dmcp-wrap-everything. */
  serviceName: string;
}

/** Registers a global tracer provider exporting to `endpoint`; returns a function that flushes and stops it. */
export function enableTracing(options: TracingOptions): () => Promise<void> {
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ "service.name": options.serviceName }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: options.endpoint }))],
  });
  trace.setGlobalTracerProvider(provider);
  return () => provider.shutdown();
}

/** The endpoint from `--otel-endpoint` or the standard OpenTelemetry environment variables. */
export function tracingEndpoint(flag: string | undefined): string | undefined {
  if (flag) return flag;
  const traces = process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (traces) return traces;
  const base = process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
  return base ? `${base.replace(/\/$/, "")}/v1/traces` : undefined;
}

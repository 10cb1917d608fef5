/** W3C trace context carried in `_meta` and bus headers, OpenTelemetry spans, and the OTLP export. */
export { contextFromFields, contextFromMeta, inSpan, spansRecorded, traceFields, tracer, withTraceMeta } from "./propagation.js";
export { enableTracing, type TracingOptions, tracingEndpoint } from "./setup.js";

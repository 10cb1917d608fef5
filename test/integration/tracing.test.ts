/**
 * One trace from the MCP client through the gateway, the bus and the executor to the upstream MCP
 * server. The gateway and the executor run in this process (so that one in-memory exporter sees both)
 * but talk over a real nats-server; the upstream is a child process that reports the trace context it
 * received in `_meta`.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SpanKind, trace } from "@opentelemetry/api";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { serveHttp, type HttpGatewayServer } from "../../adapters/inbound/index.js";
import { stdioConnector } from "../../adapters/outbound/index.js";
import { connectBus, type Bus } from "../../src/bus/index.js";
import { Executor } from "../../src/executor/index.js";
import { Gateway } from "../../src/gateway/index.js";
import { silentLogger } from "../../src/util/logger.js";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { RawMcpClient } from "../support/mcp-client.js";
import { eventually, FIXTURE_BIN } from "../support/processes.js";
import { statelessPost } from "../support/stateless-client.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/client";

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN = "00f067aa0ba902b7";

describe("trace context across the hops", () => {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  let nats: EmbeddedNats;
  let gatewayBus: Bus;
  let executorBus: Bus;
  let gateway: Gateway;
  let http: HttpGatewayServer;
  let executor: Executor;
  let client: RawMcpClient;

  beforeAll(async () => {
    trace.setGlobalTracerProvider(provider);
    nats = await startTestNats();
    executorBus = await connectBus({ servers: nats.url, name: "trace-executor", logger: silentLogger() });
    executor = new Executor({
      bus: executorBus,
      service: "traced",
      logger: silentLogger(),
      connector: stdioConnector({ command: process.execPath, args: [FIXTURE_BIN, "--stdio", "--name", "traced"] }),
    });
    await executor.start();
    gatewayBus = await connectBus({ servers: nats.url, name: "trace-gateway", logger: silentLogger() });
    gateway = new Gateway({ bus: gatewayBus, logger: silentLogger() });
    await gateway.start();
    http = await serveHttp(gateway, { port: 0, logger: silentLogger() });
    client = await RawMcpClient.connect(new StreamableHTTPClientTransport(new URL(http.url)));
    await eventually(async () => (await client.toolNames()).includes("meta"));
  });

  afterAll(async () => {
    await client?.close();
    await http?.close();
    await gateway?.stop();
    await executor?.stop();
    await gatewayBus?.drain();
    await executorBus?.drain();
    await nats?.stop();
    await provider.shutdown();
    trace.disable();
  });

  it("continues the client's trace at every hop, down to the upstream's _meta", async () => {
    exporter.reset();
    const result = (await client.result("tools/call", {
      name: "meta",
      arguments: {},
      _meta: { traceparent: `00-${TRACE_ID}-${CLIENT_SPAN}-01`, "app/other": "kept" },
    })) as { structuredContent: { meta: Record<string, string> } };

    const spans = await eventually(() => {
      const finished = exporter.getFinishedSpans();
      return finished.length >= 3 ? finished : undefined;
    });
    const byKind = (kind: SpanKind) => spans.find((span: ReadableSpan) => span.kind === kind)!;
    const gatewaySpan = byKind(SpanKind.SERVER);
    const executorSpan = byKind(SpanKind.CONSUMER);
    const upstreamSpan = byKind(SpanKind.CLIENT);

    for (const span of [gatewaySpan, executorSpan, upstreamSpan]) expect(span.spanContext().traceId).toBe(TRACE_ID);
    expect(gatewaySpan.name).toBe("tools/call meta");
    expect(gatewaySpan.parentSpanContext?.spanId).toBe(CLIENT_SPAN);
    expect(executorSpan.parentSpanContext?.spanId).toBe(gatewaySpan.spanContext().spanId);
    expect(upstreamSpan.parentSpanContext?.spanId).toBe(executorSpan.spanContext().spanId);
    expect(gatewaySpan.attributes["dmcp.service"]).toBe("traced");

    // The upstream got the trace as a child of the executor's client span, and the client's other _meta.
    const meta = result.structuredContent.meta;
    expect(meta.traceparent).toBe(`00-${TRACE_ID}-${upstreamSpan.spanContext().spanId}-01`);
    expect(meta["app/other"]).toBe("kept");
  });

  it("takes the trace from the HTTP traceparent header when _meta has none", async () => {
    exporter.reset();
    const headerClient = await RawMcpClient.connect(
      new StreamableHTTPClientTransport(new URL(http.url), { requestInit: { headers: { traceparent: `00-${TRACE_ID.replace(/^4/, "5")}-${CLIENT_SPAN}-01` } } }),
    );
    try {
      await headerClient.result("tools/call", { name: "whoami", arguments: {} });
      const server = await eventually(() => exporter.getFinishedSpans().find((span) => span.kind === SpanKind.SERVER));
      expect(server.spanContext().traceId).toBe(TRACE_ID.replace(/^4/, "5"));
    } finally {
      await headerClient.close();
    }
  });

  it("takes the trace from the traceparent header of an MCP 2026-07-28 request (no session)", async () => {
    exporter.reset();
    const traceId = TRACE_ID.replace(/^4/, "6");
    const answer = await statelessPost(http.url, "tools/call", { name: "whoami", arguments: {} }, { headers: { traceparent: `00-${traceId}-${CLIENT_SPAN}-01` } });
    expect(answer.body.result).toBeDefined();
    const server = await eventually(() => exporter.getFinishedSpans().find((span) => span.kind === SpanKind.SERVER));
    expect(server.spanContext().traceId).toBe(traceId);
    expect(server.parentSpanContext?.spanId).toBe(CLIENT_SPAN);
  });

  it("records a failed call on its span", async () => {
    exporter.reset();
    await client.request("tools/call", { name: "add", arguments: { a: "x" }, _meta: { traceparent: `00-${TRACE_ID}-${CLIENT_SPAN}-01` } });
    const server = await eventually(() => exporter.getFinishedSpans().find((span) => span.kind === SpanKind.SERVER));
    expect(server.status.code).toBe(2);
  });
});

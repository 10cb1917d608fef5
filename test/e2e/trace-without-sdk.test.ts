/**
 * A gateway and an executor with no tracing SDK (no --otel-endpoint) record no spans, but the trace
 * context still travels: the upstream gets the client's traceparent as it was sent, whether it came in
 * `_meta` or in the HTTP header.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { RawMcpClient } from "../support/mcp-client.js";
import { startWorld, type World } from "../support/world.js";

const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

describe("trace context without a tracing SDK", () => {
  let world: World;

  beforeAll(async () => {
    world = await startWorld({ services: { traced: [] }, awaitTool: "meta" });
  });

  afterAll(async () => {
    await world?.dispose();
  });

  it("reaches the upstream's _meta unchanged, with the client's other _meta", async () => {
    const result = (await world.client.result("tools/call", {
      name: "meta",
      arguments: {},
      _meta: { traceparent: TRACEPARENT, tracestate: "vendor=1", "app/other": "kept" },
    })) as { structuredContent: { meta: Record<string, string> } };
    expect(result.structuredContent.meta).toMatchObject({ traceparent: TRACEPARENT, tracestate: "vendor=1", "app/other": "kept" });
  });

  it("reaches the upstream's _meta from the HTTP traceparent header", async () => {
    const client = await RawMcpClient.connect(new StreamableHTTPClientTransport(new URL(world.gateway.url), { requestInit: { headers: { traceparent: TRACEPARENT } } }));
    try {
      const result = (await client.result("tools/call", { name: "meta", arguments: {} })) as { structuredContent: { meta: Record<string, string> } };
      expect(result.structuredContent.meta.traceparent).toBe(TRACEPARENT);
    } finally {
      await client.close();
    }
  });

  it("sends no trace fields upstream when the client sent none", async () => {
    const result = (await world.client.result("tools/call", { name: "meta", arguments: {} })) as { structuredContent: { meta: Record<string, string> | null } };
    expect(result.structuredContent.meta?.traceparent).toBeUndefined();
  });
});

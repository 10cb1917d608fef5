/** Prometheus metrics and probes of the gateway and an executor, read after real calls. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RawMcpClient } from "../support/mcp-client.js";
import { type Child, eventually } from "../support/processes.js";
import { sample } from "../support/prometheus.js";
import { startWorld, type World } from "../support/world.js";

async function scrape(url: string): Promise<string> {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toMatch(/text\/plain/);
  return response.text();
}

describe("metrics and probes", () => {
  let world: World;
  let executor: Child;
  let executorMetrics: string;
  let gateway: Child & { url: string };
  let client: RawMcpClient;

  beforeAll(async () => {
    world = await startWorld({ services: { metered: ["--metrics-port", "0"] }, awaitTool: "echo" });
    ({ gateway, client } = world);
    executor = world.executors.metered!;
    const [, url] = await executor.waitFor(/"url":"(http:\/\/[^"]+\/metrics)"/);
    executorMetrics = url!;
  });

  afterAll(() => world?.dispose());

  it("counts gateway calls by service, tool, transport and outcome, with latency and sessions", async () => {
    const base = gateway.url.replace(/\/mcp$/, "");
    const before = await scrape(`${base}/metrics`);
    const okBefore = sample(before, "dmcp_gateway_calls_total", { service: "metered", target: "echo", transport: "http", outcome: "ok" }) ?? 0;
    for (let i = 0; i < 3; i++) await client.result("tools/call", { name: "echo", arguments: { text: `n${i}` } });
    await client.result("tools/call", { name: "fail", arguments: {} });
    await client.request("tools/call", { name: "add", arguments: { a: "x" } });

    const after = await scrape(`${base}/metrics`);
    expect(sample(after, "dmcp_gateway_calls_total", { service: "metered", method: "tools/call", target: "echo", transport: "http", outcome: "ok" })).toBe(okBefore + 3);
    expect(sample(after, "dmcp_gateway_calls_total", { service: "metered", target: "fail", outcome: "tool_error" })).toBe(1);
    expect(sample(after, "dmcp_gateway_calls_total", { service: "metered", target: "add", outcome: "upstream_error" })).toBe(1);
    expect(sample(after, "dmcp_gateway_call_duration_seconds_count", { service: "metered", method: "tools/call", outcome: "ok" })).toBeGreaterThanOrEqual(3);
    expect(sample(after, "dmcp_gateway_calls_in_flight", { service: "metered" })).toBe(0);
    expect(sample(after, "dmcp_gateway_sessions", { transport: "http" })).toBeGreaterThanOrEqual(1);
    expect(sample(after, "dmcp_registry_instances", { service: "metered", status: "ready" })).toBe(1);
    expect(sample(after, "dmcp_bus_reconnects_total")).toBe(0);
    expect(sample(after, "process_cpu_seconds_total")).toBeGreaterThan(0);
  });

  it("counts executor calls and upstream restarts", async () => {
    const before = await scrape(executorMetrics);
    const callsBefore = sample(before, "dmcp_executor_calls_total", { service: "metered", method: "tools/call", outcome: "ok" }) ?? 0;
    expect(sample(before, "dmcp_executor_upstream_up", { service: "metered" })).toBe(1);
    await client.result("tools/call", { name: "whoami", arguments: {} });
    const crashed = await client.request("tools/call", { name: "crash", arguments: {} });
    expect(crashed.error).toBeDefined();
    const after = await eventually(async () => {
      const text = await scrape(executorMetrics);
      return sample(text, "dmcp_executor_upstream_restarts_total", { service: "metered" }) === 1 ? text : undefined;
    });
    expect(sample(after, "dmcp_executor_calls_total", { service: "metered", method: "tools/call", outcome: "ok" })).toBe(callsBefore + 1);
    expect(sample(after, "dmcp_executor_calls_total", { service: "metered", method: "tools/call", outcome: "upstream_closed" })).toBe(1);
    // The restarted upstream is up again.
    await eventually(async () => sample(await scrape(executorMetrics), "dmcp_executor_upstream_up", { service: "metered" }) === 1);
  });

  it("answers health and readiness probes", async () => {
    const base = gateway.url.replace(/\/mcp$/, "");
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: "ready", bus: true });
    const executorBase = executorMetrics.replace(/\/metrics$/, "");
    expect((await fetch(`${executorBase}/healthz`)).status).toBe(200);
    await eventually(async () => (await fetch(`${executorBase}/readyz`)).status === 200);
  });
});

/**
 * The dashboard's HTTP side, through a real gateway child: off without --dashboard; with it, the page
 * (and its CSP), the JSON snapshot and the Server-Sent Events stream, guarded like /mcp. The browser
 * itself is tested in test/browser/ (npm run test:browser).
 */
import { createHash } from "node:crypto";
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectBus, type Bus } from "../../src/bus/connection.js";
import type { DashboardState, MonitorUpdate, TrafficEntry } from "../../adapters/inbound/dashboard/index.js";
import { subjects } from "../../src/protocol/index.js";
import { silentLogger } from "../../src/util/logger.js";
import { gatewayTransport, RawMcpClient } from "../support/mcp-client.js";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually, runDmcp, startGatewayHttp, wrapFixtureStdio, type Child } from "../support/processes.js";

/** Never to be seen in anything the dashboard serves: it shows metadata, not payloads. */
const SECRET = "argument-value-the-dashboard-must-not-show";

/** Reads a Server-Sent Events stream and keeps every event, parsed. */
class EventStream {
  readonly events: { event: string; data: unknown }[] = [];
  raw = "";
  private readonly controller = new AbortController();

  static async open(url: string): Promise<EventStream> {
    const stream = new EventStream();
    const response = await fetch(url, { signal: stream.controller.signal });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    void stream.read(response.body!);
    return stream;
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of body) {
        const text = decoder.decode(chunk, { stream: true });
        this.raw += text;
        buffer += text;
        for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event && data) this.events.push({ event, data: JSON.parse(data) });
        }
      }
    } catch {
      // aborted
    }
  }

  updates(): MonitorUpdate[] {
    return this.events.filter((e) => e.event === "update").map((e) => e.data as MonitorUpdate);
  }

  traffic(): TrafficEntry[] {
    return this.updates().flatMap((u) => u.traffic ?? []);
  }

  close(): void {
    this.controller.abort();
  }
}

/** A GET with a chosen Host header (fetch would not send another host than the URL's). */
function getWithHost(url: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { host } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
    req.end();
  });
}

describe("dashboard endpoints", () => {
  let nats: EmbeddedNats;
  let executor: Child;
  let plain: Child & { url: string };
  let gateway: Child & { url: string };
  let base: string;
  let client: RawMcpClient;
  let bus: Bus;

  beforeAll(async () => {
    nats = await startTestNats();
    executor = await wrapFixtureStdio(nats.url, "api");
    [plain, gateway] = await Promise.all([startGatewayHttp(nats.url), startGatewayHttp(nats.url, ["--dashboard"])]);
    base = gateway.url.replace(/\/mcp$/, "");
    client = await RawMcpClient.connect(gatewayTransport("http", { natsUrl: nats.url, httpUrl: gateway.url }));
    await eventually(async () => (await client.toolNames()).includes("echo"));
    bus = await connectBus({ servers: nats.url, name: "dashboard-api-test", logger: silentLogger() });
  });

  afterAll(async () => {
    await client?.close();
    await bus?.drain();
    await Promise.allSettled([plain?.stop(), gateway?.stop(), executor?.stop()]);
    await nats?.stop();
  });

  it("is not served without --dashboard", async () => {
    const plainBase = plain.url.replace(/\/mcp$/, "");
    for (const path of ["/dashboard", "/dashboard/api/state", "/dashboard/api/events"]) {
      expect((await fetch(`${plainBase}${path}`)).status, path).toBe(404);
    }
    expect(plain.stderr.join("\n")).not.toMatch(/dashboard at/);
  });

  it("needs --http", async () => {
    const child = runDmcp(["gateway", "--stdio", "--dashboard", "--nats", nats.url]);
    expect(await child.exited).toBe(2);
    expect(child.stderr.join("\n")).toMatch(/--dashboard needs --http PORT/);
  });

  it("serves the page with a CSP that allows exactly its own script and style", async () => {
    expect(gateway.stderr.join("\n")).toContain(`dmcp gateway: dashboard at ${base}/dashboard`);
    const response = await fetch(`${base}/dashboard`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/html/);
    expect(response.headers.get("x-content-type-options")).toBe("nosniff");
    const csp = response.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("connect-src 'self'");
    const html = await response.text();
    const sha = (text: string) => `'sha256-${createHash("sha256").update(text).digest("base64")}'`;
    const script = /<script>([\s\S]*)<\/script>/.exec(html)?.[1];
    const style = /<style>([\s\S]*)<\/style>/.exec(html)?.[1];
    expect(csp).toContain(`script-src ${sha(script!)}`);
    expect(csp).toContain(`style-src ${sha(style!)}`);
    // Nothing loaded from elsewhere: the gateway may run without internet.
    expect(html).not.toMatch(/(src|href)="https?:/);
    expect((await fetch(`${base}/dashboard/`)).status).toBe(200);
  });

  it("refuses other Host headers, like /mcp", async () => {
    expect(await getWithHost(`${base}/dashboard`, "evil.example")).toBe(403);
    expect(await getWithHost(`${base}/dashboard/api/state`, "evil.example:80")).toBe(403);
    expect(await getWithHost(`${base}/dashboard/api/state`, `localhost:${new URL(base).port}`)).toBe(200);
  });

  it("returns a JSON snapshot of services, replicas, tools and counters", async () => {
    const state = (await (await fetch(`${base}/dashboard/api/state`)).json()) as DashboardState;
    expect(state.gateway?.id).toMatch(/^gateway-[0-9a-f]+$/);
    expect(state.gateway).toMatchObject({ ready: true, busConnected: true });
    const service = state.services.find((s) => s.name === "api");
    expect(service?.replicas).toHaveLength(1);
    expect(service?.replicas[0]).toMatchObject({ status: "ready" });
    expect(service?.replicas[0]?.instance).toMatch(/^api-/);
    expect(service?.tools.map((t) => t.exposedAs)).toEqual(expect.arrayContaining(["echo", "add", "sleep"]));
    expect(state.counters).toMatchObject({ inflight: 0 });
    expect(state.limits).toEqual({ traffic: 500, errors: 100 });
  });

  it("streams calls, their traffic and failures as they happen, without payloads", async () => {
    const stream = await EventStream.open(`${base}/dashboard/api/events`);
    await eventually(() => stream.events[0]?.event === "state");
    const initial = stream.events[0]!.data as DashboardState;

    await client.result("tools/call", { name: "echo", arguments: { text: SECRET } });
    // The client session's call goes to the replica it is pinned to.
    const request = await eventually(() => stream.traffic().find((t) => t.type === "prompt_request" && t.subject.startsWith("dmcp.v1.inst.api.")));
    expect(request).toMatchObject({ dir: "out", sender: initial.gateway!.id });
    expect(request.correlationId).toMatch(/^[0-9a-f-]{36}$/);
    expect(request.size).toBeGreaterThan(100);
    const reply = await eventually(() => stream.traffic().find((t) => t.type === "prompt_response" && t.correlationId === request.correlationId));
    expect(reply).toMatchObject({ dir: "in" });
    expect(reply.sender).toMatch(/^api-/);
    await eventually(() => stream.updates().some((u) => u.counters && u.counters.calls === initial.counters.calls + 1 && u.counters.ok === initial.counters.ok + 1));
    await eventually(() => stream.traffic().some((t) => t.type === "agent_heartbeat" && t.subject.startsWith("dmcp.v1.hb.api.")));

    // A slow call is listed while in flight, then leaves the list.
    const slow = client.result("tools/call", { name: "sleep", arguments: { ms: 1500 } });
    const listed = (u: MonitorUpdate) => u.calls?.some((c) => c.target === "sleep" && c.service === "api" && c.transport === "http");
    await eventually(() => stream.updates().some(listed));
    await slow;
    await eventually(() =>
      stream
        .updates()
        .slice(stream.updates().findIndex(listed))
        .some((u) => u.calls?.length === 0),
    );

    const failed = await client.request("tools/call", { name: "add", arguments: { a: "x" } });
    expect(failed.error).toBeDefined();
    const error = await eventually(() =>
      stream
        .updates()
        .flatMap((u) => u.errors ?? [])
        .find((e) => e.code === "UPSTREAM_ERROR"),
    );
    expect(error).toMatchObject({ source: "gateway", service: "api", method: "tools/call", target: "add" });
    expect(error.message).toContain('"a" must be a number');

    const unknown = await client.request("tools/call", { name: "no_such_tool", arguments: {} });
    expect(unknown.error).toBeDefined();
    await eventually(() =>
      stream
        .updates()
        .flatMap((u) => u.errors ?? [])
        .some((e) => e.code === "UNKNOWN_TARGET" && e.target === "no_such_tool"),
    );

    stream.close();
    expect(stream.raw).not.toContain(SECRET);
    const state = await (await fetch(`${base}/dashboard/api/state`)).text();
    expect(state).not.toContain(SECRET);
    expect((JSON.parse(state) as DashboardState).traffic.some((t) => t.correlationId === request.correlationId)).toBe(true);
  });

  it("reports error_notifications on dmcp.v1.err.> and survives malformed messages", async () => {
    const stream = await EventStream.open(`${base}/dashboard/api/events`);
    await eventually(() => stream.events.length > 0);
    bus.publish(subjects.errors("probe"), new TextEncoder().encode("this is not JSON"));
    bus.publish(subjects.heartbeat("api", "api-00000000"), new TextEncoder().encode('{"type": "agent_heartbeat", "payload": {'));
    bus.publish(subjects.heartbeat("api", "api-00000001"), new Uint8Array([0xff, 0xfe, 0x00]));
    const error = await eventually(() =>
      stream
        .updates()
        .flatMap((u) => u.errors ?? [])
        .find((e) => e.source === "bus"),
    );
    expect(error).toMatchObject({ code: "INVALID_ENVELOPE", subject: "dmcp.v1.err.probe" });
    await eventually(() => stream.traffic().filter((t) => t.type === "malformed").length >= 3);
    await eventually(() => stream.updates().some((u) => (u.counters?.malformed ?? 0) >= 3 && (u.counters?.busErrors ?? 0) >= 1));
    stream.close();
    // Still serving.
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect((await client.result("tools/call", { name: "echo", arguments: { text: "still here" } })).content).toBeDefined();
  });
});

/**
 * The live dashboard in a real browser: headless Chromium (Debian's) against a gateway child with
 * --dashboard, executors wrapping the fixture server, and MCP calls made while the page is open.
 *
 * Run with `npm run test:browser`. With DASHBOARD_SCREENSHOT=path, a screenshot of the page with
 * every panel filled is written there (docs/dashboard.png is made this way).
 */
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chromium, type Browser, type Page } from "playwright-core";
import { connectBus, type Bus } from "../../src/bus/connection.js";
import { createEnvelope, DmcpError, encodeEnvelope, errorPayload, ErrorCode, subjects } from "../../src/protocol/index.js";
import { silentLogger } from "../../src/util/logger.js";
import { gatewayTransport, RawMcpClient } from "../support/mcp-client.js";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually, startGatewayHttp, wrapFixtureStdio, type Child } from "../support/processes.js";

const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: run sh scripts/ensure-chromium.sh (or set CHROMIUM_BIN)`);

const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** A value that must never reach the page: the dashboard shows metadata, not payloads. */
const SECRET = "do-not-show-this-argument-7f3a";

describe("dashboard in a browser", () => {
  let nats: EmbeddedNats;
  const executors: Child[] = [];
  let beta: Child;
  let gateway: Child & { url: string };
  let client: RawMcpClient;
  let bus: Bus;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  const text = async (selector: string) => (await page.locator(selector).first().textContent())?.trim() ?? "";
  const count = (selector: string) => page.locator(selector).count();

  beforeAll(async () => {
    nats = await startTestNats();
    // Two replicas of alpha and one beta: the fixture's tool names collide, so clients see them qualified.
    executors.push(await wrapFixtureStdio(nats.url, "alpha"), await wrapFixtureStdio(nats.url, "alpha"));
    beta = await wrapFixtureStdio(nats.url, "beta");
    executors.push(beta);
    gateway = await startGatewayHttp(nats.url, ["--dashboard", "--log-level", "warn"]);
    client = await RawMcpClient.connect(gatewayTransport("http", { natsUrl: nats.url, httpUrl: gateway.url }));
    await eventually(async () => {
      const tools = await client.toolNames();
      return tools.includes("alpha__echo") && tools.includes("beta__echo");
    });
    bus = await connectBus({ servers: nats.url, name: "dashboard-test", logger: silentLogger() });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1360, height: 1000 } });
    page.on("pageerror", (error) => pageErrors.push(error.message));
    page.on("console", (message) => {
      if (message.type() === "error") pageErrors.push(message.text());
    });
    const response = await page.goto(gateway.url.replace(/\/mcp$/, "/dashboard"));
    expect(response?.status()).toBe(200);
    // A marker that a reload would wipe: every update below must arrive live.
    await page.evaluate(() => Object.assign(window, { loadedOnce: true }));
  });

  afterAll(async () => {
    await browser?.close();
    await client?.close();
    await bus?.drain();
    await Promise.allSettled([gateway?.stop(), ...executors.map((executor) => executor.stop())]);
    await nats?.stop();
  });

  it("shows each service with its replicas and tools", async () => {
    await eventually(async () => (await text("#connection")) === "live");
    await eventually(async () => (await count('[data-service="alpha"] tr[data-instance]')) === 2);
    await eventually(async () => (await count('[data-service="beta"] tr[data-instance]')) === 1);
    const alpha = page.locator('[data-service="alpha"]');
    await eventually(async () => (await alpha.locator("td.status-ready").count()) === 2);
    const tools = await alpha.locator(".tools li").allTextContents();
    expect(tools).toEqual(expect.arrayContaining(["alpha__echo", "alpha__add", "alpha__sleep"]));
    // Heartbeats arrive every 500 ms: the replica rows show them.
    await eventually(async () => /ago$/.test(await alpha.locator("tr[data-instance] td").nth(4).innerText()));
    expect(await text("#count-services")).toBe("2");
    expect(await text("#count-replicas")).toBe("3 replicas");
    expect(await text("#gateway-ready")).toBe("ready");
  });

  it("shows calls, their bus traffic and the counters as they happen, without a reload", async () => {
    const callsBefore = Number(await text("#count-calls"));
    for (let i = 0; i < 3; i++) await client.result("tools/call", { name: "alpha__echo", arguments: { text: `${SECRET}-${i}` } });
    await eventually(async () => Number(await text("#count-calls")) === callsBefore + 3);
    await eventually(async () => (await count('#traffic tr[data-type="prompt_request"]')) >= 3);
    await eventually(async () => (await count('#traffic tr[data-type="prompt_response"]')) >= 3);
    const request = page.locator('#traffic tr[data-type="prompt_request"]').first();
    // The session's first call goes to the service's queue group, later ones to the replica it is pinned to.
    expect(await request.locator("td").nth(2).innerText()).toMatch(/^dmcp\.v1\.(req\.alpha|inst\.alpha\.[A-Za-z0-9_-]+\.req)$/);
    const correlationId = await request.locator("td").nth(6).innerText();
    expect(correlationId).toMatch(/^[0-9a-f-]{36}$/);
    // The answer is listed with the request's correlation id.
    expect(await count(`#traffic tr[data-type="prompt_response"]:has(td:text-is("${correlationId}"))`)).toBe(1);
    // The replicas' heartbeats report what they handled.
    await eventually(async () => {
      const handled = await page.locator('[data-service="alpha"] tr[data-instance] td:nth-child(4)').allInnerTexts();
      return handled.reduce((sum, cell) => sum + (Number(cell) || 0), 0) >= 3;
    });

    // A slow call shows in flight while it runs, and leaves when it ends.
    const slow = client.result("tools/call", { name: "alpha__sleep", arguments: { ms: 2500 } });
    await eventually(async () => (await count('#calls tr[data-call]:has-text("sleep")')) === 1);
    expect(await text("#count-inflight")).toBe("1");
    await slow;
    await eventually(async () => (await count("#calls tr[data-call]")) === 0);
    expect(await text("#count-inflight")).toBe("0");

    expect(await page.evaluate(() => (window as unknown as { loadedOnce?: boolean }).loadedOnce)).toBe(true);
    expect(await page.content()).not.toContain(SECRET);
  });

  it("lists the gateway's failed calls and error notifications from the bus under recent errors", async () => {
    const failed = await client.request("tools/call", { name: "alpha__add", arguments: { a: "x" } });
    expect(failed.error).toBeDefined();
    await eventually(async () => (await count('#errors tr[data-error]:has-text("UPSTREAM_ERROR")')) === 1);
    const row = page.locator('#errors tr[data-error]:has-text("UPSTREAM_ERROR")');
    // The target as the client named it (qualified: several services offer add).
    expect(await row.innerText()).toContain("alpha / alpha__add");
    expect(await row.innerText()).toContain('"a" must be a number');
    expect(Number(await text("#count-failed"))).toBeGreaterThanOrEqual(1);

    // Another component reports an invalid message on dmcp.v1.err.<sender>.
    const report = createEnvelope("error_notification", errorPayload(new DmcpError(ErrorCode.InvalidEnvelope, "invalid envelope: payload.method: expected string")), {
      sender: "probe-agent",
    });
    bus.publish(subjects.errors("probe-agent"), encodeEnvelope(report));
    await eventually(async () => (await count('#errors tr[data-error]:has-text("probe-agent")')) === 1);
    expect(await page.locator('#errors tr[data-error]:has-text("probe-agent")').innerText()).toContain("INVALID_ENVELOPE");
    await eventually(async () => (await count('#traffic tr[data-type="error_notification"]:has-text("dmcp.v1.err.probe-agent")')) === 1);

    // A tool error and a no-responder moment make the screenshot tell the whole story.
    await client.result("tools/call", { name: "beta__fail", arguments: {} });
    await client.result("tools/call", { name: "beta__echo", arguments: { text: "hello" } });
    await eventually(async () => (await count('#errors tr[data-error]:has-text("TOOL_ERROR")')) === 1);
    if (process.env.DASHBOARD_SCREENSHOT) {
      const slow = client.result("tools/call", { name: "alpha__sleep", arguments: { ms: 3000 } });
      await eventually(async () => (await count("#calls tr[data-call]")) === 1);
      // Requests and their replies, rather than the heartbeats that the 500 ms test interval piles up.
      await page.locator("#hide-heartbeats").check();
      await page.waitForTimeout(1200);
      await page.screenshot({ path: process.env.DASHBOARD_SCREENSHOT, fullPage: true });
      await slow;
    }
  });

  it("drops a killed executor's service from the page", async () => {
    beta.kill("SIGKILL");
    // Three missed heartbeats (500 ms each) and the registry evicts it.
    await eventually(async () => (await count('[data-service="beta"]')) === 0, 15_000);
    expect(await count('[data-service="alpha"] tr[data-instance]')).toBe(2);
    expect(await text("#count-services")).toBe("1");
    expect(await page.evaluate(() => (window as unknown as { loadedOnce?: boolean }).loadedOnce)).toBe(true);
    expect(pageErrors).toEqual([]);
  });
});

/**
 * When a gateway drops an HTTP session as idle, it ends the session's upstream sessions only if no
 * other gateway serves the session (PROTOCOL.md §19): two in-process gateways with a 3 s session
 * idle timeout, one real nats-server, the fixture wrapped over stdio (each client session's upstream
 * session is a server process of its own, whose pid `whoami` gives).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serveHttp, type HttpGatewayServer } from "../../adapters/inbound/index.js";
import { connectBus, type Bus } from "../../src/bus/index.js";
import { Gateway } from "../../src/gateway/index.js";
import { sleep } from "../../src/util/index.js";
import { silentLogger } from "../../src/util/logger.js";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually, wrapFixtureStdio, type Child } from "../support/processes.js";
import { openSession } from "../support/sse.js";

const IDLE_MS = 3_000;

let nats: EmbeddedNats;
let executor: Child;
const gateways: { bus: Bus; gateway: Gateway; http: HttpGatewayServer }[] = [];

beforeAll(async () => {
  nats = await startTestNats();
  executor = await wrapFixtureStdio(nats.url, "legacy");
  for (const name of ["idle-a", "idle-b"]) {
    const bus = await connectBus({ servers: nats.url, name, logger: silentLogger() });
    const gateway = new Gateway({ bus, logger: silentLogger() });
    await gateway.start();
    gateways.push({ bus, gateway, http: await serveHttp(gateway, { port: 0, logger: silentLogger(), sessionIdleMs: IDLE_MS }) });
  }
}, 60_000);

afterAll(async () => {
  for (const { http, gateway, bus } of gateways) {
    await http.close();
    await gateway.stop();
    await bus.drain();
  }
  await executor?.stop();
  await nats?.stop();
});

/** The pid of the upstream server process that answers the session's `whoami`. */
async function upstreamPid(url: string, headers: () => Record<string, string>, id: number): Promise<number> {
  const response = await fetch(url, {
    method: "POST",
    headers: headers(),
    body: JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "whoami", arguments: {} } }),
  });
  const text = await response.text();
  const match = /legacy:(\d+)/.exec(text);
  if (!match) throw new Error(`no whoami answer: ${response.status} ${text}`);
  return Number(match[1]);
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("a session dropped as idle by one gateway", () => {
  it("keeps its upstream session while another gateway serves it, and ends it once the last one drops it", async () => {
    const [a, b] = gateways.map((g) => g.http.url) as [string, string];
    const headers = await openSession(a, undefined, '"whoami"');
    const pid = await upstreamPid(a, headers, 2);
    // B serves the session (and writes its record as it goes) until A has dropped it as idle.
    let id = 3;
    while (gateways[0]!.http.sessionCount() > 0) {
      expect(await upstreamPid(b, headers, id++)).toBe(pid);
      if (id > 100) throw new Error("gateway A never dropped the idle session");
      await sleep(500);
    }
    expect(await upstreamPid(b, headers, id++)).toBe(pid);
    expect(isRunning(pid)).toBe(true);
    // Now B drops it too, and no other gateway wrote the record since B did: the upstream session ends.
    await eventually(() => !isRunning(pid), 20_000);
  }, 60_000);

  it("keeps a session whose call outlasts the idle timeout, and its upstream session with it", async () => {
    const b = gateways[1]!;
    const headers = await openSession(b.http.url, undefined, '"whoami"');
    const pid = await upstreamPid(b.http.url, headers, 2);
    const held = b.http.sessionCount();
    // More than two idle timeouts without a request, the call running all along.
    const response = await fetch(b.http.url, {
      method: "POST",
      headers: headers(),
      body: JSON.stringify({ jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "sleep", arguments: { ms: 2.5 * IDLE_MS } } }),
    });
    expect(await response.text()).toContain(`slept ${2.5 * IDLE_MS}`);
    expect(b.http.sessionCount()).toBe(held);
    expect(await upstreamPid(b.http.url, headers, 4)).toBe(pid);
  }, 60_000);

  it("ends the upstream session of a session only one gateway served", async () => {
    const [a] = gateways.map((g) => g.http.url) as [string, string];
    const headers = await openSession(a, undefined, '"whoami"');
    const pid = await upstreamPid(a, headers, 2);
    await eventually(() => !isRunning(pid), 20_000);
  }, 60_000);
});

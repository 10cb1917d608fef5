/**
 * Who creates dMCP's JetStream streams, and what a process does with one it did not expect (PROTOCOL.md
 * §4), against a real nats-server: only gateways create streams; an executor or agent that starts
 * first waits for them and creates none; a stream someone made first with other subjects, retention or
 * forwarding is refused with an error naming it, what it has and what is expected, by the gateway
 * (every stream), `dmcp wrap` (the streams it reads the settings of) and an agent.
 */
import { jetstreamManager, RetentionPolicy, type JetStreamManager, type StreamConfig } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Agent } from "../../src/agent/index.js";
import { connectBus, type Bus } from "../../src/bus/index.js";
import { silentLogger } from "../../src/util/logger.js";
import { gatewayTransport, RawMcpClient } from "../support/mcp-client.js";
import { connectRawNats, startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually, FIXTURE_BIN, runDmcp, startGatewayHttp, type Child } from "../support/processes.js";

type Hostile = { why: string; config: Partial<StreamConfig> & { name: string; subjects: string[] }; expected: RegExp };

/** One stream of each kind, made first by someone else with settings that would expose or swallow messages. */
const HOSTILE: Hostile[] = [
  {
    why: "a registry bucket that also captures requests (every call's first reply would be a PubAck)",
    config: { name: "KV_dmcp_registry", subjects: ["$KV.dmcp_registry.>", "dmcp.v1.req.>"] },
    expected: /KV_dmcp_registry is not what dMCP expects: its subjects are \["\$KV\.dmcp_registry\.>","dmcp\.v1\.req\.>"\], expected \["\$KV\.dmcp_registry\.>"\]/,
  },
  {
    why: "a result store that also captures the gateways' replies",
    config: { name: "KV_dmcp_results", subjects: ["$KV.dmcp_results.>", "_INBOX.gateway.>"], allow_direct: true },
    expected: /KV_dmcp_results is not what dMCP expects: its subjects are \["\$KV\.dmcp_results\.>","_INBOX\.gateway\.>"\]/,
  },
  {
    why: "a task bucket that republishes every record",
    config: { name: "KV_dmcp_tasks", subjects: ["$KV.dmcp_tasks.>"], republish: { src: "$KV.dmcp_tasks.>", dest: "leak.>" } },
    expected: /KV_dmcp_tasks is not what dMCP expects: it has republish .*leak\.>.*expected none/,
  },
  {
    why: "a work stream that keeps answered requests (limits, not work-queue retention)",
    config: { name: "DMCP_WORK", subjects: ["dmcp.v1.work.>"], retention: RetentionPolicy.Limits },
    expected: /DMCP_WORK is not what dMCP expects: its retention is limits, expected workqueue/,
  },
  {
    why: "a dead-letter stream that also captures the gateways' replies",
    config: { name: "DMCP_DEAD_LETTERS", subjects: ["dmcp.v1.dead.>", "_INBOX.gateway.>"] },
    expected: /DMCP_DEAD_LETTERS is not what dMCP expects: its subjects are \["_INBOX\.gateway\.>","dmcp\.v1\.dead\.>"\]/,
  },
  {
    why: "a context stream with work-queue retention (a consumer would take updates from everyone)",
    config: { name: "DMCP_CONTEXT", subjects: ["dmcp.v1.ctx.>"], retention: RetentionPolicy.Workqueue },
    expected: /DMCP_CONTEXT is not what dMCP expects: its retention is workqueue, expected limits/,
  },
];
const hostile = (name: string) => HOSTILE.find((stream) => stream.config.name === name)!;

describe("dMCP's JetStream streams: created by gateways only, checked by everyone", () => {
  let nats: EmbeddedNats;
  let admin: Bus;
  let adminNc: NatsConnection;
  let jsm: JetStreamManager;
  const children: Child[] = [];
  const agents: Agent[] = [];

  beforeAll(async () => {
    nats = await startTestNats();
    admin = await connectBus({ servers: nats.url, name: "admin", logger: silentLogger() });
    adminNc = await connectRawNats(nats.url);
    jsm = await jetstreamManager(adminNc);
  });

  afterEach(async () => {
    await Promise.allSettled(agents.splice(0).map((agent) => agent.stop()));
    await Promise.allSettled(children.splice(0).map((child) => child.stop()));
    for (const name of await streamNames()) await jsm.streams.delete(name);
  });

  afterAll(async () => {
    await admin?.drain();
    await adminNc?.drain();
    await nats?.stop();
  });

  async function streamNames(): Promise<string[]> {
    const names: string[] = [];
    for await (const name of jsm.streams.names()) names.push(name);
    return names.sort();
  }

  function wrap(service: string, extra: string[] = []): Child {
    const child = runDmcp(["wrap", "--name", service, "--nats", nats.url, "--heartbeat", "500", ...extra, "--", process.execPath, FIXTURE_BIN, "--stdio", "--name", service]);
    children.push(child);
    return child;
  }

  function agent(name: string, logged: string[] = []): Agent {
    const logger = pino({ level: "warn" }, { write: (line: string) => void logged.push(String(JSON.parse(line).msg)) });
    const created = new Agent({ bus: admin, name, version: "1.0.0", logger, heartbeatMs: 500 });
    created.tool("early_ping", { description: "answers pong" }, () => "pong");
    agents.push(created);
    return created;
  }

  it("an executor and an agent that start before any gateway create no stream, wait, and serve once a gateway made them", async () => {
    const executor = wrap("early", ["--delivery", "durable"]);
    await executor.waitFor(/executor serving/);
    expect(executor.stderr.some((line) => line.includes("waits for a gateway") && line.includes("KV_dmcp_registry") && line.includes("DMCP_WORK"))).toBe(true);
    const logged: string[] = [];
    let agentStarted = false;
    const starting = agent("early-agent", logged)
      .start()
      .then(() => (agentStarted = true));
    await eventually(() => logged.some((line) => line.includes("waits for a gateway")));
    // Both have looked for the streams (the executor before it said it serves) and made none.
    expect(await streamNames()).toEqual([]);
    expect(agentStarted).toBe(false);

    const gateway = await startGatewayHttp(nats.url, ["--result-ttl", "1h"]);
    children.push(gateway);
    expect(await streamNames()).toEqual([
      "DMCP_CONTEXT",
      "DMCP_DEAD_LETTERS",
      "DMCP_SESSION_EVENTS",
      "DMCP_WORK",
      "KV_dmcp_cache",
      "KV_dmcp_registry",
      "KV_dmcp_results",
      "KV_dmcp_sessions",
      "KV_dmcp_tasks",
    ]);
    expect((await jsm.streams.info("KV_dmcp_results")).config.max_age).toBe(3600 * 1e9);
    await starting;
    const client = await RawMcpClient.connect(gatewayTransport("http", { natsUrl: nats.url, httpUrl: gateway.url }));
    try {
      await eventually(async () => {
        const names = await client.toolNames();
        return names.includes("echo") && names.includes("early_ping");
      });
      // A durable call: the executor took its work from the streams the gateway made.
      const slept = (await client.result("tools/call", { name: "sleep", arguments: { ms: 5 } })) as { content: { text: string }[] };
      expect(slept.content[0]?.text).toBe("slept 5");
    } finally {
      await client.close();
    }
  }, 60_000);

  for (const { why, config, expected } of HOSTILE) {
    it(`the gateway refuses ${why}`, async () => {
      await jsm.streams.add(config);
      const gateway = runDmcp(["gateway", "--nats", nats.url, "--http", "0"]);
      children.push(gateway);
      expect(await gateway.exited).toBe(1);
      expect(gateway.stderr.join("\n")).toMatch(expected);
      // It was left as it was: nobody "repairs" a stream they did not expect.
      expect((await jsm.streams.info(config.name)).config.subjects).toEqual(config.subjects);
    }, 30_000);
  }

  for (const name of ["KV_dmcp_registry", "DMCP_WORK", "DMCP_DEAD_LETTERS"]) {
    it(`dmcp wrap --delivery durable refuses ${hostile(name).why}`, async () => {
      await jsm.streams.add(hostile(name).config);
      const executor = wrap("wary", ["--delivery", "durable"]);
      expect(await executor.exited).toBe(1);
      expect(executor.stderr.join("\n")).toMatch(hostile(name).expected);
    }, 30_000);
  }

  it("an executor that waits refuses a stream that then appears with other settings, and exits", async () => {
    const executor = wrap("patient");
    await executor.waitFor(/waits for a gateway/);
    await jsm.streams.add(hostile("KV_dmcp_registry").config);
    expect(await executor.exited).toBe(1);
    expect(executor.stderr.join("\n")).toMatch(hostile("KV_dmcp_registry").expected);
  }, 30_000);

  for (const name of ["KV_dmcp_registry", "DMCP_CONTEXT"]) {
    it(`an agent refuses ${hostile(name).why}`, async () => {
      await jsm.streams.add(hostile(name).config);
      const error = await agent("wary-agent")
        .start()
        .catch((err: unknown) => err);
      expect((error as Error).name).toBe("StreamConfigError");
      expect((error as Error).message).toMatch(hostile(name).expected);
    });
  }
});

/**
 * The per-role NATS permissions of deploy/nats/dmcp-permissions.conf against a real nats-server that
 * enforces them: the gateway, an executor (`dmcp wrap --delivery durable` of the fixture as service
 * `everything`), a second executor (the conformance fixture as `conf`, its user the example's executor
 * block copied) and a native agent (`planner`) each run as their role's user, and the normal flows
 * work (calls through the gateway, an agent's tool, the agent calling a service, context published
 * and read, durable calls and a dead-lettered poison call, an MCP task, sampling and elicitation
 * relayed to the client). Raw connections under each user are refused outside the role's subjects
 * (an executor cannot take another service's work or an agent write answers), and the code says so clearly
 * when a permission is missing: a wrap under another service's user exits with the reason, an agent
 * call to a service it may not call fails at once with FORBIDDEN, and nothing crashes.
 *
 * The same in operator mode (JWT accounts made here with @nats-io/jwt): the gateway connects with
 * `--nats-creds`, a durable executor's user gets the example's executor permissions from a templated
 * scoped signing key, and creds files that cannot get in say why.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { createAccount, createOperator, createUser, encodeAccount, encodeOperator, encodeUser, fmtCreds, newScopedSigner, type KeyPair, type OperatorLimits } from "@nats-io/jwt";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, credsAuthenticator, PermissionViolationError, type NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import * as z from "zod";
import { Agent, type ContextEvent } from "../../src/agent/index.js";
import { connectBus, findNatsServerBinary, type Bus } from "../../src/bus/index.js";
import { decodeEnvelope, DmcpError, ErrorCode } from "../../src/protocol/index.js";
import { silentLogger } from "../../src/util/logger.js";
import { callsOnAKilledGateway } from "../support/failover.js";
import { RawMcpClient } from "../support/mcp-client.js";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually, FIXTURE_BIN, REPO_ROOT, runDmcp, startGatewayHttp, wrapFixtureStdio, type Child } from "../support/processes.js";
import { startRoundRobinProxy, type RoundRobinProxy } from "../support/round-robin.js";
import { openSession } from "../support/sse.js";

const EXAMPLE_CONFIG = `${REPO_ROOT}deploy/nats/dmcp-permissions.conf`;
const CONFORMANCE_BIN = `${REPO_ROOT}dist/test/support/fixtures/conformance-server.js`;
/** The `everything` executor takes tool calls from its work queue (echo stays direct: agents call it). */
const DURABLE = ["--delivery", "durable", "--direct-tools", "echo", "--max-deliver", "2", "--backoff", "100ms", "--ack-wait", "2s"];

/** The users of the example, with the passwords this test gives them and their inbox prefixes. */
const ROLES = {
  gateway: { user: "gateway", pass: "gateway-secret", variable: "DMCP_GATEWAY_PASSWORD" },
  executor: { user: "svc-everything", pass: "everything-secret", variable: "DMCP_SVC_EVERYTHING_PASSWORD" },
  agent: { user: "agent-planner", pass: "planner-secret", variable: "DMCP_AGENT_PLANNER_PASSWORD" },
  /** The executor of service `conf` (the conformance fixture): the example's executor block, copied as its comment says. */
  conf: { user: "svc-conf", pass: "conf-secret", variable: "DMCP_SVC_CONF_PASSWORD" },
  /** The executor of service `fragile`, killed during a call's last attempt (copied the same way). */
  fragile: { user: "svc-fragile", pass: "fragile-secret", variable: "DMCP_SVC_FRAGILE_PASSWORD" },
  /** The executor of service `slow`, serving direct calls whose gateway is killed (copied the same way). */
  slow: { user: "svc-slow", pass: "slow-secret", variable: "DMCP_SVC_SLOW_PASSWORD" },
} as const;
type Role = keyof typeof ROLES;

const inboxPrefix = (role: Role) => `_INBOX.${ROLES[role].user}`;

/** The `dmcp` flags of a role. */
function roleFlags(role: Role): string[] {
  const { user, pass } = ROLES[role];
  return ["--nats-user", user, "--nats-pass", pass, "--nats-inbox-prefix", inboxPrefix(role)];
}

type CallResult = { content: { type: string; text: string }[]; structuredContent?: Record<string, unknown>; isError?: boolean };

/** A raw nats.js connection under a role's user that records every permission the server refuses. */
interface RawConnection {
  nc: NatsConnection;
  denied: PermissionViolationError[];
  /** Resolves once the server has refused `operation` on `subject`. */
  refused(operation: "publish" | "subscription", subject: string): Promise<PermissionViolationError>;
  /** Publishes to each subject and resolves once the server has refused every one. */
  refusesPublishing(subjects: string[]): Promise<void>;
}

function recordingDenials(nc: NatsConnection): RawConnection {
  const denied: PermissionViolationError[] = [];
  const refused: RawConnection["refused"] = (operation, subject) =>
    eventually(() => denied.find((error) => error.operation === operation && error.subject === subject), 10_000, 25);
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === "error" && status.error instanceof PermissionViolationError) denied.push(status.error);
    }
  })();
  return {
    nc,
    denied,
    refused,
    async refusesPublishing(subjects) {
      for (const subject of subjects) nc.publish(subject, "{}");
      for (const subject of subjects) await refused("publish", subject);
    },
  };
}

/**
 * What the server refused the roles in their normal work: nothing but the executors' subscriptions
 * to max-deliveries advisories, which the example leaves to the gateway (see its executor block).
 */
function violationsIn(serverLog: string[]): string[] {
  // The user as 2.9 names it (`User "svc-x"`) and as newer servers do (`"$G/user:svc-x"`).
  const refusedAdvisory = (line: string) => /(User "|user:)svc-[a-z]+"/.test(line) && line.includes('Subject "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.DMCP_WORK.*"');
  return serverLog.filter((line) => /Violation/.test(line) && !refusedAdvisory(line));
}

/** Starts nats-server with the example config (and executor users for `services` copied in), its log lines kept in `serverLog`. */
async function startExampleNats(dir: string, services: string[], serverLog: string[]): Promise<EmbeddedNats> {
  // The example as it is, after the variables its passwords refer to (port and store come from flags;
  // nats-server refuses a variable nothing refers to).
  const config = join(dir, "nats.conf");
  const example = services.reduce((text, service) => withExecutorOf(service, text), readFileSync(EXAMPLE_CONFIG, "utf8"));
  const variables = Object.values(ROLES)
    .filter(({ variable }) => example.includes(`$${variable}`))
    .map(({ variable, pass }) => `${variable}: "${pass}"`);
  writeFileSync(config, `${variables.join("\n")}\n${example}`);
  const logger = pino({ level: "debug" }, { write: (line: string) => void serverLog.push(String(JSON.parse(line).msg)) });
  // DMCP_TEST_TRACE=FILE keeps the server's protocol trace: the subjects each user really used.
  return startTestNats({ extraArgs: ["-c", config, ...(process.env.DMCP_TEST_TRACE ? ["-V"] : [])], logger });
}

describe("NATS permissions per role (deploy/nats/dmcp-permissions.conf)", () => {
  let dir: string;
  let nats: EmbeddedNats;
  const serverLog: string[] = [];
  let gateway: Child & { url: string };
  let executor: Child;
  let conf: Child;
  let agentBus: Bus;
  let planner: Agent;
  let client: RawMcpClient;
  const planned: ContextEvent[] = [];
  const raws: NatsConnection[] = [];
  const children: Child[] = [];

  const violations = () => violationsIn(serverLog);

  async function rawConnection(role: Role): Promise<RawConnection> {
    const { user, pass } = ROLES[role];
    const nc = await connect({ servers: nats.url, user, pass, inboxPrefix: inboxPrefix(role), name: `raw-${role}` });
    raws.push(nc);
    return recordingDenials(nc);
  }

  /**
   * Subscribes, waits until the server has answered (a refusal arrives before the flush's PONG), and
   * leaves again: a silent member of a service's queue group would swallow the later tests' calls.
   */
  async function trySubscribe(raw: RawConnection, subject: string, queue?: string): Promise<void> {
    const sub = raw.nc.subscribe(subject, { ...(queue ? { queue } : {}), callback: () => undefined });
    await raw.nc.flush();
    sub.unsubscribe();
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dmcp-nats-perms-"));
    nats = await startExampleNats(dir, ["conf", "fragile"], serverLog);

    // Executor and agent start first, on a bus without streams: they create none (their users may
    // not) and wait for the gateway, which creates them all under its own user.
    executor = await wrapFixtureStdio(nats.url, "everything", [...roleFlags("executor"), ...DURABLE]);
    children.push(executor);
    // The conformance fixture sends sampling, elicitation and roots requests to its clients.
    conf = runDmcp(["wrap", "--name", "conf", "--nats", nats.url, "--heartbeat", "500", ...roleFlags("conf"), "--", process.execPath, CONFORMANCE_BIN, "--stdio"]);
    children.push(conf);
    await conf.waitFor(/executor serving/);

    const { user, pass } = ROLES.agent;
    agentBus = await connectBus({ servers: nats.url, name: "planner", logger: silentLogger(), user, pass, inboxPrefix: inboxPrefix("agent") });
    planner = new Agent({ bus: agentBus, name: "planner", version: "1.0.0", logger: silentLogger(), heartbeatMs: 500, callTimeoutMs: 20_000 });
    planner.tool("plan", { description: "Plans a response to an anomaly", input: z.object({ anomaly: z.string() }) }, async ({ anomaly }) => {
      // The agent's own work crosses the bus under its user: a call to a service and a context update.
      const echoed = (await planner.call("everything", "echo", { text: anomaly })) as CallResult;
      const { seq } = await planner.publish("plant.plans", { anomaly, echoed: echoed.content[0]?.text });
      return { content: [{ type: "text", text: `planned #${seq}` }], structuredContent: { seq } };
    });
    planner.subscribe("plant.>", (event) => void planned.push(event), { durable: true });
    const plannerStarted = planner.start();

    gateway = await startGatewayHttp(nats.url, [...roleFlags("gateway"), "--context-max-age", "1d"]);
    children.push(gateway);
    await plannerStarted;
    client = await RawMcpClient.connect(new StreamableHTTPClientTransport(new URL(gateway.url)));
    await eventually(async () => {
      const names = await client.toolNames();
      return names.includes("echo") && names.includes("plan") && names.includes("test_sampling");
    }, 30_000);
  }, 90_000);

  afterAll(async () => {
    await client?.close().catch(() => undefined);
    await planner?.stop().catch(() => undefined);
    await agentBus?.drain().catch(() => undefined);
    await Promise.allSettled(raws.map((nc) => nc.close()));
    await Promise.allSettled(children.map((child) => child.stop()));
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
    if (process.env.DMCP_TEST_TRACE) writeFileSync(process.env.DMCP_TEST_TRACE, serverLog.join("\n"));
  });

  it("serves a tools/call through the gateway, an agent's tool and context, each role under its own user", async () => {
    const echo = (await client.result("tools/call", { name: "echo", arguments: { text: "hi" } })) as CallResult;
    expect(echo.content[0]?.text).toContain("hi");

    const plan = (await client.result("tools/call", { name: "plan", arguments: { anomaly: "pressure" } })) as CallResult;
    expect(plan.isError).toBeFalsy();
    const seq = plan.structuredContent?.seq as number;
    expect(seq).toBeGreaterThan(0);
    // The agent's durable subscription read its own update back from the stream.
    await eventually(() => planned.some((event) => event.seq === seq && (event.data as { anomaly: string }).anomaly === "pressure"));

    // The gateway publishes context for MCP clients, reads it back as a resource, and replays it.
    const published = (await client.result("tools/call", { name: "dmcp_publish_context", arguments: { topic: "ops.notes", data: { note: 1 } } })) as CallResult;
    expect(published.isError).toBeFalsy();
    const read = await client.result("resources/read", { uri: "dmcp://context/plant.plans" });
    expect(JSON.parse((read.contents as { text: string }[])[0]!.text)).toMatchObject({ anomaly: "pressure" });
    const history = (await client.result("tools/call", { name: "dmcp_context_history", arguments: { topic: "plant.plans" } })) as CallResult;
    expect(history.structuredContent?.updates as unknown[]).not.toHaveLength(0);

    // The operator's commands can run as the gateway's user.
    const status = runDmcp(["status", "--json", "--nats", nats.url, ...roleFlags("gateway")]);
    expect(await status.exited).toBe(0);

    // Nothing the three roles did in their normal work was refused.
    expect(violations()).toEqual([]);
  });

  it("answers durable calls through the work queue, and dead-letters a poison call, under the gateway's and executor's users", async () => {
    const slept = (await client.result("tools/call", { name: "sleep", arguments: { ms: 20 } })) as CallResult;
    expect(slept.content[0]?.text).toBe("slept 20");
    const high = (await client.result("tools/call", { name: "sleep", arguments: { ms: 21 }, _meta: { "io.dmcp/priority": "high" } })) as CallResult;
    expect(high.content[0]?.text).toBe("slept 21");
    // `crash` kills the upstream on each of its 2 attempts: the executor dead-letters it.
    const poison = await client.request("tools/call", { name: "crash", arguments: {} }, 60_000);
    expect(poison.error?.code).toBe(-32030);
    expect(poison.error?.data).toMatchObject({ dmcp_code: ErrorCode.RetriesExhausted, deliveries: 2, attempts: 2, last_error: { code: ErrorCode.UpstreamClosed } });
    await eventually(() => executor.stderr.some((line) => line.includes("durable request dead-lettered")));
    // The executor serves again after the crashes.
    const again = (await client.result("tools/call", { name: "sleep", arguments: { ms: 22 } })) as CallResult;
    expect(again.content[0]?.text).toBe("slept 22");
    expect(violations()).toEqual([]);
    // The advisory subscription the example refuses executors is expected: said at info, not as an error.
    const advisoryDenials = executor.stderr.filter((line) => line.includes("MAX_DELIVERIES"));
    expect(advisoryDenials.some((line) => line.includes("gateways take them") && line.includes('"level":30'))).toBe(true);
    expect(advisoryDenials.some((line) => line.includes('"level":50'))).toBe(false);
  }, 90_000);

  it("runs an MCP task (2025-11-25): created, polled with tasks/get, listed, its result fetched", async () => {
    const created = await client.result("tools/call", { name: "sleep", arguments: { ms: 300 }, task: { ttl: 60_000 } });
    const task = created.task as { taskId: string; status: string };
    expect(task.status).toBe("working");
    const done = await eventually(
      async () => {
        const polled = await client.result("tasks/get", { taskId: task.taskId });
        return polled.status === "completed" ? polled : undefined;
      },
      30_000,
      100,
    );
    expect(done.taskId).toBe(task.taskId);
    const listed = (await client.result("tasks/list")).tasks as { taskId: string }[];
    expect(listed.map((entry) => entry.taskId)).toContain(task.taskId);
    const result = (await client.result("tasks/result", { taskId: task.taskId })) as CallResult;
    expect(result.content[0]?.text).toBe("slept 300");
    expect(violations()).toEqual([]);
  }, 60_000);

  it("relays an upstream's sampling and elicitation requests to the client and its answers back (dmcp.v1.gw.<gateway>.session)", async () => {
    const sdk = new Client({ name: "perms", version: "1.0.0" }, { capabilities: { sampling: {}, elicitation: { form: {} } } });
    sdk.setRequestHandler("sampling/createMessage", (request) => ({
      role: "assistant",
      content: { type: "text", text: `sampled: ${JSON.stringify(request.params.messages[0]?.content)}` },
      model: "test-model",
    }));
    sdk.setRequestHandler("elicitation/create", () => ({ action: "accept", content: { username: "perms-user", email: "perms@example.com" } }));
    await sdk.connect(new StreamableHTTPClientTransport(new URL(gateway.url)));
    try {
      const sampled = await sdk.callTool({ name: "test_sampling", arguments: { prompt: "allowed?" } });
      expect(JSON.stringify(sampled.content)).toContain("sampled:");
      expect(JSON.stringify(sampled.content)).toContain("allowed?");
      const elicited = await sdk.callTool({ name: "test_elicitation", arguments: { message: "who?" } });
      expect(JSON.stringify(elicited.content)).toContain("perms-user");
    } finally {
      await sdk.close();
    }
    expect(violations()).toEqual([]);
  }, 60_000);

  it("dead-letters a call whose executor died on its last attempt: the gateway takes the max-deliveries advisory", async () => {
    const fragile = await wrapFixtureStdio(nats.url, "fragile", [...roleFlags("fragile"), "--delivery", "durable", "--max-deliver", "1", "--ack-wait", "2s"]);
    children.push(fragile);
    // Its tools share names with `everything`'s, so the gateway names them by service.
    const sleepTool = await eventually(async () => (await client.toolNames()).find((name) => name.startsWith("fragile") && name.endsWith("sleep")), 30_000);
    const watcher = await rawConnection("gateway");
    let busy = false;
    watcher.nc.subscribe("dmcp.v1.hb.fragile.*", {
      callback: (_err, msg) => {
        const decoded = decodeEnvelope(msg.data);
        if (decoded.ok && (decoded.envelope.payload as { inflight?: number }).inflight) busy = true;
      },
    });
    const call = client.request("tools/call", { name: sleepTool, arguments: { ms: 60_000 } }, 60_000);
    await eventually(() => busy, 30_000);
    fragile.kill("SIGKILL");
    const response = await call;
    expect(response.error?.code).toBe(-32030);
    expect(response.error?.data).toMatchObject({ dmcp_code: ErrorCode.RetriesExhausted, deliveries: 1, reason: "the replica holding the last delivery was lost" });
    await eventually(() => gateway.stderr.some((line) => line.includes("durable request dead-lettered")));

    // A replacement with other settings updates the service's lane consumers (under the same user) and serves.
    const replacement = await wrapFixtureStdio(nats.url, "fragile", [...roleFlags("fragile"), "--delivery", "durable", "--max-deliver", "3", "--ack-wait", "3s"]);
    children.push(replacement);
    const slept = (await client.result("tools/call", { name: sleepTool, arguments: { ms: 10 } })) as CallResult;
    expect(slept.content[0]?.text).toBe("slept 10");
    expect(violations()).toEqual([]);
  }, 90_000);

  it("ships a server configuration that nats-server accepts, with the passwords from the environment", () => {
    const env = { ...process.env, ...Object.fromEntries(Object.values(ROLES).map(({ variable, pass }) => [variable, pass])) };
    const check = (environment: NodeJS.ProcessEnv) =>
      spawnSync(findNatsServerBinary()!, ["-c", "nats-server.conf", "-t"], { cwd: `${REPO_ROOT}deploy/nats`, env: environment, encoding: "utf8" });
    expect(check(env).status).toBe(0);
    const withoutPasswords = check(Object.fromEntries(Object.entries(env).filter(([name]) => !name.startsWith("DMCP_"))));
    expect(withoutPasswords.status).not.toBe(0);
    expect(withoutPasswords.stderr).toMatch(/DMCP_GATEWAY_PASSWORD/);
  });

  it("refuses the executor's user everything outside its own service", async () => {
    const raw = await rawConnection("executor");
    // Allowed first: had these been refused, the refusals would arrive before the ones awaited below.
    raw.nc.publish("dmcp.v1.hb.everything.raw-1", "{}");
    await trySubscribe(raw, "dmcp.v1.req.everything", "dmcp-everything");
    await trySubscribe(raw, "$SRV.PING.everything");

    raw.nc.publish("$JS.API.CONSUMER.INFO.DMCP_WORK.dmcp-work-everything-normal", ""); // its own lane consumer: allowed
    await trySubscribe(raw, "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.DMCP_WORK.*");
    await trySubscribe(raw, "dmcp.v1.req.other", "dmcp-other"); // another service's requests
    await trySubscribe(raw, "dmcp.v1.req.everything"); // its own requests outside the queue group
    await trySubscribe(raw, "dmcp.v1.req.everything", "stolen");
    await trySubscribe(raw, "_INBOX.gateway.>"); // the gateway's replies
    await trySubscribe(raw, "dmcp.v1.ctx.>");
    await raw.refusesPublishing([
      "dmcp.v1.hb.other.raw-1", // a fake heartbeat for another service
      "$KV.dmcp_registry.other.raw-1", // a fake announcement for another service
      "dmcp.v1.req.everything", // calling services is the gateway's job
      "dmcp.v1.ctx.plant.plans",
      // Durable delivery: only its own lane consumers, with their own filters; no reads by sequence.
      "$JS.API.CONSUMER.CREATE.DMCP_WORK.dmcp-work-other-normal.dmcp.v1.work.other.normal",
      "$JS.API.CONSUMER.CREATE.DMCP_WORK.dmcp-work-everything-normal.dmcp.v1.work.>", // its own name, any filter
      "$JS.API.CONSUMER.MSG.NEXT.DMCP_WORK.dmcp-work-other-normal",
      "$JS.API.STREAM.MSG.GET.DMCP_WORK",
      "$JS.API.STREAM.PURGE.DMCP_WORK",
      "dmcp.v1.work.everything.normal", // queueing calls is the gateway's job
      "dmcp.v1.dead.other",
      // The result store: no listing or watching it, no reads by sequence; the task records are not its business.
      "$JS.API.CONSUMER.CREATE.KV_dmcp_results",
      "$JS.API.STREAM.MSG.GET.KV_dmcp_results",
      "$KV.dmcp_tasks.forged",
    ]);
    await raw.refused("subscription", "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.DMCP_WORK.*");
    await raw.refused("subscription", "dmcp.v1.req.other");
    await raw.refused("subscription", "_INBOX.gateway.>");
    await raw.refused("subscription", "dmcp.v1.ctx.>");
    await eventually(() => raw.denied.filter((error) => error.subject === "dmcp.v1.req.everything" && error.operation === "subscription").length === 2);
    expect(raw.denied.map((error) => error.subject)).not.toContain("dmcp.v1.hb.everything.raw-1");
    expect(raw.denied.map((error) => error.subject)).not.toContain("$SRV.PING.everything");
    expect(raw.denied.map((error) => error.subject)).not.toContain("$JS.API.CONSUMER.INFO.DMCP_WORK.dmcp-work-everything-normal");
  });

  it("refuses another service's executor the work queue of `everything`", async () => {
    const raw = await rawConnection("conf");
    raw.nc.publish("$JS.API.CONSUMER.INFO.DMCP_WORK.dmcp-work-conf-high", "");
    await raw.refusesPublishing([
      "$JS.API.CONSUMER.MSG.NEXT.DMCP_WORK.dmcp-work-everything-normal",
      "$JS.API.CONSUMER.MSG.NEXT.DMCP_WORK.dmcp-work-everything-high",
      "$JS.API.CONSUMER.INFO.DMCP_WORK.dmcp-work-everything-normal",
      "$JS.ACK.DMCP_WORK.dmcp-work-everything-normal.1.1.1.1.0",
      "dmcp.v1.dead.everything",
    ]);
    expect(raw.denied.map((error) => error.subject)).not.toContain("$JS.API.CONSUMER.INFO.DMCP_WORK.dmcp-work-conf-high");
  });

  it("keeps each executor to its own service's durable answers: it can neither list the result store nor read another service's", async () => {
    // The answers of `everything`'s durable calls above, listed as only the gateway's user may: keyed by service.
    const gatewayJsm = await jetstreamManager((await rawConnection("gateway")).nc);
    const stored = Object.keys((await gatewayJsm.streams.info("KV_dmcp_results", { subjects_filter: "$KV.dmcp_results.>" })).state.subjects ?? {});
    const answer = stored.find((subject) => /^\$KV\.dmcp_results\.everything\.[^.]+$/.test(subject));
    expect(answer, stored.join(", ")).toBeDefined();

    // `conf`'s executor: no listing, no read of `everything`'s key, by key or by sequence, and no write there.
    const conf = await rawConnection("conf");
    await conf.refusesPublishing([
      "$JS.API.STREAM.INFO.KV_dmcp_results",
      `$JS.API.DIRECT.GET.KV_dmcp_results.${answer}`,
      "$JS.API.DIRECT.GET.KV_dmcp_results",
      "$JS.API.STREAM.MSG.GET.KV_dmcp_results",
      `${answer}`,
    ]);
    // A direct get on its own prefix that asks for another key in its payload gets nothing.
    const asked = await conf.nc.request("$JS.API.DIRECT.GET.KV_dmcp_results.$KV.dmcp_results.conf.x", JSON.stringify({ last_by_subj: answer }), { timeout: 5000 });
    expect(asked.headers?.get("Nats-Subject") ?? "").toBe("");
    expect(asked.data.length).toBe(0);

    // `everything`'s executor reads its own answer by key.
    const own = await (await rawConnection("executor")).nc.request(`$JS.API.DIRECT.GET.KV_dmcp_results.${answer}`, "", { timeout: 5000 });
    expect(own.headers?.get("Nats-Subject")).toBe(answer);
    expect(decodeEnvelope(own.data, Number.POSITIVE_INFINITY).ok).toBe(true);
  });

  it("refuses executors and agents creating or changing any stream: the gateway creates them", async () => {
    const streams = [
      "KV_dmcp_registry",
      "KV_dmcp_results",
      "KV_dmcp_tasks",
      "KV_dmcp_cache",
      "KV_dmcp_sessions",
      "DMCP_SESSION_EVENTS",
      "DMCP_WORK",
      "DMCP_DEAD_LETTERS",
      "DMCP_CONTEXT",
      "ANY_OTHER",
    ];
    for (const role of ["executor", "agent"] as const) {
      const raw = await rawConnection(role);
      await raw.refusesPublishing(streams.flatMap((stream) => [`$JS.API.STREAM.CREATE.${stream}`, `$JS.API.STREAM.UPDATE.${stream}`]));
    }
  });

  it("refuses the agent's user other services' requests, other topics and services it may not call", async () => {
    const raw = await rawConnection("agent");
    raw.nc.publish("dmcp.v1.ctx.plant.plans", "{}");
    await trySubscribe(raw, "dmcp.v1.ctx.>");

    await trySubscribe(raw, "dmcp.v1.req.>");
    await trySubscribe(raw, "dmcp.v1.req.everything", "dmcp-everything");
    await raw.refused("subscription", "dmcp.v1.req.>");
    await raw.refused("subscription", "dmcp.v1.req.everything");
    await raw.refusesPublishing([
      "dmcp.v1.ctx.plant.actions", // a topic it does not own
      "dmcp.v1.req.other", // a service it may not call
      "dmcp.v1.hb.everything.fake",
      "$JS.API.STREAM.DELETE.DMCP_CONTEXT",
      // Durable delivery and tasks are the gateway's and executors' business: no answers, queued calls or task records.
      "$KV.dmcp_results.forged",
      "$JS.API.STREAM.CREATE.KV_dmcp_results",
      "$JS.API.DIRECT.GET.KV_dmcp_results.$KV.dmcp_results.forged",
      "dmcp.v1.work.everything.normal",
      "$JS.API.CONSUMER.MSG.NEXT.DMCP_WORK.dmcp-work-everything-normal",
      "$KV.dmcp_tasks.forged",
      "$KV.dmcp_sessions.forged",
    ]);
    expect(raw.denied.map((error) => error.subject)).not.toContain("dmcp.v1.ctx.plant.plans");
    expect(raw.denied.map((error) => error.subject)).not.toContain("dmcp.v1.ctx.>");
  });

  it("lets the gateway's user ask the session events' leader for a message, as a follow checks a new consumer (PROTOCOL.md §19.3)", async () => {
    const raw = await rawConnection("gateway");
    const asked = { seq: 1, next_by_subj: "dmcp.v1.sse.perms-session.perms-stream" };
    // Answered (a message or "no message found"), not refused.
    const answer = await raw.nc.request("$JS.API.STREAM.MSG.GET.DMCP_SESSION_EVENTS", JSON.stringify(asked), { timeout: 5000 });
    expect(JSON.parse(answer.string()).type).toBe("io.nats.jetstream.api.v1.stream_msg_get_response");
    expect(raw.denied.map((error) => error.subject)).not.toContain("$JS.API.STREAM.MSG.GET.DMCP_SESSION_EVENTS");
  });

  it("refuses the gateway's user serving a service or posing as an instance", async () => {
    const raw = await rawConnection("gateway");
    await trySubscribe(raw, "dmcp.v1.req.everything", "dmcp-everything");
    await raw.refused("subscription", "dmcp.v1.req.everything");
    await raw.refusesPublishing([
      "dmcp.v1.hb.everything.fake",
      "$KV.dmcp_registry.everything.fake",
      "$JS.API.STREAM.DELETE.KV_dmcp_registry",
      // Queueing calls, yes; taking them from an executor's queue or acknowledging them, no.
      "$JS.API.CONSUMER.MSG.NEXT.DMCP_WORK.dmcp-work-everything-normal",
      "$JS.API.CONSUMER.CREATE.DMCP_WORK.dmcp-work-everything-normal.dmcp.v1.work.everything.normal",
      "$JS.ACK.DMCP_WORK.dmcp-work-everything-normal.1.1.1.1.0",
      "$JS.API.STREAM.DELETE.DMCP_WORK",
    ]);
  });

  it("an executor under another service's user exits and says which subjects it may not use", async () => {
    const child = runDmcp(["wrap", "--name", "other", "--nats", nats.url, ...roleFlags("executor"), "--", process.execPath, FIXTURE_BIN, "--stdio"]);
    children.push(child);
    expect(await child.exited).toBe(1);
    expect(child.stderr.join("\n")).toMatch(/denied subscribing to dmcp\.v1\.req\.other.*may not serve "other"/);
  });

  it("stops with a clear message on a wrong password, and refuses a wildcard inbox prefix as a usage error", async () => {
    const wrong = runDmcp(["status", "--nats", nats.url, "--nats-user", "gateway", "--nats-pass", "wrong", "--nats-inbox-prefix", inboxPrefix("gateway")]);
    children.push(wrong);
    expect(await wrong.exited).toBe(1);
    expect(wrong.stderr.join("\n")).toMatch(/Authorization Violation.*refused the credentials/);
    const wildcard = runDmcp(["status", "--nats", nats.url, ...roleFlags("gateway"), "--nats-inbox-prefix", "_INBOX.>"]);
    children.push(wildcard);
    expect(await wildcard.exited).toBe(2);
    expect(wildcard.stderr.join("\n")).toMatch(/--nats-inbox-prefix needs/);
  });

  it("an agent's call to a service it may not call fails at once with FORBIDDEN, and the agent keeps working", async () => {
    const error = await planner.call("memory", "read_graph", {}, { timeoutMs: 45_000 }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(DmcpError);
    expect((error as DmcpError).code).toBe(ErrorCode.Forbidden);
    expect((error as DmcpError).message).toMatch(/dmcp\.v1\.req\.memory/);

    const refusedTopic = await planner.publish("plant.actions", { act: 1 }).catch((err: unknown) => err);
    expect(refusedTopic).toBeInstanceOf(DmcpError);
    expect((refusedTopic as DmcpError).code).toBe(ErrorCode.Forbidden);

    // Still serving and calling.
    const plan = (await client.result("tools/call", { name: "plan", arguments: { anomaly: "again" } })) as CallResult;
    expect(plan.isError).toBeFalsy();
  });
});

describe("calls in flight on a SIGKILLed gateway, recovered through another under the example's users (PROTOCOL.md §19.4)", () => {
  let dir: string;
  let nats: EmbeddedNats;
  const serverLog: string[] = [];
  let gateways: (Child & { url: string })[] = [];
  let direct: Child;
  let durable: Child;
  let proxy: RoundRobinProxy;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dmcp-nats-perms-failover-"));
    nats = await startExampleNats(dir, ["slow"], serverLog);
    // `everything` takes its calls from the work queue; `slow` is called directly.
    durable = await wrapFixtureStdio(nats.url, "everything", [...roleFlags("executor"), "--delivery", "durable", "--ack-wait", "5s"]);
    direct = await wrapFixtureStdio(nats.url, "slow", roleFlags("slow"));
    gateways = [
      await startGatewayHttp(nats.url, [...roleFlags("gateway"), "--log-level", "debug"]),
      await startGatewayHttp(nats.url, [...roleFlags("gateway"), "--log-level", "debug"]),
    ];
    proxy = await startRoundRobinProxy(gateways.map((gateway) => new URL(gateway.url).origin));
  }, 120_000);

  afterAll(async () => {
    await proxy?.close();
    await Promise.allSettled([...gateways.map((gateway) => gateway.stop()), direct?.stop(), durable?.stop()]);
    await nats?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("passes a client's cancellation posted to the other gateway on to the one holding the call (dmcp.v1.gw.cancel)", async () => {
    const [holder, other] = gateways as [Child & { url: string }, Child & { url: string }];
    const headers = await openSession(holder.url, undefined, '"slow__sleep"');
    const left = new AbortController();
    const call = { jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "slow__sleep", arguments: { ms: 20_100 } } };
    fetch(holder.url, { method: "POST", headers: headers(), body: JSON.stringify(call), signal: left.signal }).catch(() => undefined);
    await direct.waitFor(/sleep: running 20100/, 15_000);
    const cancel = { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 2, reason: "cancelled under the users" } };
    expect((await fetch(other.url, { method: "POST", headers: headers(), body: JSON.stringify(cancel) })).status).toBe(202);
    await direct.waitFor(/cancelled: .*cancelled under the users/, 15_000);
    left.abort();
    expect(violationsIn(serverLog)).toEqual([]);
  }, 60_000);

  it("answers the direct call (dmcp.v1.recover.<service> and its reply) and the durable one (the result store) through the other gateway", async () => {
    const client = new Client({ name: "perms-failover", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(proxy.url)));
    try {
      const { answers, survivor } = await callsOnAKilledGateway(proxy, gateways, client, [
        { tool: "slow__sleep", ms: 3101, executor: direct },
        { tool: "everything__sleep", ms: 3102, executor: durable },
      ]);
      const [directAnswer, durableAnswer] = await Promise.all(answers);
      expect(directAnswer).toMatchObject({ content: [{ type: "text", text: "slept 3101" }] });
      expect(durableAnswer).toMatchObject({ content: [{ type: "text", text: "slept 3102" }] });
      const recovered = gateways[survivor]!.stderr.filter((line) => line.includes("looking for the answer of a call another gateway sent"));
      expect(recovered.map((line) => (JSON.parse(line) as { delivery: string }).delivery).sort()).toEqual(["direct", "durable"]);
      expect(direct.stderr.filter((line) => line.includes("sleep: running 3101"))).toHaveLength(1);
      expect(durable.stderr.filter((line) => line.includes("sleep: running 3102"))).toHaveLength(1);
      // Nothing of the recovery was refused: not the lookup, its reply, nor the result store's read.
      expect(violationsIn(serverLog)).toEqual([]);
      expect(direct.stderr.some((line) => line.includes("cannot take lookups of recent answers"))).toBe(false);
    } finally {
      await client.close().catch(() => undefined);
    }
  }, 90_000);
});

/**
 * The example config with an executor user for `service` added: the `svc-everything` block copied
 * with the service's name in place of `everything`, as the example tells operators to do.
 */
function withExecutorOf(service: string, config: string): string {
  const block = /\n {4}\{\n {6}user: svc-everything\n[\s\S]*?\n {4}\}\n/.exec(config)?.[0];
  if (!block) throw new Error(`no svc-everything block in ${EXAMPLE_CONFIG}`);
  const copy = block.replace(/everything/g, service).replace(/EVERYTHING/g, service.toUpperCase());
  const end = config.lastIndexOf("  ]\n}");
  return `${config.slice(0, end)}${copy}${config.slice(end)}`;
}

/**
 * The permissions of a user of the example config, read from its block (comments left out), so that
 * the JWT test below uses the very lists the example gives.
 */
function examplePermissions(user: string): { pub: string[]; sub: string[] } {
  const config = readFileSync(EXAMPLE_CONFIG, "utf8").replace(/#.*$/gm, "");
  const start = config.indexOf(`user: ${user}\n`);
  if (start === -1) throw new Error(`no user ${user} in ${EXAMPLE_CONFIG}`);
  const next = config.indexOf("user: ", start + 1);
  const block = config.slice(start, next === -1 ? undefined : next);
  const list = (section: string) => {
    const from = block.indexOf(`${section}: {`);
    return [...block.slice(from, block.indexOf("]", from)).matchAll(/"([^"]+)"/g)].map((match) => match[1]!);
  };
  return { pub: list("publish"), sub: list("subscribe") };
}

/** The tags of an executor's user under the templated role key: its service, and its work queue's consumers. */
const EXECUTOR_TAGS = (service: string) => [`service:${service}`, `work-normal:dmcp-work-${service}-normal`, `work-high:dmcp-work-${service}-high`];

const NO_LIMITS: OperatorLimits = {
  subs: -1,
  data: -1,
  payload: -1,
  imports: -1,
  exports: -1,
  wildcards: true,
  conn: -1,
  leaf: -1,
  mem_storage: -1,
  disk_storage: -1,
  streams: -1,
  consumer: -1,
};

describe("NATS JWT accounts: creds files, and executors' permissions from one templated signing key", () => {
  let dir: string;
  let nats: EmbeddedNats;
  let account: KeyPair;
  let executorSigner: KeyPair;
  const children: Child[] = [];
  const raws: NatsConnection[] = [];

  /** Writes a creds file for a new user; `scoped` users are signed by the executor role's key. */
  async function credsFile(name: string, options: { scoped?: boolean; tags?: string[]; issuer?: KeyPair } = {}): Promise<string> {
    const user = createUser();
    const jwt = options.scoped
      ? await encodeUser(name, user, account.getPublicKey(), { tags: options.tags ?? [] }, { signer: executorSigner, scopedUser: true })
      : await encodeUser(name, user, options.issuer ?? account);
    const file = join(dir, `${name}.creds`);
    writeFileSync(file, fmtCreds(jwt, user));
    return file;
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dmcp-nats-jwt-"));
    const operator = createOperator();
    const system = createAccount();
    account = createAccount();
    executorSigner = createAccount();
    // The example's executor permissions, with the service and user names as template functions:
    // every user this key signs may serve only the service its `service:` tag names.
    const example = examplePermissions("svc-everything");
    // Templates fill whole subject tokens and leave queue names alone: the template allows the
    // service's request subject in any queue group (the config file can also name the group). The
    // work queue's consumer names hold the service inside a token, so they come from tags of their own.
    const template = (entry: string) =>
      entry
        .split(" ")[0]!
        .replace("svc-everything", "{{name()}}")
        .replace(/dmcp-work-everything-(normal|high)/g, "{{tag(work-$1)}}")
        .replace(/\beverything\b/g, "{{tag(service)}}");
    const executorRole = newScopedSigner(executorSigner, "executor", {
      pub: { allow: example.pub.map(template) },
      sub: { allow: example.sub.map(template) },
      resp: { max: -1, ttl: 10 * 60 * 1e9 },
    });
    const operatorJwt = await encodeOperator("dmcp-test", operator, { system_account: system.getPublicKey() });
    const systemJwt = await encodeAccount("SYS", system, {}, { signer: operator });
    const accountJwt = await encodeAccount("DMCP", account, { limits: NO_LIMITS, signing_keys: [executorRole] }, { signer: operator });
    const config = join(dir, "operator.conf");
    writeFileSync(
      config,
      [
        `operator: ${operatorJwt}`,
        `system_account: ${system.getPublicKey()}`,
        "resolver: MEMORY",
        `resolver_preload: {\n  ${system.getPublicKey()}: ${systemJwt}\n  ${account.getPublicKey()}: ${accountJwt}\n}`,
      ].join("\n"),
    );
    nats = await startTestNats({ extraArgs: ["-c", config] });
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled(raws.map((nc) => nc.close()));
    await Promise.allSettled(children.map((child) => child.stop()));
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("runs the gateway with --nats-creds and an executor whose creds a templated role key signed", async () => {
    const gatewayCreds = await credsFile("gateway");
    const executorCreds = await credsFile("svc-everything", { scoped: true, tags: EXECUTOR_TAGS("everything") });
    const executor = await wrapFixtureStdio(nats.url, "everything", ["--nats-creds", executorCreds, "--nats-inbox-prefix", "_INBOX.svc-everything", ...DURABLE]);
    children.push(executor);
    // Its inbox prefix is the one the executors' permissions name: durable answers go to the gateway's reply_to.
    const gateway = await startGatewayHttp(nats.url, ["--nats-creds", gatewayCreds, "--nats-inbox-prefix", "_INBOX.gateway"]);
    children.push(gateway);
    const client = await RawMcpClient.connect(new StreamableHTTPClientTransport(new URL(gateway.url)));
    try {
      await eventually(async () => (await client.toolNames()).includes("echo"), 30_000);
      const echo = (await client.result("tools/call", { name: "echo", arguments: { text: "over jwt" } })) as CallResult;
      expect(echo.content[0]?.text).toContain("over jwt");
      // A durable call: the executor's lane consumers, acknowledgements and result store, from the template.
      const slept = (await client.result("tools/call", { name: "sleep", arguments: { ms: 20 } })) as CallResult;
      expect(slept.content[0]?.text).toBe("slept 20");
      // Nothing refused but the advisories the example leaves to gateways (the answer was not read back from the store).
      expect(executor.stderr.filter((line) => /denied/.test(line) && !line.includes("MAX_DELIVERIES"))).toEqual([]);
    } finally {
      await client.close();
    }

    // The template bound the executor's user to its own service.
    const nc = await connect({ servers: nats.url, authenticator: credsAuthenticator(readFileSync(executorCreds)), inboxPrefix: "_INBOX.svc-everything" });
    raws.push(nc);
    const raw = recordingDenials(nc);
    nc.publish("dmcp.v1.hb.everything.x", "{}");
    nc.subscribe("dmcp.v1.req.other", { queue: "dmcp-other", callback: () => undefined });
    nc.publish("dmcp.v1.hb.other.x", "{}");
    nc.publish("$JS.API.CONSUMER.MSG.NEXT.DMCP_WORK.dmcp-work-other-normal", "{}");
    await raw.refused("subscription", "dmcp.v1.req.other");
    await raw.refused("publish", "$JS.API.CONSUMER.MSG.NEXT.DMCP_WORK.dmcp-work-other-normal");
    await raw.refused("publish", "dmcp.v1.hb.other.x");
    // Its own service's durable answers only, and no stream of its own making.
    await raw.refusesPublishing([
      "$JS.API.STREAM.INFO.KV_dmcp_results",
      "$JS.API.DIRECT.GET.KV_dmcp_results.$KV.dmcp_results.other.x",
      "$KV.dmcp_results.other.x",
      "$JS.API.STREAM.CREATE.KV_dmcp_registry",
      "$JS.API.STREAM.CREATE.DMCP_WORK",
    ]);
    expect(raw.denied.map((error) => error.subject)).not.toContain("dmcp.v1.hb.everything.x");
  });

  it("says clearly why a creds file does not get in: unknown account, missing file, not a creds file", async () => {
    const stranger = await credsFile("stranger", { issuer: createAccount() });
    const garbage = join(dir, "garbage.creds");
    writeFileSync(garbage, "not a creds file\n");
    const cases: [string, RegExp][] = [
      [stranger, /cannot connect to NATS at .*Authorization Violation.*refused the credentials/i],
      [join(dir, "missing.creds"), /cannot read the NATS credentials file .*missing\.creds/],
      [garbage, /cannot connect to NATS at .*unable to parse credentials/],
    ];
    for (const [file, message] of cases) {
      const child = runDmcp(["gateway", "--nats", nats.url, "--nats-creds", file, "--http", "0"]);
      children.push(child);
      expect(await child.exited).toBe(1);
      expect(child.stderr.join("\n")).toMatch(message);
    }
  });
});

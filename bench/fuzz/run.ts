/**
 * One fuzz run over every target, shared by `npm run fuzz` and test/integration/fuzz.long.test.ts: envelope parsing in
 * this process, then HTTP bodies, stdio lines and bus messages together, each with its share of the
 * inputs; every request among them must be answered within ANSWER_WITHIN_MS. Afterwards every process
 * must still be alive and answer a valid call on each edge, no process may have written an unhandled
 * rejection (or the like) to stderr, and the drop counters of the processes must match what the
 * oracle says they dropped.
 */
import { randomUUID } from "node:crypto";
import { createEnvelope, decodeEnvelope, encodeEnvelope } from "../../src/protocol/index.js";
import { EXPECTED, fuzzBus, type BusExpectations } from "./bus-target.js";
import type { MemoryFigures } from "./children.js";
import { fuzzEnvelopes } from "./envelope-target.js";
import { fuzzHttp } from "./http-target.js";
import { HttpSession } from "./mcp-peers.js";
import { metricSum, scrape } from "./metrics.js";
import { fuzzStdio } from "./stdio-target.js";
import { AGENT_SERVICE, EXECUTOR_INSTANCE, EXECUTOR_SERVICE, startSystem, type FuzzSystem } from "./system.js";
import { Tally } from "./tally.js";

export interface FuzzOptions {
  /** Inputs in all, shared out over the targets. */
  inputs: number;
  seed: number;
  verbose?: boolean;
  /** Progress lines (to stderr in the script). */
  log?: (line: string) => void;
}

/** Shares of the inputs per target: in-process parsing is cheap, so it gets the most. */
const SHARES = { envelope: 0.4, http: 0.2, stdio: 0.2, bus: 0.2 } as const;

export interface CounterCheck {
  what: string;
  expected: number;
  actual: number;
}

/** The HTTP, stdio and bus fuzz run together, in this many rounds, the live heap measured after each. */
const ROUNDS = 2;
/** When the live heap is measured: before the fuzz and after each round. */
export const HEAP_CHECKPOINTS = ["before", ...Array.from({ length: ROUNDS }, (_, round) => `after round ${round + 1}`)];

export interface HeapFigures {
  name: string;
  /** The live heap at each of HEAP_CHECKPOINTS. */
  bytes: number[];
}

export interface FuzzReport {
  seed: number;
  tallies: Tally[];
  counters: CounterCheck[];
  memory: MemoryFigures[];
  heap: HeapFigures[];
  /** Processes that exited during the run. */
  crashed: string[];
  /** Stderr lines such as unhandled rejections, by process. */
  trouble: string[];
  /** Log lines at error level, by process (reported, not failures). */
  loggedErrors: { name: string; count: number; examples: string[] }[];
  /** The valid calls after the fuzz: one per edge, with what went wrong if anything. */
  afterwards: { edge: string; ok: boolean; detail: string }[];
  sessionsOpenedOverHttp: number;
  durationMs: number;
}

export function isClean(report: FuzzReport): boolean {
  return (
    report.crashed.length === 0 &&
    report.trouble.length === 0 &&
    report.tallies.every((t) => t.crashes === 0 && t.classes.failed === 0 && t.accounted === t.tried && t.unansweredInTime === 0) &&
    report.counters.every((c) => c.expected === c.actual) &&
    report.afterwards.every((a) => a.ok)
  );
}

export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const log = options.log ?? (() => undefined);
  const began = Date.now();
  const share = (target: keyof typeof SHARES, round: number) => {
    const all = Math.max(ROUNDS, Math.round(options.inputs * SHARES[target]));
    return Math.floor(all / ROUNDS) + (round < all % ROUNDS ? 1 : 0);
  };
  log("starting nats-server, executor, agent and two gateways");
  const system = await startSystem({ verbose: options.verbose ?? false });
  try {
    const heap: HeapFigures[] = [];
    const heapCheckpoint = async () => {
      for (const { name, bytes } of await system.liveHeap()) {
        const figures = heap.find((h) => h.name === name) ?? heap[heap.push({ name, bytes: [] }) - 1]!;
        figures.bytes.push(bytes);
      }
    };
    system.memory.reset();
    await heapCheckpoint();
    const drops = await dropCounters(system);
    const reportsBefore = new Map(system.errorReports);
    const crashed: string[] = [];
    // A process that died is a crash of the targets that were running.
    const checkAlive = (tallies: Tally[]) => {
      for (const child of Object.values(system.children)) {
        if (!child.crashed || crashed.includes(child.name)) continue;
        crashed.push(child.name);
        for (const tally of tallies) tally.crash(`${child.name} exited (${child.exitInfo}) during the ${tally.target} fuzz\n${child.stderrTail()}`);
      }
    };
    log("fuzzing envelope parsing");
    const envelope = await fuzzEnvelopes(system.world, Math.max(1, Math.round(options.inputs * SHARES.envelope)), options.seed);
    checkAlive([envelope]);
    const listeners = { executor: { service: EXECUTOR_SERVICE, instance: EXECUTOR_INSTANCE }, agent: { service: AGENT_SERVICE, instance: system.agentInstance } };
    const http = { tally: new Tally("http"), expectedDrops: 0, sessionsOpened: 0 };
    const stdio = { tally: new Tally("stdio"), expectedDrops: 0 };
    const bus = { tally: new Tally("bus"), expected: Object.fromEntries(EXPECTED.map((name) => [name, 0])) as BusExpectations };
    // The three edges at once, as in real use: an announcement made on the bus meets the reads of HTTP
    // and stdio clients. In rounds, with the live heap measured after each.
    for (let round = 0; round < ROUNDS; round++) {
      log(`fuzzing HTTP bodies, stdio lines and bus messages at once (round ${round + 1} of ${ROUNDS})`);
      const seed = options.seed + 10 * (round + 1);
      const [h, i, b] = await Promise.all([
        fuzzHttp(system.httpUrl, system.world, share("http", round), seed + 1),
        fuzzStdio(system.stdio, system.world, share("stdio", round), seed + 2),
        fuzzBus(system.nc, system.world, listeners, share("bus", round), seed + 3),
      ]);
      checkAlive([h.tally, i.tally, b.tally]);
      http.tally.add(h.tally);
      http.expectedDrops += h.expectedDrops;
      http.sessionsOpened += h.sessionsOpened;
      stdio.tally.add(i.tally);
      stdio.expectedDrops += i.expectedDrops;
      bus.tally.add(b.tally);
      for (const name of EXPECTED) bus.expected[name] += b.expected[name];
      await heapCheckpoint();
    }

    log("checking counters and answering a valid call on each edge");
    const reports = (who: string) => (system.errorReports.get(who) ?? 0) - (reportsBefore.get(who) ?? 0);
    const gatewayChecks = (["gatewayHttp", "gatewayStdio"] as const).flatMap((gateway) =>
      (["heartbeat", "context", "registry"] as const).map((subject) => ({
        what: `${gateway === "gatewayHttp" ? "gateway-http" : "gateway-stdio"}: invalid ${subject} messages dropped`,
        expected: bus.expected[subject === "heartbeat" ? "gatewayHeartbeat" : subject === "context" ? "gatewayContext" : "gatewayRegistry"],
        read: (d: DropCounters) => d.busDrops[gateway][subject],
      })),
    );
    const counters = await settleCounters(system, drops, [
      { what: "gateway-http: client messages dropped (http)", expected: http.expectedDrops, read: (d) => d.clientDrops.gatewayHttp },
      { what: "gateway-stdio: client messages dropped (stdio)", expected: stdio.expectedDrops, read: (d) => d.clientDrops.gatewayStdio },
      ...gatewayChecks,
      { what: "executor: invalid cancellations dropped", expected: bus.expected.executorCancel, read: (d) => d.busDrops.executor.cancel },
      { what: "agent: invalid cancellations dropped", expected: bus.expected.agentCancel, read: (d) => d.busDrops.agent.cancel },
      { what: "agent: invalid context updates dropped", expected: bus.expected.agentContext, read: (d) => d.busDrops.agent.context },
      { what: "executor: error reports on dmcp.v1.err", expected: bus.expected.executorReports, read: () => reports(EXECUTOR_INSTANCE) },
      { what: "agent: error reports on dmcp.v1.err", expected: bus.expected.agentReports, read: () => reports(system.agentInstance) },
    ]);
    const afterwards = await validCalls(system);
    const memory = system.memory.stop();
    return {
      seed: options.seed,
      tallies: [envelope, http.tally, stdio.tally, bus.tally],
      counters,
      memory,
      heap,
      crashed,
      trouble: Object.values(system.children).flatMap((child) => child.trouble.map((line) => `${child.name}: ${line}`)),
      loggedErrors: Object.values(system.children).map((child) => ({ name: child.name, count: child.errorsLogged, examples: child.loggedErrors })),
      afterwards,
      sessionsOpenedOverHttp: http.sessionsOpened,
      durationMs: Date.now() - began,
    };
  } finally {
    await system.stop();
  }
}

interface DropCounters {
  clientDrops: { gatewayHttp: number; gatewayStdio: number };
  busDrops: Record<"gatewayHttp" | "gatewayStdio" | "executor" | "agent", Record<"cancel" | "heartbeat" | "context" | "registry", number>>;
}

async function dropCounters(system: FuzzSystem): Promise<DropCounters> {
  const texts = Object.fromEntries(await Promise.all(Object.entries(system.metricsUrls).map(async ([name, url]) => [name, await scrape(url)] as const))) as Record<
    keyof FuzzSystem["metricsUrls"],
    string
  >;
  const bus = (text: string) =>
    Object.fromEntries(
      (["cancel", "heartbeat", "context", "registry"] as const).map((subject) => [subject, metricSum(text, "dmcp_bus_messages_dropped_total", { subject })]),
    ) as Record<"cancel" | "heartbeat" | "context" | "registry", number>;
  return {
    clientDrops: {
      gatewayHttp: metricSum(texts.gatewayHttp, "dmcp_gateway_client_messages_dropped_total", { transport: "http" }),
      gatewayStdio: metricSum(texts.gatewayStdio, "dmcp_gateway_client_messages_dropped_total", { transport: "stdio" }),
    },
    busDrops: { gatewayHttp: bus(texts.gatewayHttp), gatewayStdio: bus(texts.gatewayStdio), executor: bus(texts.executor), agent: bus(texts.agent) },
  };
}

/** Reads the counters until they match what is expected or stop moving (messages may still be in flight). */
async function settleCounters(
  system: FuzzSystem,
  before: DropCounters,
  checks: { what: string; expected: number; read: (delta: DropCounters) => number }[],
): Promise<CounterCheck[]> {
  const until = Date.now() + 20_000;
  for (;;) {
    const now = await dropCounters(system);
    const delta = subtract(now, before);
    const results = checks.map((check) => ({ what: check.what, expected: check.expected, actual: check.read(delta) }));
    if (results.every((r) => r.expected === r.actual) || Date.now() > until) return results;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

function subtract(now: DropCounters, before: DropCounters): DropCounters {
  const bus = (a: Record<string, number>, b: Record<string, number>) =>
    Object.fromEntries(Object.keys(a).map((k) => [k, a[k]! - (b[k] ?? 0)])) as DropCounters["busDrops"]["agent"];
  return {
    clientDrops: { gatewayHttp: now.clientDrops.gatewayHttp - before.clientDrops.gatewayHttp, gatewayStdio: now.clientDrops.gatewayStdio - before.clientDrops.gatewayStdio },
    busDrops: {
      gatewayHttp: bus(now.busDrops.gatewayHttp, before.busDrops.gatewayHttp),
      gatewayStdio: bus(now.busDrops.gatewayStdio, before.busDrops.gatewayStdio),
      executor: bus(now.busDrops.executor, before.busDrops.executor),
      agent: bus(now.busDrops.agent, before.busDrops.agent),
    },
  };
}

/**
 * A valid call on each edge after the fuzz. Retried for a while: the fuzz may have made the gateways
 * drop the executor for a moment (a forged "stopping" heartbeat is valid dMCP), until its next heartbeat.
 */
async function validCalls(system: FuzzSystem): Promise<FuzzReport["afterwards"]> {
  const text = "still answering";
  const echoed = (result: unknown) => JSON.stringify(result).includes(text);
  const edges: [string, () => Promise<unknown>][] = [
    [
      "http",
      async () => {
        const session = await HttpSession.open(system.httpUrl);
        try {
          return await session.call("tools/call", { name: `${EXECUTOR_SERVICE}__echo`, arguments: { text } });
        } finally {
          await session.close();
        }
      },
    ],
    ["stdio", () => system.stdio.request("tools/call", { name: `${EXECUTOR_SERVICE}__echo`, arguments: { text } })],
    [
      "bus",
      async () => {
        const request = createEnvelope(
          "prompt_request",
          { service: AGENT_SERVICE, method: "tools/call", params: { name: `${AGENT_SERVICE}_echo`, arguments: { text } } },
          { sender: `fuzz-${randomUUID().slice(0, 8)}` },
        );
        const reply = await system.nc.request(`dmcp.v1.req.${AGENT_SERVICE}`, encodeEnvelope(request), { timeout: 10_000 });
        const decoded = decodeEnvelope(reply.data);
        return decoded.ok ? decoded.envelope : decoded.error.message;
      },
    ],
  ];
  return Promise.all(
    edges.map(async ([edge, call]) => {
      const until = Date.now() + 20_000;
      let detail = "";
      for (;;) {
        try {
          const result = await call();
          if (echoed(result)) return { edge, ok: true, detail: "answered" };
          detail = JSON.stringify(result).slice(0, 300);
        } catch (err) {
          detail = (err as Error).message;
        }
        if (Date.now() > until) return { edge, ok: false, detail };
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }),
  );
}

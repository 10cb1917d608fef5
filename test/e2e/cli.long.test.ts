/**
 * The `dmcp` command as users run it: help and usage errors, configuration errors with their exact
 * path, a NATS server that is not there, `dmcp up` end to end (embedded nats-server, executor,
 * gateway, `dmcp status`, orderly exit), and stdout reserved for the protocol in stdio mode.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually, freePort, isAlive, FIXTURE_BIN, runDmcp, runDmcpToEnd, wrapFixtureStdio, type Child, type FinishedRun } from "../support/processes.js";
import { connectBus, ContextStreams } from "../../src/bus/index.js";
import { connectCommandBus } from "../../src/cli/bus.js";
import { BusError, createEnvelope, encodeEnvelope, ErrorCode, subjects } from "../../src/protocol/index.js";
import { silentLogger } from "../../src/util/logger.js";

/** Runs `dmcp ARGS` to completion (killing it after the timeout) and collects both streams. */
function dmcp(args: string[], timeoutMs = 15_000): Promise<FinishedRun> {
  return runDmcpToEnd(args, { timeoutMs });
}

/** Resolves true when something accepts a TCP connection on the port, false when it is refused. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "dmcp-cli-test-"));
  tempDirs.push(dir);
  return dir;
}
function tempConfig(content: string): string {
  const path = join(tempDir(), "dmcp.config.json");
  writeFileSync(path, content);
  return path;
}

afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

describe("help", () => {
  it("prints the overview for dmcp --help and dmcp help wrap", async () => {
    const overview = await dmcp(["--help"]);
    expect(overview.code).toBe(0);
    for (const command of ["up", "gateway", "wrap", "status"]) expect(overview.stdout).toContain(command);
    expect(overview.stdout).toMatch(/Usage: dmcp <command>/);
    expect(overview.stdout).toMatch(/Without --nats, a command connects to \$DMCP_NATS_URL, else to the bus of the dmcp up running on\s+this machine/);

    const wrap = await dmcp(["help", "wrap"]);
    expect(wrap.code).toBe(0);
    expect(wrap.stdout).toMatch(/Usage: dmcp wrap/);
    expect(wrap.stdout).toContain("--name");
  });

  it.each([
    ["up", ["--config", "--http", "--stdio", "--nats", "--data-dir", "--no-http"]],
    ["gateway", ["--nats", "--stdio", "--http", "--host", "--call-timeout"]],
    ["wrap", ["--name", "--url", "--header", "--nats", "--heartbeat", "--transport"]],
    ["status", ["--nats", "--json", "--data-dir"]],
    ["tail", ["--nats", "--data-dir", "--last"]],
  ])("dmcp %s --help names the command's options", async (command, flags) => {
    const { code, stdout, stderr } = await dmcp([command, "--help"]);
    expect(code).toBe(0);
    expect(stdout).toMatch(new RegExp(`Usage: dmcp ${command}`));
    for (const flag of flags) expect(stdout).toContain(flag);
    expect(stderr).toBe("");
  });

  it("exits 2 on an unknown command", async () => {
    const { code, stderr } = await dmcp(["frobnicate"]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/unknown command "frobnicate"/);
  });
});

describe("usage errors exit 2 with a clear message", () => {
  it.each([
    ["wrap without --name", ["wrap", "--", "cmd"], /needs --name/],
    ["wrap without a command or --url", ["wrap", "--name", "x"], /needs -- COMMAND.*or --url/],
    ["wrap with an invalid service name", ["wrap", "--name", "bad.name", "--", "cmd"], /invalid service name "bad\.name"/],
    ["gateway without --stdio or --http", ["gateway"], /needs --stdio or --http/],
    ["an unknown option", ["wrap", "--name", "x", "--bogus", "--", "cmd"], /--bogus/],
  ])("%s", async (_, args, message) => {
    const { code, stdout, stderr } = await dmcp(args);
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
    expect(stdout).toBe("");
  });
});

describe("failures exit 1 with a clear message", () => {
  it("dmcp gateway when nothing listens at the NATS URL", async () => {
    const port = await freePort();
    const { code, stderr } = await dmcp(["gateway", "--nats", `nats://127.0.0.1:${port}`, "--http", "0"], 15_000);
    expect(code).toBe(1);
    expect(stderr).toMatch(new RegExp(`^dmcp gateway: cannot connect to NATS at nats://127\\.0\\.0\\.1:${port}`, "m"));
  });

  it.each(["gateway", "status", "tail", "wrap"])("dmcp %s advises a nats-server with -js or dmcp up when nothing listens at --nats", async (command) => {
    const port = await freePort();
    const extra = { gateway: ["--http", "0"], status: [], tail: [], wrap: ["--name", "x", "--", "true"] }[command]!;
    const { code, stderr } = await dmcp([command, "--nats", `nats://127.0.0.1:${port}`, "--log-level", "silent", ...extra], 15_000);
    expect(code).toBe(1);
    const line = stderr.split("\n").find((l) => l.startsWith(`dmcp ${command}: cannot connect to NATS at nats://127.0.0.1:${port}`));
    expect(line).toContain("Start a nats-server with JetStream there (nats-server -js)");
    expect(line).toContain(`dmcp ${command} uses the bus of the dmcp up running on this machine`);
    expect(line).not.toContain("leave out --nats");
  });

  it("dmcp up --nats advises leaving out --nats when nothing listens there", async () => {
    const port = await freePort();
    const { code, stderr } = await dmcp(["up", "--config", tempConfig("{}"), "--nats", `nats://127.0.0.1:${port}`, "--no-http", "--log-level", "silent"], 15_000);
    expect(code).toBe(1);
    expect(stderr).toMatch(/^dmcp up: cannot connect to NATS at .*leave out --nats and the config's nats\.url to let `dmcp up` start its own\.$/m);
  });

  describe("a NATS server without JetStream", () => {
    let plain: EmbeddedNats;
    beforeAll(async () => {
      plain = await startTestNats({ jetstream: false });
    });
    afterAll(async () => {
      await plain?.stop();
    });

    it.each(["gateway", "status", "tail", "wrap"])("dmcp %s tells to start it with -js", async (command) => {
      const extra = { gateway: ["--http", "0"], status: [], tail: [], wrap: ["--name", "x", "--", process.execPath, FIXTURE_BIN, "--stdio"] }[command]!;
      const { code, stderr } = await dmcp([command, "--nats", plain.url, "--log-level", "silent", ...extra], 15_000);
      expect(code).toBe(1);
      expect(stderr).toContain(
        `dmcp ${command}: the NATS server at ${plain.url} has no JetStream, which dMCP needs (registry, context, durable calls): start it with JetStream (nats-server -js)`,
      );
    });

    it("is refused with a BUS_UNAVAILABLE BusError", async () => {
      const refused = await connectCommandBus("status", { nats: plain.url }, { name: "cli-test", logger: silentLogger() }).catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(BusError);
      expect(refused).toMatchObject({ code: ErrorCode.BusUnavailable, message: expect.stringContaining("has no JetStream") });
    });
  });

  it("dmcp up with an invalid server entry names its path", async () => {
    const { code, stderr } = await dmcp(["up", "--config", tempConfig(`{"servers":{"x":{"command":42}}}`), "--log-level", "silent"]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/servers\.x\b/);
  });

  it("dmcp up with an invalid gateway port names its path", async () => {
    const { code, stderr } = await dmcp(["up", "--config", tempConfig(`{"gateway":{"http":{"port":"x"}}}`), "--log-level", "silent"]);
    expect(code).toBe(1);
    expect(stderr).toContain("gateway.http.port");
  });

  it("dmcp up with a config that is not JSON", async () => {
    const path = tempConfig(`{ "servers": `);
    const { code, stderr } = await dmcp(["up", "--config", path, "--log-level", "silent"]);
    expect(code).toBe(1);
    expect(stderr).toContain(`config ${path} is not valid JSON`);
  });
});

describe("dmcp up", () => {
  let up: Child;
  let mcpUrl: string;
  let natsUrl: string;

  beforeAll(async () => {
    const config = tempConfig(JSON.stringify({ servers: { fixture: { command: process.execPath, args: [FIXTURE_BIN, "--stdio", "--name", "fixture"], sessionIdle: "1500ms" } } }));
    up = runDmcp(["up", "--config", config, "--http", "0", "--data-dir", tempDir()]);
    const [, url, nats, services] = await up.waitFor(/^dmcp up: MCP at (\S+); NATS at (\S+); services: (.*)$/);
    mcpUrl = url!;
    natsUrl = nats!;
    expect(services).toBe("fixture");
  });

  afterAll(async () => {
    await up?.stop();
  });

  it("serves the configured server through the gateway to an SDK client", async () => {
    const client = new Client({ name: "cli-test", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl)));
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toContain("add");
      const result = await client.callTool({ name: "add", arguments: { a: 40, b: 2 } });
      expect(result.structuredContent).toEqual({ sum: 42 });
    } finally {
      await client.close();
    }
  });

  it("closes a client session's upstream session after the config's sessionIdle", async () => {
    const client = new Client({ name: "idler", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl)));
    try {
      const whoami = await client.callTool({ name: "whoami", arguments: {} });
      const pid = Number((whoami.content as { text: string }[])[0]!.text.split(":")[1]);
      expect(isAlive(pid)).toBe(true);
      await eventually(() => !isAlive(pid));
    } finally {
      await client.close();
    }
  });

  it("dmcp status --json lists the service with one ready replica and its tools", async () => {
    const { code, stdout } = await dmcp(["status", "--nats", natsUrl, "--json"]);
    expect(code).toBe(0);
    const status = JSON.parse(stdout) as { services: Record<string, { replicas: { instance: string; status: string }[]; tools: string[] }> };
    expect(Object.keys(status.services)).toEqual(["fixture"]);
    const fixture = status.services.fixture!;
    expect(fixture.replicas).toHaveLength(1);
    expect(fixture.replicas[0]!.status).toBe("ready");
    expect(fixture.replicas[0]).toMatchObject({ kind: "executor", profile: null });
    expect(fixture.tools).toEqual(expect.arrayContaining(["echo", "add", "whoami"]));
  });

  it("dmcp status prints the service, its instance, status and tools", async () => {
    const json = JSON.parse((await dmcp(["status", "--nats", natsUrl, "--json"])).stdout) as {
      services: Record<string, { replicas: { instance: string }[] }>;
    };
    const instance = json.services.fixture!.replicas[0]!.instance;
    const { code, stdout } = await dmcp(["status", "--nats", natsUrl]);
    expect(code).toBe(0);
    const row = stdout.split("\n").find((line) => line.startsWith("fixture "));
    expect(row).toBeDefined();
    expect(row).toContain(instance);
    expect(row).toMatch(/\bexecutor\s+ready\b/);
    for (const tool of ["echo", "add", "whoami"]) expect(row).toContain(tool);
    expect(stdout).toMatch(/1 service\(s\), 1 replica\(s\)/);
  });

  it("stops everything on SIGTERM, exits 0 and takes its nats-server down", async () => {
    const port = Number(new URL(natsUrl).port);
    expect(await accepts(port)).toBe(true);
    up.kill("SIGTERM");
    expect(await up.exited).toBe(0);
    expect(await accepts(port)).toBe(false);
  });
});

describe("stdout belongs to the protocol", () => {
  let nats: EmbeddedNats;
  let executor: Child;

  beforeAll(async () => {
    nats = await startTestNats();
    executor = await wrapFixtureStdio(nats.url, "fixture");
  });

  afterAll(async () => {
    await executor?.stop();
    await nats?.stop();
  });

  it("dmcp gateway --stdio writes nothing but JSON-RPC to stdout, and logs to stderr", async () => {
    const gateway = runDmcp(["gateway", "--stdio", "--nats", nats.url, "--log-level", "debug"], { stdin: "pipe" });
    const lines: string[] = [];
    const answered = new Set<number>();
    let onAnswer: () => void = () => undefined;
    createInterface({ input: gateway.process.stdout! }).on("line", (line) => {
      lines.push(line);
      try {
        const id = (JSON.parse(line) as { id?: unknown }).id;
        if (typeof id === "number") answered.add(id);
      } catch {
        // checked below
      }
      onAnswer();
    });
    const until = (id: number) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no answer to request ${id}; stdout:\n${lines.join("\n")}`)), 15_000);
        const check = () => {
          if (answered.has(id)) {
            clearTimeout(timer);
            resolve();
          }
        };
        onAnswer = check;
        check();
      });
    const send = (message: Record<string, unknown>) => gateway.process.stdin!.write(`${JSON.stringify({ jsonrpc: "2.0", ...message })}\n`);

    send({ id: 1, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "t", version: "1" } } });
    await until(1);
    send({ method: "notifications/initialized" });
    send({ id: 2, method: "tools/call", params: { name: "echo", arguments: { text: "hi" } } });
    await until(2);
    gateway.process.stdin!.end();
    await gateway.exited;

    expect(lines.length).toBeGreaterThanOrEqual(2);
    for (const line of lines) {
      const message = JSON.parse(line) as Record<string, unknown>;
      expect(message.jsonrpc).toBe("2.0");
      expect("id" in message || "method" in message).toBe(true);
    }
    // The logs went somewhere: stderr.
    expect(gateway.stderr.length).toBeGreaterThan(0);
  });
});

describe("dmcp tail", () => {
  it("prints stored and live context updates and error notifications, one per line", async () => {
    const nats = await startTestNats();
    const bus = await connectBus({ servers: nats.url, name: "tail-test", logger: silentLogger() });
    const streams = new ContextStreams(bus, "tail-sensor");
    await streams.ensureStream();
    for (const bar of [1, 2, 3]) await streams.publish("plant.pressure", { bar });
    const tail = runDmcp(["tail", "--nats", nats.url, "plant.pressure", "plant.>", "--last", "2"]);
    const lines: string[] = [];
    tail.process.stdout!.on("data", (chunk: Buffer) => lines.push(...chunk.toString().split("\n").filter(Boolean)));
    try {
      await tail.waitFor(/watching/);
      await streams.publish("plant.temperature", { c: 70 });
      bus.publish(subjects.errors("someone"), encodeEnvelope(createEnvelope("error_notification", { code: "UPSTREAM_UNAVAILABLE", message: "it is down" }, { sender: "someone" })));
      bus.publish(subjects.context("plant.bad"), new TextEncoder().encode("garbage"));
      await eventually(() => lines.some((line) => line.includes("ERROR")) && lines.some((line) => line.includes("plant.temperature")));
      await eventually(() => tail.stderr.some((line) => /malformed update on dmcp\.v1\.ctx\.plant\.bad/.test(line)));
      expect(lines[0]).toMatch(/plant\.pressure #\d+ tail-sensor \{"bar":2\}$/);
      expect(lines[1]).toMatch(/plant\.pressure #\d+ tail-sensor \{"bar":3\}$/);
      expect(lines.find((line) => line.includes("plant.temperature"))).toMatch(/plant\.temperature tail-sensor \{"c":70\}$/);
      expect(lines.find((line) => line.includes("ERROR"))).toMatch(/ERROR someone UPSTREAM_UNAVAILABLE: it is down$/);
      tail.kill("SIGINT");
      expect(await tail.exited).toBe(0);
    } finally {
      await tail.stop();
      await bus.drain();
      await nats.stop();
    }
  });

  it("refuses a topic pattern that is not one", async () => {
    const tail = runDmcp(["tail", "--nats", "nats://127.0.0.1:9", "bad topic"]);
    expect(await tail.exited).toBe(2);
  });
});

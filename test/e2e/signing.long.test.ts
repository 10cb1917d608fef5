/**
 * Message security (PROTOCOL.md §14): signed envelopes verified against trusted keys, forged, altered,
 * replayed, untrusted and unsigned messages rejected with an error_notification and never acted on,
 * context history still readable, and sealed payloads that the broker sees only as ciphertext.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { fromPublic } from "@nats-io/nkeys";
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as z from "zod";
import { Agent } from "../../src/agent/index.js";
import { connectBus, ContextStreams, InstancePresence, RegistryView, Requester, type Bus, type RegistryProblem } from "../../src/bus/index.js";
import { CONTEXT_STREAM, createEnvelope, encodeEnvelope, REGISTRY_BUCKET, subjects, type Envelope } from "../../src/protocol/index.js";
import { CurveKey, MessageSecurity, SigningKey, splitSignature, type SecurityOptions } from "../../src/security/index.js";
import { parseConfig } from "../../src/cli/config.js";
import { securityFromConfig } from "../../src/cli/security.js";
import { silentLogger } from "../../src/util/logger.js";
import { connectRawNats, provisionTestStreams, startTestNats, type EmbeddedNats } from "../support/nats.js";
import { gatewayTransport, RawMcpClient } from "../support/mcp-client.js";
import { DMCP_BIN, eventually, REPO_ROOT, startGatewayHttp, wrapFixtureStdio, type Child } from "../support/processes.js";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const bytesOf = (value: string) => new TextEncoder().encode(value);

/** The same message with the key in its signature replaced: it claims to come from `claimed`. */
function claimKey(message: Uint8Array, claimed: string): Uint8Array {
  const split = splitSignature(message)!;
  return bytesOf(text(message).replace(`"key":"${split.publicKey}"`, `"key":"${claimed}"`));
}

interface Report {
  subject: string;
  code: string;
  data: Record<string, unknown>;
}

/** Collects the error_notifications published on dmcp.v1.err.> by whoever rejected something. */
function collectReports(nc: NatsConnection): { reports: Report[]; sub: Subscription } {
  const reports: Report[] = [];
  const sub = nc.subscribe(subjects.errorsAll(), {
    callback: (err, msg) => {
      if (err) return;
      const envelope = JSON.parse(text(msg.data)) as { payload: { code: string; data?: Record<string, unknown> } };
      reports.push({ subject: msg.subject, code: envelope.payload.code, data: envelope.payload.data ?? {} });
    },
  });
  return { reports, sub };
}

describe("signed envelopes between callers, agents and the registry", () => {
  const gatewayKey = SigningKey.generate();
  const agentKey = SigningKey.generate();
  const strangerKey = SigningKey.generate();
  const impostorServiceKey = SigningKey.generate();
  let nats: EmbeddedNats;
  /** A client of the test's own, outside message security: it sends and stores whatever it likes. */
  let raw: NatsConnection;
  let agentBus: Bus;
  let callerBus: Bus;
  let agent: Agent;
  let agentMetrics: Registry;
  let caller: Requester;
  let reports: Report[];
  let reportSub: Subscription;
  let total = 0;
  const seen: unknown[] = [];
  const buses: Bus[] = [];

  async function busWith(name: string, options?: SecurityOptions): Promise<Bus> {
    const bus = await connectBus({ servers: nats.url, name, logger: silentLogger(), ...(options ? { security: new MessageSecurity(options) } : {}) });
    buses.push(bus);
    return bus;
  }

  /** A tools/call of `bump` as the gateway would send it, encoded by `security` (signed if it has a key). */
  function bumpRequest(security: MessageSecurity | undefined, amount: number, edit: (envelope: Envelope) => void = () => undefined): Uint8Array {
    const id = randomUUID();
    const envelope = createEnvelope(
      "prompt_request",
      { service: "counter", method: "tools/call", params: { name: "bump", arguments: { amount } } },
      { id, correlationId: id, sender: "gateway-test" },
    );
    edit(envelope);
    return security ? security.encode(envelope) : encodeEnvelope(envelope);
  }

  /** Sends raw bytes to the agent's request subject and returns the code of its answer (undefined: a result). */
  async function send(bytes: Uint8Array): Promise<string | undefined> {
    const reply = await raw.request(subjects.request("counter"), bytes, { timeout: 10_000 });
    const answer = JSON.parse(text(reply.data)) as { type: string; payload: { code?: string } };
    return answer.type === "error_notification" ? answer.payload.code : undefined;
  }

  /** Sends a request that must be refused: answered with `code`, reported on the agent's error subject, not executed. */
  async function expectRejected(bytes: Uint8Array, code: string): Promise<void> {
    const before = total;
    const reported = reports.length;
    expect(await send(bytes)).toBe(code);
    expect(total).toBe(before);
    const report = await eventually(() => reports.slice(reported).find((r) => r.subject === subjects.errors(agent.instance)));
    expect(report.code).toBe(code);
  }

  beforeAll(async () => {
    nats = await startTestNats();
    raw = await connectRawNats(nats.url, { name: "raw" });
    // The streams, as a gateway creates them at start: the agent waits for them.
    await provisionTestStreams(nats.url);
    ({ reports, sub: reportSub } = collectReports(raw));
    agentMetrics = new Registry();
    agentBus = await busWith("agent");
    agent = new Agent({
      bus: agentBus,
      name: "counter",
      version: "1.0.0",
      logger: silentLogger(),
      security: new MessageSecurity({ signingKey: agentKey, trustedKeys: [gatewayKey.publicKey], requireSignatures: true, metrics: agentMetrics }),
    });
    agent.tool("bump", { description: "adds to a counter", input: z.object({ amount: z.number() }) }, ({ amount }) => {
      total += amount;
      return { total };
    });
    agent.subscribe("sec.>", (event) => void seen.push(event.data));
    await agent.start();
    callerBus = await busWith("caller", {
      signingKey: gatewayKey,
      serviceKeys: { counter: [agentKey.publicKey], impostor: [impostorServiceKey.publicKey] },
      requireSignatures: true,
    });
    caller = new Requester(callerBus, "gateway-test");
  });

  afterAll(async () => {
    reportSub?.unsubscribe();
    caller?.close();
    await agent?.stop();
    for (const bus of buses) await bus.drain();
    await raw?.drain();
    await nats?.stop();
  });

  it("signs exactly the bytes before the signature, as nkeys verifies them", () => {
    const security = new MessageSecurity({ signingKey: gatewayKey });
    const envelope = createEnvelope("context_update", { topic: "a.b", data: { x: "é" } }, { sender: "s" });
    const message = security.encode(envelope);
    const split = splitSignature(message)!;
    expect(text(split.signed)).toBe(text(encodeEnvelope(envelope)));
    expect(split.publicKey).toBe(gatewayKey.publicKey);
    expect(fromPublic(gatewayKey.publicKey).verify(split.signed, split.signature)).toBe(true);
    // The signature is the last field of ordinary JSON.
    const parsed = JSON.parse(text(message)) as Record<string, unknown>;
    expect(Object.keys(parsed).at(-1)).toBe("signature");
    expect(parsed.signature).toMatchObject({ alg: "ed25519", key: gatewayKey.publicKey });
  });

  it("seals what the published schema describes; only the holder of the key opens it, unaltered", () => {
    const require = createRequire(import.meta.url);
    const Ajv2020 = (
      require("ajv/dist/2020.js") as { default: new (options: object) => { addSchema(s: object): void; getSchema(id: string): ((v: unknown) => boolean) | undefined } }
    ).default;
    const ajv = new Ajv2020({ strict: true, validateFormats: false });
    const schema = (file: string) => {
      ajv.addSchema(JSON.parse(readFileSync(join(REPO_ROOT, "schemas", file), "utf8")) as object);
      return ajv.getSchema(`https://dmcp-gateway.dev/schemas/v0.1/${file}`)!;
    };
    const [envelopeSchema, sealedSchema] = [schema("envelope.schema.json"), schema("sealed_envelope.schema.json")];
    const sealKey = CurveKey.generate();
    const sender = new MessageSecurity({ signingKey: gatewayKey, sealTo: { vault: sealKey.publicKey } });
    const envelope = createEnvelope("prompt_request", { service: "vault", method: "tools/call", params: { name: "open", arguments: { pin: "1234" } } }, { sender: "g" });
    expect(envelopeSchema(JSON.parse(text(sender.encode(envelope))))).toBe(true);
    const sealed = sender.encode(envelope, sender.requestSeal("vault"));
    expect(text(sealed)).not.toContain("1234");
    expect(sealedSchema(JSON.parse(text(sealed)))).toBe(true);
    expect(envelopeSchema(JSON.parse(text(sealed)))).toBe(false);
    const opened = new MessageSecurity({ trustedKeys: [gatewayKey.publicKey], sealKeys: { vault: sealKey } }).decode(sealed, { receiver: "r" });
    expect(opened.ok && opened.envelope.payload).toEqual(envelope.payload);
    expect(opened.ok && opened.sealed?.to).toBe(sealKey.publicKey);
    const wrongKey = new MessageSecurity({ sealKeys: { vault: CurveKey.generate() } }).decode(sealed, { receiver: "r" });
    expect(!wrongKey.ok && wrongKey.error.code).toBe("DECRYPTION_FAILED");
    // An unsigned sealed message with one character of its box changed does not open either.
    const plain = new MessageSecurity({ sealTo: { vault: sealKey.publicKey } });
    const unsigned = text(plain.encode(envelope, plain.requestSeal("vault")));
    const box = /"data":"([^"]+)"/.exec(unsigned)![1]!;
    const flipped = unsigned.replace(box, `${box.slice(0, 40)}${box[40] === "A" ? "B" : "A"}${box.slice(41)}`);
    const tampered = new MessageSecurity({ sealKeys: { vault: sealKey } }).decode(bytesOf(flipped), { receiver: "r" });
    expect(!tampered.ok && tampered.error.code).toBe("DECRYPTION_FAILED");
  });

  it("carries a valid signed call both ways, verified at each end", async () => {
    const result = await caller.call("counter", "tools/call", { name: "bump", arguments: { amount: 1 } }, { timeoutMs: 15_000 });
    expect(result.structuredContent).toEqual({ total: 1 });
    expect(total).toBe(1);
    const metrics = await agentMetrics.metrics();
    expect(metrics).toMatch(/dmcp_messages_accepted_total\{verification="verified"\} [1-9]/);
  });

  it("rejects an altered request (one byte of the payload changed)", async () => {
    const altered = text(bumpRequest(agentSecurityOf(gatewayKey), 1)).replace('"amount":1', '"amount":9');
    await expectRejected(bytesOf(altered), "SIGNATURE_INVALID");
  });

  it("rejects a forged request: signed with another key while claiming the gateway's", async () => {
    await expectRejected(claimKey(bumpRequest(agentSecurityOf(strangerKey), 1), gatewayKey.publicKey), "SIGNATURE_INVALID");
  });

  it("rejects a request signed by a key it does not trust", async () => {
    await expectRejected(bumpRequest(agentSecurityOf(strangerKey), 1), "UNTRUSTED_SIGNER");
  });

  it("rejects an unsigned request when signatures are required", async () => {
    await expectRejected(bumpRequest(undefined, 1), "SIGNATURE_REQUIRED");
  });

  it("executes a signed request once and rejects the same message published again", async () => {
    const message = bumpRequest(agentSecurityOf(gatewayKey), 5);
    const before = total;
    expect(await send(message)).toBeUndefined();
    expect(total).toBe(before + 5);
    await expectRejected(message, "REPLAYED");
  });

  it("rejects a signed request whose timestamp lies outside the window", async () => {
    const old = new Date(Date.now() - 10 * 60 * 1000).toISOString();
    await expectRejected(
      bumpRequest(agentSecurityOf(gatewayKey), 1, (envelope) => (envelope.timestamp = old)),
      "REPLAYED",
    );
    const metrics = await agentMetrics.metrics();
    for (const code of ["SIGNATURE_INVALID", "UNTRUSTED_SIGNER", "SIGNATURE_REQUIRED", "REPLAYED"]) {
      expect(metrics).toMatch(new RegExp(`dmcp_messages_rejected_total\\{code="${code}"\\} [1-9]`));
    }
  });

  it("ignores forged, misattributed and altered replies at the caller; the genuine answer wins", async () => {
    const responder = raw.subscribe(subjects.request("impostor"), {
      callback: (err, msg: Msg) => {
        if (err || !msg.reply) return;
        const request = JSON.parse(text(msg.data)) as { correlation_id: string };
        const answer = (key: SigningKey, result: Record<string, unknown>) =>
          agentSecurityOf(key).encode(createEnvelope("prompt_response", { result }, { sender: "impostor-1", correlationId: request.correlation_id }));
        msg.respond(answer(strangerKey, { who: "stranger" }));
        // The agent's key is trusted, but only to speak for "counter".
        msg.respond(answer(agentKey, { who: "counter" }));
        msg.respond(bytesOf(text(answer(impostorServiceKey, { who: "impostor" })).replace('"impostor"}', '"altered!"}')));
        msg.respond(answer(impostorServiceKey, { who: "impostor" }));
      },
    });
    await raw.flush();
    const reported = reports.length;
    try {
      const result = await caller.call("impostor", "tools/call", { name: "x" }, { timeoutMs: 15_000 });
      expect(result).toEqual({ who: "impostor" });
    } finally {
      responder.unsubscribe();
    }
    const codes = await eventually(() => {
      const mine = reports
        .slice(reported)
        .filter((r) => r.subject === subjects.errors("gateway-test"))
        .map((r) => r.code);
      return mine.length >= 3 ? mine : undefined;
    });
    expect(codes.sort()).toEqual(["SIGNATURE_INVALID", "UNTRUSTED_SIGNER", "UNTRUSTED_SIGNER"]);
  });

  it("lists only announcements signed by keys trusted for their service, and reports the others", async () => {
    const viewBus = await busWith("view", { trustedKeys: [gatewayKey.publicKey], serviceKeys: { counter: [agentKey.publicKey] }, requireSignatures: true });
    const view = new RegistryView(viewBus);
    const problems: RegistryProblem[] = [];
    view.onInvalid((problem) => void problems.push(problem));
    // A stranger announcing itself as "counter", and the counter's own key announcing another service.
    const strangerBus = await busWith("stranger", { signingKey: strangerKey });
    const load = () => ({ status: "ready" as const, inflight: 0, handled: 0 });
    const fake = new InstancePresence(strangerBus, { service: "counter", instance: "counter-fake", intervalMs: 500, load });
    const sideline = new InstancePresence(await busWith("sideline", { signingKey: agentKey }), { service: "other", instance: "other-1", intervalMs: 500, load });
    const announcement = { catalog: { tools: [], resources: [], resource_templates: [], prompts: [] }, capabilities: {} };
    await fake.start(announcement);
    await sideline.start(announcement);
    try {
      await view.start();
      await eventually(() => view.list().some((live) => live.instance === agent.instance));
      const rejected = await eventually(() => {
        const byInstance = new Map(problems.map((p) => [p.instance, p]));
        return byInstance.has("counter-fake") && byInstance.has("other-1") ? byInstance : undefined;
      });
      expect(rejected.get("counter-fake")?.code).toBe("UNTRUSTED_SIGNER");
      expect(rejected.get("other-1")?.code).toBe("UNTRUSTED_SIGNER");
      expect(rejected.get("other-1")?.message).toMatch(/announcement rejected: untrusted signer: .* to speak for service "other"/);
      // Their heartbeats are refused too, and they never appear.
      await eventually(() => problems.some((p) => p.instance === "counter-fake" && p.message.startsWith("heartbeat rejected: UNTRUSTED_SIGNER")));
      expect(view.list().map((live) => live.instance)).toEqual([agent.instance]);
    } finally {
      await fake.stop();
      await sideline.stop();
      await view.stop();
    }
  });

  it("seals calls to the key the live replicas announce, and only while they agree on it", async () => {
    // A permissive reader: what it learns from the registry is what its requestSeal uses.
    const viewSecurity = new MessageSecurity({});
    const watcher = new RegistryView((await busWith("seal-view")).withCodec(viewSecurity));
    const [first, second] = [CurveKey.generate(), CurveKey.generate()];
    const load = () => ({ status: "ready" as const, inflight: 0, handled: 0 });
    const replica = async (instance: string, key: CurveKey) =>
      new InstancePresence(await busWith(instance, { sealKeys: { sealed: key } }), { service: "sealed", instance, intervalMs: 500, load });
    const announcement = { catalog: { tools: [], resources: [], resource_templates: [], prompts: [] }, capabilities: {} };
    const [one, two] = [await replica("sealed-1", first), await replica("sealed-2", second)];
    await watcher.start();
    try {
      await one.start(announcement);
      await eventually(() => viewSecurity.requestSeal("sealed")?.to === first.publicKey);
      await two.start(announcement);
      await eventually(() => watcher.list().filter((live) => live.service === "sealed").length === 2);
      expect(viewSecurity.requestSeal("sealed")).toBeUndefined();
      await two.stop();
      await eventually(() => viewSecurity.requestSeal("sealed")?.to === first.publicKey);
      await one.stop();
      await eventually(() => viewSecurity.requestSeal("sealed") === undefined);
    } finally {
      await watcher.stop();
    }
  });

  it("delivers trusted context updates to an agent and rejects untrusted and replayed ones", async () => {
    const trusted = new ContextStreams(await busWith("publisher", { signingKey: gatewayKey }), "publisher");
    const stranger = new ContextStreams(await busWith("stranger-publisher", { signingKey: strangerKey }), "stranger");
    const reported = reports.length;
    await stranger.publish("sec.a", { from: "stranger" });
    const { seq } = await trusted.publish("sec.a", { from: "trusted" });
    await eventually(() => seen.some((data) => JSON.stringify(data) === '{"from":"trusted"}'));
    expect(seen).not.toContainEqual({ from: "stranger" });
    // The stored message published again (a replay by whoever can publish on the subject).
    const stored = await (await jetstreamManager(raw)).streams.getMessage(CONTEXT_STREAM, { seq });
    raw.publish(stored.subject, stored.data);
    const codes = await eventually(() => {
      const mine = reports
        .slice(reported)
        .filter((r) => r.subject === subjects.errors(agent.instance))
        .map((r) => r.code);
      return mine.includes("UNTRUSTED_SIGNER") && mine.includes("REPLAYED") ? mine : undefined;
    });
    expect(codes).toContain("REPLAYED");
    expect(seen.filter((data) => JSON.stringify(data) === '{"from":"trusted"}')).toHaveLength(1);
  });

  it("reads stored history older than the window (judged by when the stream stored it), but not a copy of it", async () => {
    const readerBus = await busWith("reader", { trustedKeys: [gatewayKey.publicKey], requireSignatures: true, replayWindowMs: 1000 });
    const reader = new ContextStreams(readerBus, "reader");
    const publisher = new ContextStreams(await busWith("history-publisher", { signingKey: gatewayKey }), "history-publisher");
    const { seq, envelope } = await publisher.publish("sec.history", { n: 1 });
    // Wait until the update is older than the reader's window.
    await eventually(() => Date.now() - Date.parse(envelope.timestamp) > 1500, 10_000);
    const history = await reader.history("sec.history");
    expect(history.map((entry) => entry.seq)).toEqual([seq]);
    // Read again: the same stored message, not a replay.
    expect((await reader.history("sec.history")).map((entry) => entry.seq)).toEqual([seq]);
    // Published again now, it is stale by the stream's clock, and the live reader refuses it as well.
    const live: unknown[] = [];
    const bad: string[] = [];
    const watch = reader.watch(
      "sec.history",
      (entry) => void live.push(entry.envelope.payload.data),
      (problem) => void bad.push(problem.error.code),
    );
    await readerBus.flush();
    const stored = await (await jetstreamManager(raw)).streams.getMessage(CONTEXT_STREAM, { seq });
    raw.publish(stored.subject, stored.data);
    await eventually(() => bad.includes("REPLAYED"));
    watch.unsubscribe();
    expect(live).toEqual([]);
    const skipped: string[] = [];
    const after = await reader.history("sec.history", { onBad: (problem) => void skipped.push(problem.error.code) });
    expect(after.map((entry) => entry.seq)).toEqual([seq]);
    expect(skipped).toEqual(["REPLAYED"]);
  });

  function agentSecurityOf(key: SigningKey): MessageSecurity {
    return new MessageSecurity({ signingKey: key });
  }
});

describe("dmcp gateway and dmcp wrap with signatures required and sealed payloads", () => {
  let nats: EmbeddedNats;
  let dir: string;
  /** A client of the test's own, outside message security: it sends and stores whatever it likes. */
  let raw: NatsConnection;
  let executor: Child;
  let plain: Child;
  let gateway: Child & { url: string };
  let client: RawMcpClient;
  let gatewayPublic: string;
  let executorPublic: string;
  const keyFile = (name: string) => join(dir, name);

  /** `dmcp keygen`: writes the seed, prints the public key. */
  function keygen(file: string, curve = false): string {
    return execFileSync(process.execPath, [DMCP_BIN, "keygen", ...(curve ? ["--curve"] : []), "--out", keyFile(file)], { encoding: "utf8" }).trim();
  }

  /** The `vault` executor: it signs, trusts only the gateway, requires signatures and opens sealed payloads. */
  const wrapVault = () =>
    wrapFixtureStdio(nats.url, "vault", ["--sign-key", keyFile("vault.seed"), "--trust-key", gatewayPublic, "--require-signatures", "--seal-key", keyFile("vault.xkey")]);

  beforeAll(async () => {
    nats = await startTestNats();
    dir = mkdtempSync(join(tmpdir(), "dmcp-keys-"));
    gatewayPublic = keygen("gateway.seed");
    executorPublic = keygen("vault.seed");
    const sealPublic = keygen("vault.xkey", true);
    expect(gatewayPublic).toMatch(/^U[A-Z2-7]{55}$/);
    expect(sealPublic).toMatch(/^X[A-Z2-7]{55}$/);
    raw = await connectRawNats(nats.url, { name: "raw" });
    executor = await wrapVault();
    gateway = await startGatewayHttp(nats.url, ["--sign-key", keyFile("gateway.seed"), "--trust-key", `vault=${executorPublic}`, "--require-signatures"]);
    client = await RawMcpClient.connect(gatewayTransport("http", { natsUrl: nats.url, httpUrl: gateway.url }));
    await eventually(async () => (await client.toolNames()).includes("echo"));
  });

  afterAll(async () => {
    await client?.close();
    await gateway?.stop();
    await executor?.stop();
    await plain?.stop();
    await raw?.drain();
    await nats?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("prints the public key of a seed file", () => {
    const shown = execFileSync(process.execPath, [DMCP_BIN, "keygen", "--public", keyFile("vault.seed")], { encoding: "utf8" }).trim();
    expect(shown).toBe(executorPublic);
  });

  it("calls through the bus while the broker sees only ciphertext of the arguments and the result", async () => {
    const secret = `top-secret-${randomUUID()}`;
    const traffic: { subject: string; data: string }[] = [];
    const tap = raw.subscribe(">", { callback: (err, msg) => void (err ? undefined : traffic.push({ subject: msg.subject, data: text(msg.data) })) });
    await raw.flush();
    const sealedAnswer = () => traffic.some((m) => m.subject.startsWith("_INBOX.") && m.data.includes('"type":"prompt_response"') && m.data.includes('"sealed"'));
    try {
      const result = await client.result("tools/call", { name: "echo", arguments: { text: secret } });
      expect(JSON.stringify(result.content)).toContain(secret);
      // The tap is another connection: the answer may reach it after it reached the gateway.
      await eventually(sealedAnswer, 5000);
    } finally {
      tap.unsubscribe();
    }
    // A client session's calls go to the replica it is pinned to.
    const request = traffic.find((m) => m.subject === subjects.request("vault") || m.subject.startsWith("dmcp.v1.inst.vault."));
    expect(request?.data).toContain('"sealed":{"from":"X');
    expect(request?.data).not.toContain('"payload"');
    expect(sealedAnswer()).toBe(true);
    expect(traffic.filter((m) => m.data.includes(secret))).toEqual([]);
    const metrics = await (await fetch(gateway.url.replace(/\/mcp$/, "/metrics"))).text();
    expect(metrics).toMatch(/dmcp_messages_accepted_total\{verification="verified"\} [1-9]/);
  });

  it("says so when a gateway without message security sees a service that announces a seal key: its calls travel in clear", async () => {
    const unsecured = await startGatewayHttp(nats.url);
    try {
      await unsecured.waitFor(/announces a seal key, but this process runs without message security/, 30_000);
      expect(unsecured.stderr.find((entry) => entry.includes("without message security"))).toContain('"service":"vault"');
    } finally {
      await unsecured.stop();
    }
    // The gateway with message security seals to the key by itself, and says nothing of the kind.
    expect(gateway.stderr.some((entry) => entry.includes("without message security"))).toBe(false);
  });

  it("leaves out an executor that does not sign, and reports its announcement", async () => {
    const reports = collectReports(raw);
    try {
      plain = await wrapFixtureStdio(nats.url, "plain");
      const report = await eventually(() => reports.reports.find((r) => r.code === "SIGNATURE_REQUIRED" && r.data.service === "plain"));
      expect(report.subject).toMatch(/^dmcp\.v1\.err\.gateway-/);
      const names = await client.toolNames();
      expect(names).toContain("echo");
      expect(names.filter((name) => name.startsWith("plain__"))).toEqual([]);
    } finally {
      reports.sub.unsubscribe();
    }
  });

  it("keeps an instance whose registry entry an unsigned delete or purge removes; its signed leave or its missed heartbeats remove it", async () => {
    const metric = async (pattern: RegExp) => Number(pattern.exec(await (await fetch(gateway.url.replace(/\/mcp$/, "/metrics"))).text())?.[1] ?? 0);
    const ignoredDeletes = () => metric(/dmcp_bus_messages_dropped_total\{subject="registry",reason="signature_required"\} (\d+)/);
    const evictions = () => metric(/dmcp_registry_heartbeats_missed_total\{service="vault"\} (\d+)/);
    const listed = async () => (await client.toolNames()).includes("echo");
    // A raw client that may write the bucket deletes, then purges, the genuine instance's entry.
    const registry = await new Kvm(raw).open(REGISTRY_BUCKET);
    const key = await eventually(async () => {
      for await (const found of await registry.keys("vault.*")) return found;
      return undefined;
    });
    const before = await ignoredDeletes();
    await registry.delete(key);
    await eventually(async () => (await ignoredDeletes()) === before + 1);
    expect(await listed()).toBe(true);
    await registry.purge(key);
    await eventually(async () => (await ignoredDeletes()) === before + 2);
    expect(await listed()).toBe(true);

    // Killed, it stops heartbeating and is evicted.
    executor.kill("SIGKILL");
    await eventually(async () => !(await listed()));
    expect(await evictions()).toBe(1);

    // Stopped (SIGTERM), it leaves at once by its signed "stopping" heartbeat: no eviction.
    executor = await wrapVault();
    await eventually(listed);
    await executor.stop();
    await eventually(async () => !(await listed()));
    expect(await evictions()).toBe(1);
  }, 60_000);
});

describe("security options of the commands", () => {
  const dmcp = (args: string[]) => spawnSync(process.execPath, [DMCP_BIN, ...args], { encoding: "utf8", env: { ...process.env, DMCP_NATS_URL: "nats://127.0.0.1:9" } });

  it("are named by --help", () => {
    const shared = ["--sign-key", "--trust-key", "--require-signatures", "--replay-window"];
    for (const [command, own] of [
      ["gateway", ["--seal-to"]],
      ["wrap", ["--seal-key"]],
      ["up", []],
    ] as const) {
      const help = dmcp([command, "--help"]).stdout;
      for (const flag of [...shared, ...own]) expect(help, `${command} ${flag}`).toContain(flag);
    }
    expect(dmcp(["--help"]).stdout).toContain("keygen");
  });

  it("refuse a missing key file, a key of the wrong kind and a malformed trusted key before connecting", () => {
    const dir = mkdtempSync(join(tmpdir(), "dmcp-badkeys-"));
    try {
      const curve = join(dir, "curve.xkey");
      execFileSync(process.execPath, [DMCP_BIN, "keygen", "--curve", "--out", curve]);
      const cases: [string[], RegExp][] = [
        [["--sign-key", join(dir, "missing.seed")], /--sign-key: cannot read key file/],
        [["--sign-key", curve], /a curve \(xkey\) seed cannot sign/],
        [["--trust-key", "UNOTAKEY"], /not a public signing nkey/],
        [["--seal-to", "vault=UABC"], /not a public curve key/],
      ];
      for (const [flags, message] of cases) {
        const result = dmcp(["gateway", "--http", "0", ...flags]);
        expect(result.status, flags.join(" ")).toBe(2);
        expect(result.stderr).toMatch(message);
      }
      // keygen never overwrites a key.
      expect(dmcp(["keygen", "--out", curve]).status).toBe(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("read the config file's security section, keys relative to the file", () => {
    expect(() => parseConfig({ security: { trustedKeys: ["nope"] } })).toThrow(/security\.trustedKeys\.0/);
    const dir = mkdtempSync(join(tmpdir(), "dmcp-config-keys-"));
    try {
      const publicKey = execFileSync(process.execPath, [DMCP_BIN, "keygen", "--out", join(dir, "up.seed")], { encoding: "utf8" }).trim();
      const config = parseConfig({ security: { signKey: "up.seed", requireSignatures: true, replayWindow: "30s", serviceKeys: { files: [publicKey] } } });
      const options = securityFromConfig(config.security, dir);
      expect(options).toMatchObject({ requireSignatures: true, replayWindowMs: 30_000, serviceKeys: { files: [publicKey] } });
      expect(new MessageSecurity(options).signer).toBe(publicKey);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

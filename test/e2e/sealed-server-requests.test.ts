/**
 * The server-to-client traffic of sealed calls on the bus (PROTOCOL.md §14.3, §16, §19.2): an
 * executor seals an upstream session's requests (sampling, elicitation, roots) and notifications to
 * the caller key of the call they belong to, the gateway seals the client's answer back, and a
 * gateway the client answers through seals it to the key the request's id names; so a raw subscriber
 * on `dmcp.v1.gw.>` and the reply inboxes never sees what the upstream asked or the client answered.
 * A gateway that cannot open or cannot seal fails the request at once with DECRYPTION_FAILED. Real
 * nats-server, `dmcp wrap --seal-key` around two fixtures, three gateways, the MCP SDK's client.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEnvelope } from "../../src/protocol/index.js";
import { CurveKey, MessageSecurity } from "../../src/security/index.js";
import { connectRawNats, startTestNats, type EmbeddedNats } from "../support/nats.js";
import { DMCP_BIN, eventually, REPO_ROOT, runDmcp, startGatewayHttp, wrapFixtureStdio, type Child } from "../support/processes.js";
import { eventReader, openSession, parseEvents } from "../support/sse.js";

const CONFORMANCE_BIN = `${REPO_ROOT}dist/test/support/fixtures/conformance-server.js`;
/** What no byte on the bus may hold: it is in what the upstream asks and what the client answers only. */
const MARKER = "MARKER-5d1e-sealed-client-traffic";

type Gateway = Child & { url: string };

let nats: EmbeddedNats;
let dir: string;
let executors: Child[] = [];
/** `sealing` and `other` run with message security, each with a caller key of its own; `plain` without. */
let sealing: Gateway;
let other: Gateway;
let plain: Gateway;
let raw: NatsConnection;
let taps: Subscription[] = [];
const onTheBus: { subject: string; text: string }[] = [];

beforeAll(async () => {
  nats = await startTestNats();
  dir = mkdtempSync(join(tmpdir(), "dmcp-sealed-s2c-"));
  const servicePublic = execFileSync(process.execPath, [DMCP_BIN, "keygen", "--curve", "--out", join(dir, "service.xkey")], { encoding: "utf8" }).trim();
  const sealKey = ["--seal-key", join(dir, "service.xkey")];
  const conformance = runDmcp(["wrap", "--name", "conf", "--nats", nats.url, "--heartbeat", "500", ...sealKey, "--", process.execPath, CONFORMANCE_BIN, "--stdio"]);
  executors = [conformance, await wrapFixtureStdio(nats.url, "vault", sealKey)];
  await conformance.waitFor(/executor serving/, 30_000);
  const sealTo = ["--seal-to", `conf=${servicePublic}`, "--seal-to", `vault=${servicePublic}`];
  // The first creates the streams; the others then start together.
  sealing = await startGatewayHttp(nats.url, sealTo);
  [other, plain] = await Promise.all([startGatewayHttp(nats.url, sealTo), startGatewayHttp(nats.url)]);
  raw = await connectRawNats(nats.url);
  // Requests and notifications on the gateways' session subjects, forwarded answers, every reply, and the SSE events on the bus.
  taps = ["dmcp.v1.gw.>", "_INBOX.>", "dmcp.v1.sse.>"].map((subject) => raw.subscribe(subject));
  for (const tap of taps) {
    void (async () => {
      for await (const msg of tap) onTheBus.push({ subject: msg.subject, text: msg.string() });
    })();
  }
}, 150_000);

afterAll(async () => {
  for (const tap of taps) tap.unsubscribe();
  await raw?.close();
  await Promise.allSettled([sealing, other, plain, ...executors].filter(Boolean).map((child) => child.stop()));
  await nats?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Nothing the bus carried holds the marker; and it carried sealed messages on `subject` (a regex). */
function expectSealedOnly(subject: RegExp): void {
  const leaks = onTheBus.filter((message) => message.text.includes(MARKER));
  expect(leaks, JSON.stringify(leaks.slice(0, 2))).toEqual([]);
  expect(onTheBus.some((message) => subject.test(message.subject) && message.text.includes('"sealed"'))).toBe(true);
}

/** An SDK client that answers sampling, elicitation and roots with the marker. */
async function sdkClient(url: string) {
  const client = new Client({ name: "sealed", version: "1.0.0" }, { capabilities: { sampling: {}, elicitation: { form: {} }, roots: { listChanged: true } } });
  const asked: string[] = [];
  client.setRequestHandler("sampling/createMessage", (request) => {
    asked.push(JSON.stringify(request.params));
    return { role: "assistant", content: { type: "text", text: `${MARKER}-sampled` }, model: "test-model" };
  });
  client.setRequestHandler("elicitation/create", (request) => {
    asked.push(JSON.stringify(request.params));
    return { action: "accept", content: { username: `${MARKER}-user`, email: "user@example.com" } };
  });
  client.setRequestHandler("roots/list", () => ({ roots: [{ uri: `file:///${MARKER}-root`, name: "root" }] }));
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  await eventually(async () => {
    const names = (await client.listTools()).tools.map((tool) => tool.name).join();
    return names.includes("ask_client") && names.includes("test_sampling");
  }, 60_000);
  return { client, asked };
}

function textOf(result: unknown): string {
  return ((result as { content?: { text?: string }[] }).content ?? []).map((content) => content.text ?? "").join("");
}

async function toolNamed(client: Client, suffix: string): Promise<string> {
  return (await client.listTools()).tools.find((tool) => tool.name === suffix || tool.name.endsWith(`__${suffix}`))!.name;
}

describe("the server-to-client requests of a sealed call", () => {
  it("cross the bus sealed both ways: sampling and elicitation in a call, their answers back", async () => {
    const { client, asked } = await sdkClient(sealing.url);
    try {
      const sampled = await client.callTool({ name: await toolNamed(client, "test_sampling"), arguments: { prompt: `${MARKER}-prompt` } });
      expect(textOf(sampled)).toContain(`${MARKER}-sampled`);
      const elicited = await client.callTool({ name: await toolNamed(client, "test_elicitation"), arguments: { message: `${MARKER}-question` } });
      expect(textOf(elicited)).toContain(`${MARKER}-user`);
      // The client got what the upstream asked, in clear: only the bus saw it sealed.
      expect(asked.join()).toContain(`${MARKER}-prompt`);
      expect(asked.join()).toContain(`${MARKER}-question`);
    } finally {
      await client.close();
    }
    expectSealedOnly(/^dmcp\.v1\.gw\.[^.]+\.session$/);
  });

  it("and outside a call: a roots request and its answer, and a session notification, sealed as the session's latest call, on the bus's GET stream too", async () => {
    const { client } = await sdkClient(sealing.url);
    const notified: string[] = [];
    client.fallbackNotificationHandler = async (notification) => void notified.push(JSON.stringify(notification));
    try {
      await client.callTool({ name: await toolNamed(client, "ask_client"), arguments: { method: "roots/list", ms: 50 } });
      const answers = await eventually(async () => {
        const text = textOf(await client.callTool({ name: await toolNamed(client, "client_answers"), arguments: {} }));
        return text.includes(`${MARKER}-root`) ? text : undefined;
      }, 15_000);
      expect(answers).toContain(`file:///${MARKER}-root`);
      await client.callTool({ name: await toolNamed(client, "elicitation_complete"), arguments: { id: `${MARKER}-done` } });
      await eventually(() => notified.some((text) => text.includes(`${MARKER}-done`)), 15_000);
    } finally {
      await client.close();
    }
    expectSealedOnly(/^dmcp\.v1\.gw\.[^.]+\.session$/);
    // The notification went outside the call, as a context_update on the session subject: sealed.
    const notes = onTheBus.filter((message) => message.subject.endsWith(".session") && message.text.includes('"context_update"'));
    expect(notes.length).toBeGreaterThan(0);
    for (const note of notes) expect(note.text).toContain('"sealed"');
    // The gateway wrote it and the roots request on the session's GET stream, which it follows: sealed on the bus.
    expect(onTheBus.some((message) => message.subject.endsWith("._GET_stream") && message.text.includes('"sealed"'))).toBe(true);
  });
});

/** Opens the session's GET stream on `url` and reads it in the background: `text()` is what it carried so far. */
async function openGetStream(url: string, headers: () => Record<string, string>) {
  const response = await fetch(url, {
    method: "GET",
    headers: { accept: "text/event-stream", "mcp-session-id": headers()["mcp-session-id"]!, "mcp-protocol-version": "2025-11-25" },
  });
  expect(response.status).toBe(200);
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  void (async () => {
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done) return;
      text += decoder.decode(value, { stream: true });
    }
  })();
  const messages = () => parseEvents(text).flatMap((event) => (event.data.startsWith("{") ? [JSON.parse(event.data) as Record<string, unknown>] : []));
  return { text: () => text, messages, close: () => reader.cancel() };
}

describe("sealed traffic outside a call while the client's GET stream is open on another gateway", () => {
  it("goes on the bus's GET stream sealed to that gateway's key, which opens it: the client gets it there", async () => {
    const headers = await openSession(sealing.url, undefined, 'elicitation_complete"', { roots: { listChanged: true } });
    // `other` takes the session up with its GET stream and becomes the listener its record names, with its caller key.
    const get = await openGetStream(other.url, headers);
    let id = 10;
    const callOnSealing = async (tool: string, args: Record<string, unknown>) =>
      (
        await fetch(sealing.url, {
          method: "POST",
          headers: headers(),
          body: JSON.stringify({ jsonrpc: "2.0", id: ++id, method: "tools/call", params: { name: tool, arguments: args } }),
        })
      ).text();
    try {
      // Until `sealing` has read the record, what it writes there is sealed to its own key, which `other` skips.
      await eventually(
        async () => {
          await callOnSealing("vault__elicitation_complete", { id: `${MARKER}-get-${id}` });
          return get.text().includes(`${MARKER}-get-`);
        },
        30_000,
        500,
      );
      // A request between calls (asked while no call runs: one asked during a call goes on the call's stream), answered through
      // `other`, which passes the answer on sealed to `sealing`'s key.
      const request = await eventually(async () => {
        await callOnSealing("vault__ask_client", { method: "roots/list", ms: 300 });
        return eventually(() => get.messages().find((message) => message.method === "roots/list"), 3000).catch(() => undefined);
      }, 30_000);
      expect(request.id).toMatch(/^dmcp-\d+\.X[A-Z2-7]{55}@/);
      const answer = { jsonrpc: "2.0", id: request.id, result: { roots: [{ uri: `file:///${MARKER}-get-root`, name: "root" }] } };
      expect((await fetch(other.url, { method: "POST", headers: headers(), body: JSON.stringify(answer) })).status).toBe(202);
      await eventually(async () => (await callOnSealing("vault__client_answers", {})).includes(`${MARKER}-get-root`), 15_000);
    } finally {
      await get.close();
    }
    const leaks = onTheBus.filter((message) => message.text.includes(MARKER));
    expect(leaks, JSON.stringify(leaks.slice(0, 2))).toEqual([]);
    // On the GET stream: boxes from `sealing`'s key to `other`'s.
    const boxes = onTheBus
      .filter((message) => message.subject.endsWith("._GET_stream"))
      .map((message) => (JSON.parse(message.text) as { sealed?: { from: string; to: string } }).sealed);
    expect(boxes.some((box) => box !== undefined && box.from !== box.to)).toBe(true);
  });
});

/** Starts `test_sampling` with a progress token on the sealing gateway; the stream and the request the client is asked. */
async function samplingCall(headers: () => Record<string, string>, id: number) {
  const call = { jsonrpc: "2.0", id, method: "tools/call", params: { name: "conf__test_sampling", arguments: { prompt: `${MARKER}-${id}` }, _meta: { progressToken: `t${id}` } } };
  const response = await fetch(sealing.url, { method: "POST", headers: headers(), body: JSON.stringify(call) });
  const stream = eventReader(response);
  const request = JSON.parse((await stream.until("sampling/createMessage")).at(-1)!.data) as { id: string };
  return { stream, request };
}

const sampledAnswer = (id: string, text: string) => ({ jsonrpc: "2.0", id, result: { role: "assistant", content: { type: "text", text }, model: "m" } });

describe("a client's answer to a sealed request posted to another gateway", () => {
  it("crosses to the gateway that asked sealed to the key the request's id names, from a gateway with a key of its own", async () => {
    const headers = await openSession(sealing.url, undefined, '"test_sampling"', { sampling: {} });
    const { stream, request } = await samplingCall(headers, 2);
    expect(request.id).toMatch(/^dmcp-\d+\.X[A-Z2-7]{55}@/);
    // The other gateway takes the session up on this POST and passes the answer on.
    await eventually(async () => {
      const response = await fetch(other.url, { method: "POST", headers: headers(), body: JSON.stringify(sampledAnswer(request.id, `${MARKER}-through-other`)) });
      return response.status === 202;
    }, 15_000);
    const answer = JSON.parse((await stream.until('"result"')).at(-1)!.data) as Record<string, unknown>;
    expect(answer).toMatchObject({ id: 2, result: { content: [{ text: expect.stringContaining(`${MARKER}-through-other`) }] } });
    await stream.cancel();
    expectSealedOnly(/^dmcp\.v1\.gw\.[^.]+\.answer$/);
  });

  it("through a gateway without message security: not passed on in clear, and the request fails at once with DECRYPTION_FAILED", async () => {
    const headers = await openSession(sealing.url, undefined, '"test_sampling"', { sampling: {} });
    const { stream, request } = await samplingCall(headers, 3);
    await eventually(async () => {
      const response = await fetch(plain.url, { method: "POST", headers: headers(), body: JSON.stringify(sampledAnswer(request.id, `${MARKER}-through-plain`)) });
      return response.status === 202;
    }, 15_000);
    // The call ends (the upstream's request failed) long before its deadline, with no trace of the answer.
    const end = (await stream.until('"id":3')).at(-1)!.data;
    expect(end).toMatch(/cannot seal the answer to X[A-Z2-7]{55}/);
    expect(end).not.toContain(MARKER);
    await stream.cancel();
    expect(onTheBus.filter((message) => message.text.includes(MARKER))).toEqual([]);
  });
});

describe("a sealed server-to-client request the gateway cannot open", () => {
  it("is answered DECRYPTION_FAILED, in clear, at once", async () => {
    const session = onTheBus.find((message) => /^dmcp\.v1\.gw\.[^.]+\.session$/.test(message.subject))?.subject;
    expect(session).toBeDefined();
    // An executor sealing to a caller key the gateway does not hold.
    const serviceKey = CurveKey.generate();
    const executor = new MessageSecurity({ sealKeys: { conf: serviceKey } });
    const request = createEnvelope("prompt_request", { service: "conf", method: "roots/list", params: { note: MARKER } }, { sender: "conf-stranger", sessionId: "s-1" });
    const bytes = executor.encode(request, { from: serviceKey.publicKey, to: CurveKey.generate().publicKey });
    const reply = JSON.parse(new TextDecoder().decode((await raw.request(session!, bytes, { timeout: 10_000 })).data)) as Record<string, unknown>;
    expect(reply).toMatchObject({ type: "error_notification", payload: { code: "DECRYPTION_FAILED" } });
    expect(JSON.stringify(reply)).toMatch(/a key this receiver does not hold/);
  });
});

/**
 * Fuzz target: bodies POSTed to the Streamable HTTP gateway at /mcp, under an initialized session, a
 * made-up one or none, with right and wrong Accept, Content-Type and protocol version headers.
 *
 * Every POST must get an HTTP answer; when the transport takes the body (200 or 202), every request in
 * it must be answered within ANSWER_WITHIN_MS, and every notification or response in it the gateway
 * does not act on must be counted in dmcp_gateway_client_messages_dropped_total (checked at the end
 * against what was sent).
 */
import { randomUUID } from "node:crypto";
import fc, { type Arbitrary } from "fast-check";
import { draw, jsonRpcInput, type FuzzInput, type FuzzWorld } from "./arbitraries.js";
import { answerKind, deleteSession, type HttpAnswer, HttpSession, MCP_HEADERS, postMcp, type RpcMessage } from "./mcp-peers.js";
import { forEachConcurrently, notificationOutcome, parseMessages } from "./outcomes.js";
import { mcpNameField, requestedVersion } from "../../src/protocol/index.js";
import { preview, Tally, type InputOutcomes } from "./tally.js";

interface HttpCase extends FuzzInput {
  session: "initialized" | "unknown" | "none";
  headers: Record<string, string>;
}

const CONCURRENCY = 8;

function httpCase(world: FuzzWorld): Arbitrary<HttpCase> {
  const header = (name: string, right: string, wrong: string[]) =>
    fc.oneof(
      { weight: 12, arbitrary: fc.constant({ [name]: right }) },
      { weight: 1, arbitrary: fc.constant({}) },
      { weight: 1, arbitrary: fc.constantFrom(...wrong).map((value) => ({ [name]: value })) },
    );
  return fc
    .tuple(
      jsonRpcInput(world),
      fc.constantFrom<HttpCase["session"]>("initialized", "initialized", "initialized", "initialized", "initialized", "initialized", "none", "none", "unknown"),
      header("accept", MCP_HEADERS.accept, ["application/json", "text/event-stream", "*/*", "text/html"]),
      header("content-type", MCP_HEADERS["content-type"], ["text/plain", "application/json; charset=latin1", "multipart/form-data"]),
      header("mcp-protocol-version", MCP_HEADERS["mcp-protocol-version"], ["1999-01-01", "", "2025-06-18"]),
      fc.boolean(),
    )
    .map(([input, session, accept, contentType, version, stateless]) => {
      // Without a session, half the time with the headers 2026-07-28 asks for, read from the body: the stateless path.
      const headers = { ...accept, ...contentType, ...(session === "none" && stateless ? statelessHeaders(input.bytes) : version) } as Record<string, string>;
      return { ...input, session, headers };
    })
    .filter((c) => !cancelsItsOwnRequest(c.bytes));
}

/** The MCP-Protocol-Version, Mcp-Method and Mcp-Name headers of a 2026-07-28 request, as its body names them (none an HTTP header cannot carry). */
function statelessHeaders(bytes: Uint8Array): Record<string, string> {
  const [message] = parseMessages(bytes);
  const params = typeof message?.params === "object" && message.params !== null ? (message.params as Record<string, unknown>) : {};
  const field = typeof message?.method === "string" ? mcpNameField(message.method) : undefined;
  const candidates = {
    "mcp-protocol-version": requestedVersion(params) ?? "2026-07-28",
    "mcp-method": message?.method,
    "mcp-name": field === undefined ? undefined : params[field],
  };
  return Object.fromEntries(Object.entries(candidates).filter((entry): entry is [string, string] => typeof entry[1] === "string" && HEADER_VALUE.test(entry[1])));
}

/** A header value fetch sends as it is: printable ASCII, no white space at either end. */
const HEADER_VALUE = /^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/;

/**
 * A batch that cancels one of its own requests: MCP says a cancelled request gets no answer, and the
 * transport keeps the POST's stream open until every request in it is answered, so the POST never ends.
 */
function cancelsItsOwnRequest(bytes: Uint8Array): boolean {
  const messages = parseMessages(bytes);
  const ids = new Set(messages.filter(isRequest).map((m) => m.id));
  return messages.some((m) => m.method === "notifications/cancelled" && ids.has((m.params as { requestId?: unknown } | undefined)?.requestId));
}

export interface HttpFuzzResult {
  tally: Tally;
  /** Client messages the gateway should have counted as dropped. */
  expectedDrops: number;
  /** Sessions that fuzz inputs opened (each closed again by the harness). */
  sessionsOpened: number;
}

export async function fuzzHttp(url: string, world: FuzzWorld, count: number, seed: number): Promise<HttpFuzzResult> {
  const tally = new Tally("http");
  // One session per lane: the SDK pairs answers with requests by id per session, so two POSTs in flight
  // with the same id (which JSON-RPC forbids a client) leave one of them unanswered.
  const idle = await Promise.all(Array.from({ length: CONCURRENCY }, () => HttpSession.open(url)));
  const all = [...idle];
  const result: HttpFuzzResult = { tally, expectedDrops: 0, sessionsOpened: 0 };
  await forEachConcurrently(draw(httpCase(world), count, seed), CONCURRENCY, async (input) => {
    const one = tally.begin();
    const home = idle.pop()!;
    try {
      await fuzzOne(url, home, input, one, result);
    } finally {
      idle.push(home);
    }
  });
  await Promise.all(all.map((session) => session.close()));
  return result;
}

async function fuzzOne(url: string, home: HttpSession, input: HttpCase, one: InputOutcomes, result: HttpFuzzResult): Promise<void> {
  const headers = {
    ...input.headers,
    ...(input.session === "initialized" ? { "mcp-session-id": home.id } : input.session === "unknown" ? { "mcp-session-id": randomUUID() } : {}),
  };
  let answer: HttpAnswer;
  try {
    answer = await postMcp(url, input.bytes, headers);
  } catch (err) {
    one.fail("no HTTP answer", `${input.source} ${preview(input.bytes)}: ${(err as Error).message}`);
    result.tally.answeredAfter(Number.POSITIVE_INFINITY, () => `${input.session} session ${preview(input.bytes)}`);
    return;
  }
  if (answer.sessionId && answer.sessionId !== home.id) {
    result.sessionsOpened++;
    await deleteSession(url, answer.sessionId);
  }
  // 200 and 202: the transport took the body and handed its messages to the gateway.
  const taken = answer.status === 200 || answer.status === 202 ? parseMessages(input.bytes) : [];
  // A 202 without a session is the stateless (2026-07-28) path, which acts on no notification.
  const stateless = answer.status === 202 && input.session === "none";
  for (const message of taken) {
    if (isRequest(message)) {
      const at = answer.messages.findIndex((m) => m.id === message.id && !("method" in m));
      if (at === -1) one.fail("request not answered", `${preview(input.bytes)} (status ${answer.status})`);
      result.tally.answeredAfter(at === -1 ? Number.POSITIVE_INFINITY : answer.arrivedAfterMs[at]!, () => `${input.session} session ${preview(input.bytes)}`);
      continue;
    }
    const outcome = stateless ? ({ class: "dropped", kind: "notification without a session (counted)" } as const) : notificationOutcome(message);
    one.record(outcome.class, outcome.kind);
    if (outcome.class === "dropped") result.expectedDrops++;
  }
  const responses = answer.messages.filter((m) => !("method" in m));
  for (const response of responses) one.record("answered", `${answer.status} ${answerKind(response)}`);
  if (answer.unparsed > 0) one.fail("unparsable answer", `${preview(input.bytes)} (status ${answer.status})`);
  if (responses.length === 0 && taken.length === 0) one.record("answered", `${answer.status} without a JSON-RPC body`);
}

function isRequest(message: RpcMessage): boolean {
  return typeof message.method === "string" && message.id !== undefined;
}

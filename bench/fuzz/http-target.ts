/**
 * Fuzz target: bodies POSTed to the Streamable HTTP gateway at /mcp, under an initialized session, a
 * made-up one or none, with right and wrong Accept, Content-Type and protocol version headers.
 *
 * Every POST must get an HTTP answer; when the transport takes the body (200 or 202), every request in
 * it must be answered, and every notification or response in it the gateway does not act on must be
 * counted in dmcp_gateway_client_messages_dropped_total (checked at the end against what was sent).
 */
import { randomUUID } from "node:crypto";
import fc, { type Arbitrary } from "fast-check";
import { draw, jsonRpcInput, type FuzzInput, type FuzzWorld } from "./arbitraries.js";
import { answerKind, deleteSession, HttpSession, MCP_HEADERS, postMcp, type RpcMessage } from "./mcp-peers.js";
import { forEachConcurrently, notificationOutcome, parseMessages } from "./outcomes.js";
import { preview, Tally, type InputOutcomes } from "./tally.js";

interface HttpCase extends FuzzInput {
  session: "initialized" | "unknown" | "none";
  headers: Record<string, string>;
}

const CONCURRENCY = 8;

function httpCase(world: FuzzWorld): Arbitrary<HttpCase> {
  const header = (name: string, right: string, wrong: string[]) =>
    fc.oneof({ weight: 12, arbitrary: fc.constant({ [name]: right }) }, { weight: 1, arbitrary: fc.constant({}) }, { weight: 1, arbitrary: fc.constantFrom(...wrong).map((value) => ({ [name]: value })) });
  return fc
    .tuple(
      jsonRpcInput(world),
      fc.constantFrom<HttpCase["session"]>("initialized", "initialized", "initialized", "initialized", "initialized", "initialized", "none", "none", "unknown"),
      header("accept", MCP_HEADERS.accept, ["application/json", "text/event-stream", "*/*", "text/html"]),
      header("content-type", MCP_HEADERS["content-type"], ["text/plain", "application/json; charset=latin1", "multipart/form-data"]),
      header("mcp-protocol-version", MCP_HEADERS["mcp-protocol-version"], ["1999-01-01", "", "2025-06-18"]),
    )
    .map(([input, session, ...headers]) => ({ ...input, session, headers: Object.assign({}, ...headers) as Record<string, string> }))
    .filter((c) => !cancelsItsOwnRequest(c.bytes));
}

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
  const headers = { ...input.headers, ...(input.session === "initialized" ? { "mcp-session-id": home.id } : input.session === "unknown" ? { "mcp-session-id": randomUUID() } : {}) };
  let answer;
  try {
    answer = await postMcp(url, input.bytes, headers);
  } catch (err) {
    one.fail("no HTTP answer", `${input.source} ${preview(input.bytes)}: ${(err as Error).message}`);
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
      const response = answer.messages.find((m) => m.id === message.id && !("method" in m));
      if (!response) one.fail("request not answered", `${preview(input.bytes)} (status ${answer.status})`);
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

/**
 * Fuzz target: lines written to `dmcp gateway --stdio`. The harness goes in lockstep: it writes one
 * input (which may hold several lines), then a ping of its own, and waits for the ping's answer and
 * for the answer to every request of the input. What the gateway wrote meanwhile belongs to that
 * input: parse errors and invalid-request errors (with a null id, or the id it could salvage), and the
 * responses to its requests. An input that got no answer and holds no request must consist of
 * notifications or responses, which the gateway counts when it drops them.
 */
import { draw, jsonRpcInput, type FuzzWorld } from "./arbitraries.js";
import { answerKind, type RpcMessage, type StdioPeer } from "./mcp-peers.js";
import { notificationOutcome, parseMessages } from "./outcomes.js";
import { preview, Tally } from "./tally.js";

/** A forwarded call is answered within the gateways' call timeout (5 s); this is the harness's patience. */
const ANSWER_TIMEOUT_MS = 15_000;
const decoder = new TextDecoder();

export interface StdioFuzzResult {
  tally: Tally;
  expectedDrops: number;
}

export async function fuzzStdio(peer: StdioPeer, world: FuzzWorld, count: number, seed: number): Promise<StdioFuzzResult> {
  const tally = new Tally("stdio");
  const result: StdioFuzzResult = { tally, expectedDrops: 0 };
  let received: RpcMessage[] = [];
  let arrived: () => void = () => undefined;
  peer.onMessage((message) => {
    received.push(message);
    arrived();
  });
  try {
    for (const input of draw(jsonRpcInput(world), count, seed)) {
      const one = tally.begin();
      received = [];
      // The transport reads UTF-8 and splits at newlines; a line's surrounding white space (BOM included) is trimmed.
      const lines = decoder.decode(input.bytes).split("\n").map((line) => line.trim()).filter((line) => line !== "");
      const requested = lines.map(requestIdOf).filter((id) => id !== undefined);
      const unanswered = lines.filter((line) => requestIdOf(line) === undefined && takenWithoutAnswer(line));
      await peer.write(input.bytes);
      await peer.write("\n");
      try {
        await peer.request("ping");
        await until(() => requested.every((id) => received.some((m) => m.id === id)), (wake) => (arrived = wake));
      } catch (err) {
        one.fail("no answer", `${input.source} ${preview(input.bytes)}: ${(err as Error).message}`);
        continue;
      }
      for (const message of received) one.record("answered", answerKind(message));
      // Each request gets its answer, each line the transport refuses an error, the rest none.
      const expected = lines.length - unanswered.length;
      if (received.length !== expected) one.fail("answers do not match the lines", `${preview(input.bytes)}: ${received.length} answers to ${expected} lines that need one`);
      for (const line of unanswered) {
        const outcome = notificationOutcome(parseMessages(line)[0]!);
        one.record(outcome.class, outcome.kind);
        if (outcome.class === "dropped") result.expectedDrops++;
      }
      if (lines.length === 0) one.record("consumed", "blank line (skipped)");
    }
  } finally {
    peer.onMessage(undefined);
  }
  return result;
}

/** The id of a line that is a request (a JSON object with a method and a string or number id): it must be answered with that id. */
function requestIdOf(line: string): string | number | undefined {
  const value = parseObject(line);
  return value && typeof value.method === "string" && isId(value.id) ? value.id : undefined;
}

/** A valid JSON-RPC notification or response: the transport hands it on, and nothing answers it. */
function takenWithoutAnswer(line: string): boolean {
  const message = parseObject(line);
  if (!message || message.jsonrpc !== "2.0") return false;
  if ("method" in message) return typeof message.method === "string" && message.id === undefined && (message.params === undefined || (typeof message.params === "object" && message.params !== null));
  return isId(message.id) && ("result" in message || "error" in message);
}

/** What the transport accepts as an id: a string or a finite number (1e999 parses as Infinity, which has no JSON form). */
function isId(id: unknown): id is string | number {
  return typeof id === "string" || (typeof id === "number" && Number.isFinite(id));
}

function parseObject(line: string): RpcMessage | undefined {
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as RpcMessage) : undefined;
  } catch {
    return undefined;
  }
}

/** Resolves once `done()` holds, re-checking whenever `onWake` is called; rejects after the timeout. */
function until(done: () => boolean, onWake: (wake: () => void) => void): Promise<void> {
  if (done()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      onWake(() => undefined);
      reject(new Error(`the requests of the input were not all answered within ${ANSWER_TIMEOUT_MS} ms`));
    }, ANSWER_TIMEOUT_MS);
    onWake(() => {
      if (!done()) return;
      clearTimeout(timer);
      onWake(() => undefined);
      resolve();
    });
  });
}

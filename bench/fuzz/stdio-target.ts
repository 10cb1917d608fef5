/**
 * Fuzz target: lines written to `dmcp gateway --stdio`. The harness goes in lockstep: it writes one
 * input (which may hold several lines), then a ping of its own, and waits for the ping's answer and
 * for the answer to every request of the input. What the gateway wrote meanwhile belongs to that
 * input: parse errors and invalid-request errors (with a null id, or the id it could salvage), and the
 * responses to its requests, each within ANSWER_WITHIN_MS. An input that got no answer and holds no
 * request must consist of notifications or responses, which the gateway counts when it drops them.
 */
import { performance } from "node:perf_hooks";
import { draw, jsonRpcInput, type FuzzInput, type FuzzWorld } from "./arbitraries.js";
import { isJsonRpcId, messageProblem } from "../../src/protocol/index.js";
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
  /** When each of `received` arrived, in ms after the input was written. */
  let arrivedAfterMs: number[] = [];
  let written = 0;
  let arrived: () => void = () => undefined;
  peer.onMessage((message) => {
    received.push(message);
    arrivedAfterMs.push(performance.now() - written);
    arrived();
  });
  const late = (id: string | number, input: FuzzInput) => {
    const at = received.findIndex((m) => m.id === id);
    tally.answeredAfter(at === -1 ? Number.POSITIVE_INFINITY : arrivedAfterMs[at]!, () => preview(input.bytes));
  };
  try {
    for (const input of draw(jsonRpcInput(world), count, seed)) {
      const one = tally.begin();
      received = [];
      arrivedAfterMs = [];
      // The transport reads UTF-8 and splits at newlines; a line's surrounding white space (BOM included) is trimmed.
      const lines = decoder
        .decode(input.bytes)
        .split("\n")
        .map((line) => line.trim())
        .filter((line) => line !== "");
      const requested = lines.map(requestIdOf).filter((id) => id !== undefined);
      const unanswered = lines.filter((line) => requestIdOf(line) === undefined && takenWithoutAnswer(line));
      written = performance.now();
      await peer.write(input.bytes);
      await peer.write("\n");
      let failure: Error | undefined;
      try {
        await peer.request("ping");
        await until(
          () => requested.every((id) => received.some((m) => m.id === id)),
          (wake) => (arrived = wake),
        );
      } catch (err) {
        failure = err as Error;
      }
      for (const id of requested) late(id, input);
      if (failure) {
        one.fail("no answer", `${input.source} ${preview(input.bytes)}: ${failure.message}`);
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
  return value && typeof value.method === "string" && isJsonRpcId(value.id) ? value.id : undefined;
}

/** A valid notification or response (by the protocol module's own schema check): the transport hands it on, and nothing answers it. */
function takenWithoutAnswer(line: string): boolean {
  const message = parseObject(line);
  const isRequest = message !== undefined && "method" in message && message.id !== undefined;
  return message !== undefined && !isRequest && messageProblem(message) === undefined;
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

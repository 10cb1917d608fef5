/**
 * Load through a gateway for fault tests and `npm run chaos`: many tools/call requests with a bounded
 * number in flight, every JSON-RPC response counted by id (so that a duplicate answer is seen, not
 * silently dropped), and what each call ended with.
 */
import type { RawMcpClient } from "./mcp-client.js";

export interface CallOutcome {
  /** The JSON-RPC id of the request. */
  id: number;
  sentAt: number;
  answeredAt?: number;
  result?: Record<string, unknown>;
  error?: { code: number; message: string; data?: unknown };
  /** No answer before the client's own timeout. */
  lost?: boolean;
}

/** Counts every response the client receives, by JSON-RPC id. */
export function countResponses(client: RawMcpClient): Map<number, number> {
  const counts = new Map<number, number>();
  const original = client.transport.onmessage;
  client.transport.onmessage = (message, extra) => {
    const m = message as Record<string, unknown>;
    if (typeof m.id === "number" && ("result" in m || "error" in m)) counts.set(m.id, (counts.get(m.id) ?? 0) + 1);
    original?.(message, extra);
  };
  return counts;
}

export interface LoadOptions {
  calls: number;
  /** Requests in flight at once. */
  concurrency: number;
  /** The tools/call params of call number `index`. */
  params: (index: number) => Record<string, unknown>;
  /** How long the client waits for one answer before counting the call lost. */
  timeoutMs: number;
  /** Called after each answer with the number answered so far. */
  onAnswer?: (answered: number) => void;
}

export async function runLoad(client: RawMcpClient, options: LoadOptions): Promise<CallOutcome[]> {
  const outcomes: CallOutcome[] = [];
  let next = 0;
  let answered = 0;
  const worker = async () => {
    while (next < options.calls) {
      const index = next++;
      const sentAt = Date.now();
      const pending = client.request("tools/call", options.params(index), options.timeoutMs);
      const outcome: CallOutcome = { id: client.lastRequestId, sentAt };
      outcomes[index] = outcome;
      try {
        const response = await pending;
        outcome.answeredAt = Date.now();
        if (response.error) outcome.error = response.error;
        else outcome.result = response.result!;
      } catch {
        outcome.lost = true;
      }
      options.onAnswer?.(++answered);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return outcomes;
}

/** Resolves when `count()` reaches `target` (checked on each answer via `onAnswer`). */
export function whenReached(target: number): { onAnswer: (answered: number) => void; reached: Promise<void> } {
  let resolve: () => void = () => undefined;
  const reached = new Promise<void>((r) => (resolve = r));
  return { onAnswer: (answered) => void (answered >= target && resolve()), reached };
}

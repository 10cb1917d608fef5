/**
 * Calls in flight on a gateway that is SIGKILLed (PROTOCOL.md §19.4), for the failover tests: calls sent
 * by an MCP SDK client through the round-robin proxy so that all reach one gateway, then that gateway killed.
 */
import type { Client } from "@modelcontextprotocol/client";
import { expect } from "vitest";
import { eventually, type Child } from "./processes.js";
import type { RoundRobinProxy } from "./round-robin.js";

/** A call to make: a fixture's `sleep` tool of `ms` (a number no other call uses), on the executor that runs it. */
export interface SleepCall {
  tool: string;
  ms: number;
  executor: Child;
  /** Aborting it makes the client cancel the call (notifications/cancelled). */
  signal?: AbortSignal;
}

/**
 * Sends `calls` through `proxy` so that every one reaches the same gateway of the two, waits until each
 * runs upstream (its executor logs `sleep: running <ms>`), and SIGKILLs that gateway. Resolves with the
 * calls' promises (in order; their rejections are handled, for the test to read) and the index of the
 * gateway left.
 */
export async function callsOnAKilledGateway(
  proxy: RoundRobinProxy,
  gateways: Child[],
  client: Client,
  calls: SleepCall[],
): Promise<{ answers: Promise<unknown>[]; survivor: number }> {
  await eventually(async () => {
    const names = (await client.listTools()).tools.map((tool) => tool.name);
    return calls.every((call) => names.includes(call.tool));
  }, 30_000);
  const answers: Promise<unknown>[] = [];
  let victim: number | undefined;
  for (const call of calls) {
    // Each call goes to the gateway the first went to: a ping steers the balancer's turn.
    if (victim !== undefined && proxy.routed.length % 2 !== victim) await client.ping();
    const sent = proxy.routed.length;
    const answer = client.callTool({ name: call.tool, arguments: { ms: call.ms } }, { timeout: 300_000, ...(call.signal ? { signal: call.signal } : {}) });
    answer.catch(() => undefined);
    answers.push(answer);
    await eventually(() => proxy.routed.length > sent);
    victim ??= proxy.routed[sent]!;
    expect(proxy.routed[sent]).toBe(victim);
  }
  await Promise.all(calls.map((call) => call.executor.waitFor(new RegExp(`sleep: running ${call.ms}\\b`), 15_000)));
  const killed = gateways[victim!]!;
  killed.kill("SIGKILL");
  await killed.exited;
  return { answers, survivor: 1 - victim! };
}

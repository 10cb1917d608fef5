/** The bench's MCP clients: SDK `Client` sessions over Streamable HTTP, and the call loop that drives them. */
import { performance } from "node:perf_hooks";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { BenchError } from "./config.js";
import "./unlimited-listeners.js";

/** The tool every measured call invokes, and the text its answer must carry. */
export interface ToolCall {
  name: string;
  arguments: Record<string, unknown>;
  /** The first content item's text; undefined: any text. */
  expectText: string | undefined;
}

export async function connectClient(url: string, name: string): Promise<Client> {
  const client = new Client({ name, version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  return client;
}

export async function closeClient(client: Client): Promise<void> {
  const transport = client.transport as StreamableHTTPClientTransport | undefined;
  await transport?.terminateSession().catch(() => undefined);
  await client.close().catch(() => undefined);
}

/** `count` sessions on `url`, opened together. */
export function connectPool(url: string, count: number, label: string): Promise<Client[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => connectClient(url, `bench-${label}-${i}`)));
}

/** One tools/call; throws unless the answer is a text result (with the expected text). */
export async function callTool(client: Client, tool: ToolCall, timeoutMs?: number): Promise<void> {
  const result = await client.callTool({ name: tool.name, arguments: tool.arguments }, timeoutMs === undefined ? undefined : { timeout: timeoutMs });
  const first = (result.content as Array<{ type?: string; text?: string }> | undefined)?.[0];
  if (result.isError || first?.type !== "text" || (tool.expectText !== undefined && first.text !== tool.expectText)) {
    throw new BenchError(`unexpected ${tool.name} result: ${JSON.stringify(result).slice(0, 300)}`);
  }
}

export interface Drive {
  calls: number;
  seconds: number;
  /** Latency of each call in ms (empty unless recorded). */
  latencies: number[];
}

/** Runs one worker per client, each calling in a loop, until `calls` calls have started or `seconds` have passed. */
export async function drive(clients: Client[], tool: ToolCall, stop: { calls: number } | { seconds: number }, record: boolean): Promise<Drive> {
  const latencies: number[] = [];
  let started = 0;
  const begin = performance.now();
  const end = "seconds" in stop ? begin + stop.seconds * 1000 : Number.POSITIVE_INFINITY;
  const limit = "calls" in stop ? stop.calls : Number.POSITIVE_INFINITY;
  const worker = async (client: Client) => {
    while (started < limit && performance.now() < end) {
      started++;
      const t0 = performance.now();
      await callTool(client, tool);
      if (record) latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(clients.map(worker));
  return { calls: started, seconds: (performance.now() - begin) / 1000, latencies };
}

/** Resolves once the MCP server at `url` lists `toolName` (a gateway learns it from the bus). */
export async function waitForTool(url: string, toolName: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const client = await connectClient(url, "bench-probe");
  try {
    for (;;) {
      const { tools } = await client.listTools(undefined, { cacheMode: "bypass" });
      if (tools.some((t) => t.name === toolName)) return;
      if (Date.now() > deadline) {
        throw new BenchError(`${url} did not list the ${toolName} tool within ${timeoutMs} ms (tools: ${tools.map((t) => t.name).join(", ") || "none"})`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await closeClient(client);
  }
}

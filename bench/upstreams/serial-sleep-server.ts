/**
 * The scale bench's upstream: a stdio MCP server with one I/O-bound tool, `sleep` (waits `ms`, takes
 * no CPU), that runs one call at a time, as a single-threaded server does. One replica then serves at
 * most 1000/ms calls per second whatever its concurrency, so calls/s can only grow with replicas.
 * Plain JSON-RPC lines (no SDK), so that the upstream costs next to nothing.
 *
 *   node dist/bench/upstreams/serial-sleep-server.js
 */
import { createInterface } from "node:readline";

type Message = { jsonrpc: "2.0"; id?: string | number; method?: string; params?: Record<string, unknown> };

const VERSIONS = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
const TOOL = {
  name: "sleep",
  description: "Waits ms milliseconds, then answers; one call at a time",
  inputSchema: { type: "object", properties: { ms: { type: "number", minimum: 0 } }, required: ["ms"] },
};

const send = (message: Record<string, unknown>) => process.stdout.write(`${JSON.stringify({ jsonrpc: "2.0", ...message })}\n`);

/** The calls run one after the other, in arrival order. */
let queue = Promise.resolve();

function handle(message: Message): void {
  const { id, method, params = {} } = message;
  if (id === undefined) return; // notifications: nothing to answer
  switch (method) {
    case "initialize": {
      const asked = String(params.protocolVersion ?? "");
      send({
        id,
        result: { protocolVersion: VERSIONS.includes(asked) ? asked : VERSIONS[0], capabilities: { tools: {} }, serverInfo: { name: "serial-sleep", version: "1.0.0" } },
      });
      return;
    }
    case "ping":
      send({ id, result: {} });
      return;
    case "tools/list":
      send({ id, result: { tools: [TOOL] } });
      return;
    case "tools/call": {
      const args = (params.arguments ?? {}) as Record<string, unknown>;
      const ms = Number(args.ms);
      if (params.name !== TOOL.name || !Number.isFinite(ms) || ms < 0) {
        send({ id, error: { code: -32602, message: `Invalid params: tool "sleep" with a number ms ≥ 0` } });
        return;
      }
      queue = queue.then(async () => {
        await new Promise((resolve) => setTimeout(resolve, ms));
        send({ id, result: { content: [{ type: "text", text: `slept ${ms}` }] } });
      });
      return;
    }
    default:
      send({ id, error: { code: -32601, message: `Method not found: ${method}` } });
  }
}

createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim() === "") return;
  let message: Message;
  try {
    message = JSON.parse(line) as Message;
  } catch {
    send({ id: null, error: { code: -32700, message: "Parse error" } });
    return;
  }
  handle(message);
});
process.stdin.once("end", () => process.exit(0));

/** Reading a dmcp gateway's Prometheus metrics (its HTTP port serves /metrics): what it sees, as events to wait on. */
import { BenchError } from "./config.js";

/** The sum of a metric's samples whose labels contain every `labels` pair; undefined when the gateway has no such metric. */
export async function gatewayMetric(mcpUrl: string, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const url = new URL("/metrics", mcpUrl);
  // Tried twice: after a pause as long as the gateway's keep-alive timeout (5 s), the pooled connection
  // may be closed by the gateway just as the request goes out on it ("other side closed").
  const response = await fetch(url).catch(() => fetch(url));
  if (!response.ok) throw new BenchError(`${url} answered ${response.status}`);
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  let sum: number | undefined;
  for (const line of (await response.text()).split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!wanted.every((pair) => line.includes(pair))) continue;
    sum = (sum ?? 0) + Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

/** Polls the gateway's metric until `done(value)` (the gateway offers no push for these). */
export async function waitForMetric(
  mcpUrl: string,
  name: string,
  labels: Record<string, string>,
  done: (value: number | undefined) => boolean,
  what: string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await gatewayMetric(mcpUrl, name, labels);
    if (done(value)) return;
    if (Date.now() > deadline) throw new BenchError(`the gateway did not reach "${what}" within ${timeoutMs} ms (${name} ${JSON.stringify(labels)}: ${value ?? "absent"})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

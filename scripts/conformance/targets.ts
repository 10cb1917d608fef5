/**
 * The three places the conformance suite is pointed at: the fixture itself, and the fixture behind
 * `dmcp gateway --http` + a private nats-server + `dmcp wrap`, with the fixture as an HTTP upstream
 * (`wrap --url`) or as a stdio child (`wrap -- node fixture --stdio`).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { Child, DMCP, NODE, ROOT, startGateway, startNats, waitForTools } from "../../examples/lib.js";
import type { TargetName } from "./target-names.js";

const FIXTURE = join(ROOT, "dist", "test", "support", "fixtures", "conformance-server.js");
const SERVICE = "conformance";
/**
 * The gateway polls long calls' SSE streams (`--sse-poll`): every call of the suite that runs longer
 * than this is cut and resumed with Last-Event-ID, and a stdio upstream (which has no stream of its
 * own to close) gets the server-sse-polling behaviour from the gateway.
 */
export const GATEWAY_FLAGS = ["--sse-poll", "250"];

export interface RunningTarget {
  name: TargetName;
  url: string;
  /** Writes the stderr of every process of this target into `dir`. */
  saveLogs(dir: string): void;
  stop(): Promise<void>;
}

/** The fixture over HTTP on a free loopback port. */
export async function startFixtureHttp(): Promise<{ child: Child; url: string }> {
  const child = new Child("conformance fixture (http)", NODE, [FIXTURE, "--http", "0"]);
  const [, port] = await child.waitForLine(/^LISTENING (\d+)$/);
  return { child, url: `http://127.0.0.1:${port}/mcp` };
}

export async function startTarget(name: TargetName, fixture: { url: string }): Promise<RunningTarget> {
  if (name === "direct") return { name, url: fixture.url, saveLogs: () => undefined, stop: async () => undefined };
  const nats = await startNats();
  const upstream = name === "http" ? ["--url", fixture.url] : ["--", NODE, FIXTURE, "--stdio"];
  const wrap = new Child(`dmcp wrap (${name} upstream)`, NODE, [DMCP, "wrap", "--name", SERVICE, "--nats", nats.url, ...upstream]);
  await wrap.waitForLine(/executor serving/);
  const gateway = await startGateway(nats.url, GATEWAY_FLAGS);
  await waitUntilServed(gateway.url);
  const children = [wrap, gateway.child];
  return {
    name,
    url: gateway.url,
    saveLogs(dir) {
      for (const child of children) writeFileSync(join(dir, `${child.name.replace(/\W+/g, "-")}.log`), `${child.stderrLines.join("\n")}\n`);
    },
    async stop() {
      await gateway.child.stop();
      await wrap.stop();
      await nats.stop();
    },
  };
}

/** Waits until the gateway lists the fixture's tools: services announce themselves asynchronously. */
async function waitUntilServed(url: string): Promise<void> {
  const client = new Client({ name: "dmcp-conformance-runner", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  try {
    await waitForTools(client, ["test_simple_text"], 60_000);
  } finally {
    await client.close();
  }
}

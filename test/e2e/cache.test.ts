/**
 * The gateway cache end to end: a real nats-server, an upstream that counts the requests it gets
 * (test/support/fixtures/counting-server.ts) wrapped with opt-in TTLs, two gateways with bearer
 * tokens for two identities, and SDK client transports. Each case reads the upstream's own count
 * in the answer (`#N`): a cached answer repeats it, one that reached the upstream has a new one.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DashboardState } from "../../adapters/inbound/dashboard/index.js";
import { RawMcpClient } from "../support/mcp-client.js";
import { type EmbeddedNats, startTestNats } from "../support/nats.js";
import { type Child, COUNTING_FIXTURE_BIN, eventually, runDmcp, startGatewayHttp } from "../support/processes.js";
import { sample } from "../support/prometheus.js";

const META_CACHE = "io.dmcp/cache";
const SERVICE = "counter";

type Result = Record<string, unknown>;

function textOf(result: Result): string {
  const content = (result.content ?? result.contents) as { text: string }[];
  return content[0]!.text;
}

function markerOf(result: Result): { hit: boolean; tier: string; age_ms: number } | undefined {
  return (result._meta as Record<string, never> | undefined)?.[META_CACHE];
}

describe("the gateway cache", () => {
  let dir: string;
  let nats: EmbeddedNats;
  let executor: Child;
  let gateways: (Child & { url: string })[];
  /** alice on the first gateway (with the dashboard), bob on the first, alice on the second (a small local tier). */
  let alice: RawMcpClient;
  let bob: RawMcpClient;
  let aliceElsewhere: RawMcpClient;

  const connect = async (url: string, token: string) => {
    const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${token}` } } });
    return RawMcpClient.connect(transport);
  };
  const lookup = (client: RawMcpClient, key: string, tool = "lookup") => client.result("tools/call", { name: tool, arguments: { key } });
  const read = (client: RawMcpClient, uri: string) => client.result("resources/read", { uri });
  /** Requests the upstream got for `what` (a `tool:key` or a URI), in every process of it. */
  const upstreamCount = (what: string) =>
    readFileSync(join(dir, "counts"), "utf8")
      .split("\n")
      .filter((line) => line === what).length;
  const metrics = async (gateway: Child & { url: string }) => (await fetch(new URL("/metrics", gateway.url))).text();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dmcp-cache-"));
    writeFileSync(join(dir, "tokens"), "alice:token-alice\nbob:token-bob\n");
    writeFileSync(join(dir, "counts"), "");
    nats = await startTestNats();
    const ttls = ["lookup", "slow_lookup", "stall_once", "fail_read", "error_read", "write"].flatMap((tool) => ["--cache-ttl", `${tool}=60s`]);
    executor = runDmcp([
      "wrap",
      "--name",
      SERVICE,
      "--nats",
      nats.url,
      "--heartbeat",
      "500",
      ...ttls,
      "--cache-public-ttl",
      "count://plain=60s",
      "--cache-public-ttl",
      "count://zero=60s",
      "--",
      process.execPath,
      COUNTING_FIXTURE_BIN,
      "--counts",
      join(dir, "counts"),
    ]);
    await executor.waitFor(/executor serving/);
    const auth = ["--auth-tokens", join(dir, "tokens")];
    gateways = await Promise.all([startGatewayHttp(nats.url, [...auth, "--dashboard"]), startGatewayHttp(nats.url, [...auth, "--cache-max-bytes", "1KB"])]);
    [alice, bob, aliceElsewhere] = await Promise.all([connect(gateways[0]!.url, "token-alice"), connect(gateways[0]!.url, "token-bob"), connect(gateways[1]!.url, "token-alice")]);
    for (const client of [alice, bob, aliceElsewhere]) await eventually(async () => (await client.toolNames()).includes("lookup"));
  }, 120_000);

  afterAll(async () => {
    await Promise.allSettled([alice, bob, aliceElsewhere].map((client) => client?.close()));
    await Promise.allSettled([...(gateways ?? []), executor].map((child) => child?.stop()));
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves a read-only tool's answer for its opt-in TTL, marked in _meta, without asking the upstream again", async () => {
    const first = await lookup(alice, "a");
    expect(textOf(first)).toBe("lookup a #1");
    expect(markerOf(first)).toBeUndefined();
    const second = await lookup(alice, "a");
    expect(textOf(second)).toBe("lookup a #1");
    expect(markerOf(second)).toMatchObject({ hit: true, tier: "local" });
    expect(upstreamCount("lookup:a")).toBe(1);
    // Other arguments are another entry.
    expect(textOf(await lookup(alice, "b"))).toBe("lookup b #1");
  });

  it("keeps private answers to their caller: another identity gets its own, also on a gateway that shares the bucket", async () => {
    await lookup(alice, "p");
    const bobs = await lookup(bob, "p");
    expect(textOf(bobs)).toBe("lookup p #2");
    expect(markerOf(bobs)).toBeUndefined();
    expect(textOf(await lookup(bob, "p"))).toBe("lookup p #2");
    // The same identity on the other gateway gets its answer from the shared bucket.
    const elsewhere = await lookup(aliceElsewhere, "p");
    expect(textOf(elsewhere)).toBe("lookup p #1");
    expect(markerOf(elsewhere)).toMatchObject({ hit: true, tier: "shared" });
    expect(upstreamCount("lookup:p")).toBe(2);
  });

  it("honours an upstream's ttlMs and cacheScope on resources/read: public for everyone, private per caller", async () => {
    expect(textOf(await read(alice, "count://public"))).toBe("count://public #1");
    const shared = await read(bob, "count://public");
    expect(textOf(shared)).toBe("count://public #1");
    expect(markerOf(shared)).toMatchObject({ hit: true });
    expect(shared.ttlMs).toBeGreaterThan(0);
    expect(shared.ttlMs).toBeLessThanOrEqual(60_000);
    expect(textOf(await read(alice, "count://private"))).toBe("count://private #1");
    expect(textOf(await read(bob, "count://private"))).toBe("count://private #2");
    expect(textOf(await read(aliceElsewhere, "count://public"))).toBe("count://public #1");
  });

  it("lets an entry expire at its TTL", async () => {
    expect(textOf(await read(alice, "count://short"))).toBe("count://short #1");
    expect(textOf(await read(alice, "count://short"))).toBe("count://short #1");
    // ttlMs 1500: the answer changes once it has expired (a deadline, not a timing assert).
    await eventually(async () => textOf(await read(alice, "count://short")) === "count://short #2", 15_000, 200);
    expect(upstreamCount("count://short")).toBe(2);
  });

  it("caches a resource by its opt-in rule when the upstream says nothing, but never against the upstream's ttlMs 0", async () => {
    expect(textOf(await read(alice, "count://plain"))).toBe("count://plain #1");
    expect(textOf(await read(bob, "count://plain"))).toBe("count://plain #1");
    expect(textOf(await read(alice, "count://zero"))).toBe("count://zero #1");
    expect(textOf(await read(alice, "count://zero"))).toBe("count://zero #2");
  });

  it("never caches errors, isError results or tools not marked read-only, whatever the rules say", async () => {
    await lookup(alice, "w", "write");
    expect(textOf(await lookup(alice, "w", "write"))).toBe("write w #2");
    const failed = await alice.result("tools/call", { name: "fail_read", arguments: {} });
    expect(failed.isError).toBe(true);
    expect(textOf(await alice.result("tools/call", { name: "fail_read", arguments: {} }))).toBe("failed #2");
    for (let i = 0; i < 2; i++) expect((await alice.request("tools/call", { name: "error_read", arguments: {} })).error?.message).toMatch(/read failed on purpose/);
    expect(upstreamCount("error_read")).toBe(2);
  });

  it("calls the upstream once for 100 concurrent readers of one key", async () => {
    const answers = await Promise.all(Array.from({ length: 100 }, () => lookup(alice, "hot", "slow_lookup")));
    expect(new Set(answers.map(textOf))).toEqual(new Set(["slow_lookup hot #1"]));
    expect(upstreamCount("slow_lookup:hot")).toBe(1);
    // Those that came while the first was under way joined it; any that came after it was stored are local hits.
    expect(answers.filter((answer) => markerOf(answer)?.hit === true)).toHaveLength(99);
    expect(answers.some((answer) => markerOf(answer)?.tier === "inflight")).toBe(true);
  });

  it("gives callers that joined a call whose answer is not kept that answer, without the cache's marker", async () => {
    const before = upstreamCount("fail_read");
    const answers = await Promise.all(Array.from({ length: 5 }, () => alice.result("tools/call", { name: "fail_read", arguments: { ms: 500 } })));
    expect(answers.every((answer) => answer.isError === true && markerOf(answer) === undefined)).toBe(true);
    expect(upstreamCount("fail_read") - before).toBe(1);
  });

  it("calls the upstream once for concurrent readers spread over both gateways", async () => {
    const slow = (client: RawMcpClient) => client.result("tools/call", { name: "slow_lookup", arguments: { key: "spread", ms: 1_000 } });
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => slow(i % 2 === 0 ? alice : aliceElsewhere)));
    expect(new Set(answers.map(textOf))).toEqual(new Set(["slow_lookup spread #1"]));
    expect(upstreamCount("slow_lookup:spread")).toBe(1);
  });

  it("answers the readers of a gateway that died while fetching for them: another gateway takes the claim over", async () => {
    const doomed = await startGatewayHttp(nats.url, ["--auth-tokens", join(dir, "tokens")]);
    const client = await connect(doomed.url, "token-alice");
    await eventually(async () => (await client.toolNames()).includes("stall_once"));
    const stall = (on: RawMcpClient) => on.result("tools/call", { name: "stall_once", arguments: { key: "orphan", ms: 120_000 } });
    // Its first request stalls at the upstream: the doomed gateway holds the claim, and dies holding it.
    void stall(client).catch(() => undefined);
    await eventually(() => upstreamCount("stall_once:orphan") === 1);
    doomed.kill("SIGKILL");
    await doomed.exited;
    void client.close().catch(() => undefined);
    // Without a takeover these would wait for the call's deadline (60 s) and fail; the claim is abandoned after 3 s.
    const answers = await Promise.all([stall(alice), stall(aliceElsewhere), stall(alice)]);
    expect(new Set(answers.map(textOf))).toEqual(new Set(["stall_once orphan #2"]));
    expect(upstreamCount("stall_once:orphan")).toBe(2);
  });

  it("drops a resource on notifications/resources/updated, at every gateway", async () => {
    const before = textOf(await read(alice, "count://public"));
    expect(textOf(await read(aliceElsewhere, "count://public"))).toBe(before);
    await alice.result("tools/call", { name: "touch", arguments: { uri: "count://public" } });
    await eventually(async () => textOf(await read(alice, "count://public")) !== before);
    // Not necessarily the answer the first gateway fetched: a read here before that answer reached
    // the bucket goes to the upstream and gets a newer one. Never the old one.
    await eventually(async () => textOf(await read(aliceElsewhere, "count://public")) !== before);
  });

  it("drops a service's entries when its executors announce a new catalog (list_changed)", async () => {
    const before = textOf(await lookup(alice, "g"));
    expect(textOf(await lookup(alice, "g"))).toBe(before);
    await alice.result("tools/call", { name: "grow", arguments: { name: "grown" } });
    await eventually(async () => (await alice.toolNames()).includes("grown"));
    expect(textOf(await lookup(alice, "g"))).not.toBe(before);
  });

  it("dmcp cache purge SERVICE empties the shared bucket and every gateway's local cache", async () => {
    const first = textOf(await lookup(alice, "x"));
    expect(textOf(await lookup(aliceElsewhere, "x"))).toBe(first);
    const purge = runDmcp(["cache", "purge", SERVICE, "--nats", nats.url]);
    expect(await purge.exited).toBe(0);
    const fresh = await eventually(async () => {
      const now = textOf(await lookup(alice, "x"));
      return now !== first ? now : undefined;
    });
    // The other gateway dropped its copy too, and reads the new one from the bucket (or the upstream).
    await eventually(async () => textOf(await lookup(aliceElsewhere, "x")) !== first);
    expect(fresh).toMatch(/^lookup x #\d+$/);
  });

  it("refuses a bad purge: an unknown action or an invalid service name", async () => {
    const bad = runDmcp(["cache", "purge", "no.dots", "--nats", nats.url]);
    expect(await bad.exited).toBe(2);
    expect(bad.stderr.join("\n")).toMatch(/invalid service name/);
    const unknown = runDmcp(["cache", "flush", "--nats", nats.url]);
    expect(await unknown.exited).toBe(2);
  });

  it("shows hits, misses, evictions and bytes in /metrics", async () => {
    // The second gateway's local tier holds 1 KB: these answers (about 70 bytes each) do not all fit.
    for (let i = 0; i < 30; i++) await lookup(aliceElsewhere, `evict-${i}`);
    const [first, second] = await Promise.all(gateways.map(metrics));
    expect(sample(first, "dmcp_gateway_cache_hits_total", { tier: "local" })).toBeGreaterThan(0);
    expect(sample(first, "dmcp_gateway_cache_hits_total", { tier: "inflight" })).toBeGreaterThan(0);
    expect(sample(first, "dmcp_gateway_cache_misses_total")).toBeGreaterThan(0);
    expect(sample(first, "dmcp_gateway_cache_bytes")).toBeGreaterThan(0);
    expect(sample(second, "dmcp_gateway_cache_hits_total", { tier: "shared" })).toBeGreaterThan(0);
    expect(sample(second, "dmcp_gateway_cache_evictions_total")).toBeGreaterThan(0);
    expect(sample(second, "dmcp_gateway_cache_bytes")).toBeLessThanOrEqual(1000);
  });

  it("shows the same counts on the dashboard", async () => {
    // The dashboard is guarded like /mcp.
    const response = await fetch(new URL("/dashboard/api/state", gateways[0]!.url), { headers: { Authorization: "Bearer token-alice" } });
    const state = (await response.json()) as DashboardState;
    const cache = state.gateway?.cache;
    expect(cache).toMatchObject({ shared: true, maxBytes: 64 * 1024 * 1024 });
    expect(cache!.hits.local).toBeGreaterThan(0);
    expect(cache!.hits.local + cache!.hits.inflight).toBeGreaterThanOrEqual(99);
    expect(cache!.misses).toBeGreaterThan(0);
    expect(cache!.bytes).toBeGreaterThan(0);
  });
});

/**
 * The gateway cache's pure parts (issue 16): keys, the byte-bounded LRU, what may be cached and for
 * how long, and the never-cached cases an end-to-end test cannot reach cheaply (input_required,
 * task-augmented and sealed calls). test/e2e/cache.test.ts runs the rest over a real bus.
 */
import { describe, expect, it } from "vitest";
import { ANONYMOUS, type Identity, type ServiceCatalog } from "../../src/gateway/index.js";
import { GatewayCache } from "../../src/gateway/cache/index.js";
import { canonicalJson, cacheKeysOf } from "../../src/gateway/cache/key.js";
import { ByteLru } from "../../src/gateway/cache/lru.js";
import { decide, lifetimeOf, neverCached, ServiceCacheRules } from "../../src/gateway/cache/policy.js";
import { SingleFlight } from "../../src/gateway/cache/single-flight.js";
import { CallError, ErrorCode } from "../../src/protocol/index.js";
import { silentLogger } from "../../src/util/index.js";
import { cacheFromConfig, cacheFromFlags, gatewayCacheFromConfig, gatewayCacheFromFlags } from "../../src/cli/cache.js";

const alice: Identity = { kind: "token", subject: "alice" };
const bob: Identity = { kind: "token", subject: "bob" };

function catalog(cache?: ServiceCatalog["cache"]): ServiceCatalog {
  return {
    catalog: {
      tools: [
        { name: "read", inputSchema: { type: "object" }, annotations: { readOnlyHint: true } },
        { name: "write", inputSchema: { type: "object" } },
      ],
      resources: [],
      prompts: [],
      resource_templates: [],
    },
    capabilities: {},
    ...(cache ? { cache } : {}),
  };
}

const ruled = new ServiceCacheRules(catalog({ rules: [{ pattern: "*", ttl_ms: 1000, scope: "private" }] }));

describe("cache keys", () => {
  it("are the same for the same arguments in any order, whatever the _meta, and differ by identity unless public", () => {
    const one = cacheKeysOf("svc", "tools/call", { name: "read", arguments: { a: 1, b: [1, { c: 2, d: 3 }] }, _meta: { progressToken: 1 } }, alice, "2025");
    const two = cacheKeysOf("svc", "tools/call", { arguments: { b: [1, { d: 3, c: 2 }], a: 1 }, name: "read" }, alice, "2025");
    expect(two).toEqual(one);
    const bobs = cacheKeysOf("svc", "tools/call", { name: "read", arguments: { a: 1, b: [1, { c: 2, d: 3 }] } }, bob, "2025");
    expect(bobs.private).not.toBe(one.private);
    expect(bobs.public).toBe(one.public);
    expect(cacheKeysOf("svc", "tools/call", { name: "read", arguments: { a: 2 } }, alice, "2025").target).toBe(one.target);
    expect(one.private.startsWith(`${one.target}.`)).toBe(true);
    expect(one.target.startsWith("svc.")).toBe(true);
    // 2025 and 2026-07-28 answers differ in shape: separate entries.
    expect(cacheKeysOf("svc", "tools/call", { name: "read", arguments: { a: 1, b: [1, { c: 2, d: 3 }] } }, alice, "2026").private).not.toBe(one.private);
  });

  it("canonical JSON sorts keys at every depth and drops undefined fields", () => {
    expect(canonicalJson({ b: 1, a: { d: undefined, c: [2, 1] } })).toBe('{"a":{"c":[2,1]},"b":1}');
  });
});

describe("ByteLru", () => {
  const entry = (bytes: number, expiresAt = Number.MAX_SAFE_INTEGER) => ({ json: "x".repeat(bytes), storedAt: 0, expiresAt, bytes });

  it("evicts the least recently used entries to stay within its bytes, and counts them", () => {
    const lru = new ByteLru(100);
    lru.set("a", entry(40));
    lru.set("b", entry(40));
    lru.get("a", 0);
    lru.set("c", entry(40));
    expect(lru.get("b", 0)).toBeUndefined();
    expect(lru.get("a", 0)).toBeDefined();
    expect(lru.bytes).toBe(80);
    expect(lru.evictions).toBe(1);
    lru.set("huge", entry(101));
    expect(lru.get("huge", 0)).toBeUndefined();
    expect(lru.bytes).toBe(80);
  });

  it("drops an expired entry when it is looked at, and entries by key prefix", () => {
    const lru = new ByteLru(100);
    lru.set("s.t.1", entry(10, 5));
    expect(lru.get("s.t.1", 5)).toBeUndefined();
    expect(lru.bytes).toBe(0);
    lru.set("s.t.2", entry(10));
    lru.set("s.u.3", entry(10));
    lru.set("z.t.4", entry(10));
    expect(lru.deletePrefix("s.t.")).toBe(1);
    expect(lru.deletePrefix("s.")).toBe(1);
    expect(lru.size).toBe(1);
    expect(lru.deletePrefix()).toBe(1);
  });
});

describe("what may be cached", () => {
  it("caches read-only tools by a rule only; resources and other cacheable methods by the upstream's word too", () => {
    expect(decide(ruled, "tools/call", { name: "read" })).toEqual({ rule: { ttlMs: 1000, scope: "private" } });
    expect(decide(ruled, "tools/call", { name: "write" })).toBeUndefined();
    expect(decide(undefined, "tools/call", { name: "read" })).toBeUndefined();
    expect(decide(undefined, "resources/read", { uri: "a://b" })).toEqual({ rule: undefined });
    expect(decide(undefined, "skills/list", {})).toEqual({ rule: undefined });
    expect(decide(ruled, "prompts/get", { name: "read" })).toBeUndefined();
    expect(decide(ruled, "completion/complete", {})).toBeUndefined();
  });

  it("never keeps isError, input_required or task results, and the upstream's ttlMs wins over a rule (0 included)", () => {
    const rule = { rule: { ttlMs: 1000, scope: "public" as const } };
    expect(lifetimeOf("tools/call", { content: [] }, rule)).toEqual({ ttlMs: 1000, scope: "public" });
    expect(lifetimeOf("tools/call", { content: [], isError: true }, rule)).toBeUndefined();
    expect(lifetimeOf("resources/read", { contents: [], resultType: "input_required", ttlMs: 5000 }, rule)).toBeUndefined();
    expect(lifetimeOf("tools/call", { task: { taskId: "t" } }, rule)).toBeUndefined();
    expect(lifetimeOf("resources/read", { contents: [], ttlMs: 0, cacheScope: "public" }, rule)).toBeUndefined();
    expect(lifetimeOf("resources/read", { contents: [], ttlMs: 500 }, rule)).toEqual({ ttlMs: 500, scope: "private" });
    expect(lifetimeOf("resources/read", { contents: [], ttlMs: 500, cacheScope: "public" }, { rule: undefined })).toEqual({ ttlMs: 500, scope: "public" });
    expect(lifetimeOf("resources/read", { contents: [] }, { rule: undefined })).toBeUndefined();
    // tools/call results are not CacheableResults in MCP: their ttlMs is not a cache hint.
    expect(lifetimeOf("tools/call", { content: [], ttlMs: 500 }, { rule: undefined })).toBeUndefined();
  });

  it("never caches task-augmented calls, the task runner's calls, or calls that travel sealed", () => {
    expect(neverCached({ name: "read", task: { ttl: 1000 } }, "http")).toBe(true);
    expect(neverCached({ name: "read" }, "task")).toBe(true);
    expect(neverCached({ name: "read" }, "http")).toBe(false);
    const sealed = new GatewayCache({ logger: silentLogger(), id: "g", sealed: () => true });
    sealed.servicesChanged(new Map([["svc", catalog({ rules: [{ pattern: "*", ttl_ms: 1000, scope: "private" }] })]]));
    const call = { method: "tools/call", params: { name: "read" }, transport: "http", identity: ANONYMOUS, stateless: false, signal: new AbortController().signal };
    expect(sealed.decide(call, { service: "svc", params: { name: "read" } })).toBeUndefined();
    const open = new GatewayCache({ logger: silentLogger(), id: "g", sealed: () => false });
    open.servicesChanged(new Map([["svc", catalog({ rules: [{ pattern: "*", ttl_ms: 1000, scope: "private" }] })]]));
    expect(open.decide(call, { service: "svc", params: { name: "read" } })).toBeDefined();
  });
});

describe("SingleFlight", () => {
  it("runs one fetch for concurrent callers; when the leader is cancelled a follower runs its own", async () => {
    const flights = new SingleFlight<string>();
    const signal = new AbortController().signal;
    let fetches = 0;
    let release!: (value: string) => void;
    const lead = () => {
      fetches++;
      return new Promise<string>((resolve) => (release = resolve));
    };
    const answers = [1, 2, 3].map(() => flights.run("k", lead, (answer) => `${answer}!`, lead, signal));
    release("v");
    expect(await Promise.all(answers)).toEqual(["v", "v!", "v!"]);
    expect(fetches).toBe(1);

    const cancelled = () => Promise.reject(new CallError(ErrorCode.Cancelled, "the client went away"));
    const leader = flights.run(
      "c",
      () => new Promise<string>((_, reject) => setTimeout(() => reject(new CallError(ErrorCode.Cancelled, "gone")), 10)),
      (a) => a,
      cancelled,
      signal,
    );
    const follower = flights.run(
      "c",
      cancelled,
      (a) => a,
      async () => "own",
      signal,
    );
    await expect(leader).rejects.toThrow("gone");
    expect(await follower).toBe("own");
  });

  it("ends a follower's wait when its own call is cancelled", async () => {
    const flights = new SingleFlight<string>();
    const never = () => new Promise<string>(() => undefined);
    void flights.run("k", never, (a) => a, never, new AbortController().signal);
    const controller = new AbortController();
    const follower = flights.run("k", never, (a) => a, never, controller.signal);
    controller.abort(new CallError(ErrorCode.Cancelled, "follower cancelled"));
    await expect(follower).rejects.toThrow("follower cancelled");
  });
});

describe("cache settings from flags and the config file", () => {
  it("makes announced rules of --cache-ttl and --cache-public-ttl, in order, and refuses what is not PATTERN=DURATION", () => {
    expect(cacheFromFlags({ "cache-ttl": ["get_*=30s"], "cache-public-ttl": ["docs://*=1m"] })).toEqual({
      rules: [
        { pattern: "get_*", ttl_ms: 30_000, scope: "private" },
        { pattern: "docs://*", ttl_ms: 60_000, scope: "public" },
      ],
    });
    expect(cacheFromFlags({})).toBeUndefined();
    expect(() => cacheFromFlags({ "cache-ttl": ["get_*"] })).toThrow(/PATTERN=DURATION/);
    expect(() => cacheFromFlags({ "cache-ttl": ["get_*=soon"] })).toThrow(/duration/);
    expect(() => cacheFromFlags({ "cache-ttl": ["get_*=2d"] })).toThrow(/between 1ms and 24h/);
  });

  it("reads a server entry's cache map and the gateway's bound; --no-cache turns the cache off", () => {
    expect(cacheFromConfig({ "a*": "5s", "b://x": { ttl: 100, scope: "public" } }, "servers.s.cache")).toEqual({
      rules: [
        { pattern: "a*", ttl_ms: 5_000, scope: "private" },
        { pattern: "b://x", ttl_ms: 100, scope: "public" },
      ],
    });
    expect(cacheFromConfig({}, "servers.s.cache")).toBeUndefined();
    expect(gatewayCacheFromFlags({ "cache-max-bytes": "1MB" })).toEqual({ enabled: true, maxBytes: 1_000_000 });
    expect(gatewayCacheFromFlags({ "no-cache": true })).toEqual({ enabled: false });
    expect(() => gatewayCacheFromFlags({ "cache-max-bytes": "0" })).toThrow(/more than 0/);
  });

  it("reads the shared bucket's bound from --cache-shared-max-bytes and gateway.cache.sharedMaxBytes", () => {
    expect(gatewayCacheFromFlags({ "cache-shared-max-bytes": "1GiB" })).toEqual({ enabled: true, sharedMaxBytes: 1024 ** 3 });
    expect(() => gatewayCacheFromFlags({ "cache-shared-max-bytes": "0" })).toThrow(/--cache-shared-max-bytes must be more than 0/);
    expect(() => gatewayCacheFromFlags({ "no-cache": true, "cache-shared-max-bytes": "1MB" })).toThrow(/does not go with --no-cache/);
    expect(() => gatewayCacheFromFlags({ "cache-shared-max-bytes": "lots" })).toThrow(/cache-shared-max-bytes/);
    expect(gatewayCacheFromConfig({ enabled: true, maxBytes: "1MB", sharedMaxBytes: 2048 })).toEqual({ enabled: true, maxBytes: 1_000_000, sharedMaxBytes: 2048 });
    expect(gatewayCacheFromConfig({ enabled: true, sharedMaxBytes: "512MiB" })).toEqual({ enabled: true, sharedMaxBytes: 512 * 1024 ** 2 });
  });
});

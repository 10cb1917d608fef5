/**
 * fast-check arbitraries of hostile input for the fuzz targets: arbitrary bytes, arbitrary JSON, and
 * near-valid dMCP envelopes and JSON-RPC messages built from the real shapes, then mutated (wrong types,
 * missing fields, huge strings, deep nesting, prototype keys, invalid UTF-8, NaN-ish number tokens).
 *
 * Every arbitrary yields a {@link FuzzInput}: the bytes to send and the name of the generator that made
 * them (shown in the figures, and enough to tell which family a failing input belongs to).
 */
import fc, { type Arbitrary } from "fast-check";
import { DMCP_VERSION, MESSAGE_TYPES, META } from "../../src/protocol/index.js";

export interface FuzzInput {
  /** Which generator made it, e.g. `envelope/mutated`. */
  source: string;
  bytes: Uint8Array;
}

/** The names of the running system, so that near-valid input reaches real services, tools and topics. */
export interface FuzzWorld {
  services: string[];
  instances: string[];
  tools: string[];
  topics: string[];
  resourceUris: string[];
}

const encoder = new TextEncoder();

/** Keys that trip code which copies objects into plain `{}` or trusts `in` checks. */
export const PROTOTYPE_KEYS = ["__proto__", "constructor", "prototype", "toString", "valueOf", "hasOwnProperty", "__defineGetter__"];

/** Number tokens that JSON.parse rejects or turns into something surprising (Infinity, -0, 0). */
const NUMBER_TOKENS = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e-999", "-0", "0x1F", "01", "1.", ".5", "+1", "9007199254740993", "1E400"];

/** Byte sequences that are not UTF-8: lone continuation bytes, overlong encodings, surrogates, truncated sequences. */
const INVALID_UTF8 = [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xfe, 0xff]];

const nastyConstant = fc.constantFrom(
  "",
  " ",
  "\u0000",
  "\ud800",
  "\udfff",
  "\u202e",
  "\ufeff",
  "%00",
  "../../etc/passwd",
  "${env:HOME}",
  "dmcp.v1.>",
  "*",
  ">",
  "a.b.",
  "a b",
  "null",
  "__proto__",
  "a".repeat(129),
  "a".repeat(257),
);

/** Strings of every kind, a few of them very long. */
export const nastyString: Arbitrary<string> = fc.oneof(
  { weight: 16, arbitrary: fc.string({ maxLength: 24 }) },
  // Any code points, lone surrogates included (fc.string's "binary" unit is slow to set up).
  { weight: 6, arbitrary: fc.array(fc.integer({ min: 0, max: 0x10ffff }), { maxLength: 24 }).map((codes) => String.fromCodePoint(...codes)) },
  { weight: 6, arbitrary: nastyConstant },
  // Long runs with an odd last character: a pattern that almost matches must fail fast.
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 1_000, max: 64_000 }), fc.constantFrom("", "/", "y", ",")).map(([n, last]) => "x".repeat(n) + last) },
);

const weirdNumber = fc.oneof(
  fc.constantFrom(0, -0, -1, 1.5, 2 ** 31, 2 ** 53 + 2, 1e308, -1e308, 5e-324, Number.MAX_SAFE_INTEGER),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);

/** Objects nested `depth` levels deep (built iteratively: the generator itself must not overflow). */
export function nested(depth: number, leaf: unknown = 1): unknown {
  let value: unknown = leaf;
  for (let i = 0; i < depth; i++) value = i % 2 === 0 ? { a: value } : [value];
  return value;
}

/** One of `values`, a copy each time: mutations change generated values in place, and must not change the constants. */
function freshFrom<T>(...values: T[]): Arbitrary<T> {
  return fc.constantFrom(...values).map((value) => structuredClone(value));
}

/** A value of the wrong kind for whatever field it replaces (shallow). */
const wrongValue: Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: freshFrom<unknown>(null, true, false, [], {}, [null], { "": "" }) },
  { weight: 3, arbitrary: weirdNumber },
  { weight: 4, arbitrary: nastyString },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
);

/** A value of the wrong kind for whatever field it replaces, sometimes nested deep. */
const weirdValue: Arbitrary<unknown> = fc.oneof({ weight: 12, arbitrary: wrongValue }, { weight: 1, arbitrary: fc.integer({ min: 10, max: 2_000 }).map((depth) => nested(depth)) });

const timestamp: Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.constant(null).map(() => new Date().toISOString()) },
  { weight: 3, arbitrary: fc.date({ noInvalidDate: true, min: new Date("0000-01-01T00:00:00Z"), max: new Date("9999-12-31T23:59:59Z") }).map((d) => d.toISOString()) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "2025-01-01T00:00:00+05:30",
      "2025-13-01T00:00:00Z",
      "2025-01-01",
      "9999-12-31T23:59:59.999Z",
      "1970-01-01T00:00:00Z",
      "+275760-09-13T00:00:00.000Z",
    ),
  },
  { weight: 1, arbitrary: nastyString },
);

/**
 * The leaves of near-valid values. `strict` ones always satisfy the schema (the oracle: a strict
 * envelope must decode); the others are sometimes hostile (empty, huge, wrong characters).
 */
interface Leaves {
  token: Arbitrary<string>;
  /** A non-empty free text (method names, URIs, names in catalogs). */
  text: Arbitrary<string>;
  timestamp: Arbitrary<string>;
  deadline: Arbitrary<string>;
  inputSchema: Arbitrary<unknown>;
}

const strictToken = fc.stringMatching(/^[A-Za-z0-9_-]{1,16}$/);
const strictTimestamp = fc.date({ noInvalidDate: true, min: new Date("0000-01-01T00:00:00Z"), max: new Date("9999-12-31T23:59:59Z") }).map((d) => d.toISOString());

function leaves(strict: boolean): Leaves {
  const futureDeadline = fc.integer({ min: 1_000, max: 10_000 }).map((ms) => new Date(Date.now() + ms).toISOString());
  if (strict) {
    return {
      token: strictToken,
      text: fc.string({ minLength: 1, maxLength: 24 }),
      timestamp: strictTimestamp,
      deadline: fc.oneof({ weight: 6, arbitrary: futureDeadline }, { weight: 1, arbitrary: strictTimestamp }),
      inputSchema: fc.constant({ type: "object" }),
    };
  }
  return {
    token: fc.oneof({ weight: 8, arbitrary: strictToken }, { weight: 1, arbitrary: nastyString }),
    text: nastyString,
    timestamp,
    deadline: fc.oneof({ weight: 6, arbitrary: futureDeadline }, { weight: 2, arbitrary: timestamp }),
    inputSchema: fc.oneof(fc.constant({ type: "object" }), weirdValue),
  };
}

const jsonObject: Arbitrary<Record<string, unknown>> = fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 });

function pick<T>(values: readonly T[], other: Arbitrary<T>): Arbitrary<T> {
  return values.length === 0 ? other : fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...values) }, { weight: 1, arbitrary: other });
}

/**
 * A request's `params._meta`: of a 2025 request (a progress token), of a 2026-07-28 one (the
 * per-request keys), or of the wrong shape (not an object, a progress token neither string nor
 * number): what an MCP server's schema refuses, which must be answered at once, not forwarded.
 */
const progressToken = fc.oneof({ weight: 3, arbitrary: fc.oneof(fc.string({ maxLength: 12 }), fc.integer()) }, { weight: 1, arbitrary: wrongValue });
const requestMeta: Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ progressToken }, { requiredKeys: [] }) },
  {
    weight: 3,
    arbitrary: fc.record(
      {
        [META.protocolVersion]: fc.constant("2026-07-28"),
        [META.clientCapabilities]: freshFrom<unknown>({}, { extensions: {} }),
        [META.clientInfo]: freshFrom({ name: "dmcp-fuzz", version: "1" }),
        progressToken,
      },
      { requiredKeys: [META.protocolVersion, META.clientCapabilities] },
    ),
  },
  { weight: 2, arbitrary: wrongValue },
  { weight: 1, arbitrary: fc.record({ "io.modelcontextprotocol/related-task": wrongValue }) },
);

/** MCP methods and params of the calls the gateway and executors serve, aimed at the running tools. */
function mcpParams(world: FuzzWorld, leaf: Leaves): Arbitrary<{ method: string; params?: Record<string, unknown> }> {
  const toolArgs = fc.record(
    {
      text: nastyString,
      a: weirdNumber,
      b: weirdNumber,
      // The fixture's `big` tool: bounded, so the fuzz measures the gateway, not a 64 MiB answer.
      bytes: fc.integer({ min: 0, max: 200_000 }),
      _meta: fc.record({ progressToken: fc.oneof(fc.string(), fc.integer()) }, { requiredKeys: [] }),
    },
    { requiredKeys: [] },
  );
  const uri = fc.oneof(
    { weight: 4, arbitrary: pick(world.resourceUris, nastyString) },
    { weight: 1, arbitrary: fc.webUrl() },
    // Long URIs of repeated segments: what an announced template's matcher must reject without backtracking.
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom("x", "a-", "a.", "a/", "a,"), fc.integer({ min: 20, max: 4_000 }), fc.constantFrom("", "y", "/"))
        .map(([part, n, last]) => part.repeat(n) + last),
    },
  );
  const calls = [
    {
      weight: 6,
      arbitrary: fc.record({
        method: fc.constant("tools/call"),
        params: fc.record({ name: pick(world.tools, nastyString), arguments: toolArgs, _meta: requestMeta }, { requiredKeys: ["name"] }),
      }),
    },
    { weight: 2, arbitrary: fc.record({ method: fc.constant("resources/read"), params: fc.record({ uri, _meta: requestMeta }, { requiredKeys: ["uri"] }) }) },
    {
      weight: 1,
      arbitrary: fc.record({
        method: fc.constant("prompts/get"),
        params: fc.record(
          { name: fc.oneof(fc.constant("greet"), nastyString), arguments: fc.record({ who: nastyString }), _meta: requestMeta },
          { requiredKeys: ["name", "arguments"] },
        ),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        method: fc.constant("completion/complete"),
        params: fc.record(
          {
            ref: fc.record({ type: fc.constantFrom("ref/prompt", "ref/resource", "ref/other"), name: nastyString, uri }, { requiredKeys: ["type"] }),
            argument: fc.record({ name: nastyString, value: nastyString }),
            _meta: requestMeta,
          },
          { requiredKeys: ["ref", "argument"] },
        ),
      }),
    },
    { weight: 1, arbitrary: fc.record({ method: fc.constantFrom("resources/subscribe", "resources/unsubscribe"), params: fc.record({ uri }) }) },
    {
      weight: 2,
      arbitrary: fc.record(
        {
          method: fc.constantFrom("ping", "tools/list", "resources/list", "resources/templates/list", "prompts/list", "logging/setLevel", "server/discover"),
          params: jsonObject,
        },
        { requiredKeys: ["method"] },
      ),
    },
    { weight: 1, arbitrary: fc.record({ method: leaf.text, params: jsonObject }, { requiredKeys: ["method"] }) },
  ];
  return fc.oneof(...calls);
}

// ---------------------------------------------------------------------------------------------------
// dMCP envelopes

/**
 * An envelope of one of `types` (before mutation), its payload shaped like the real ones. With
 * `strict`, it is valid: decodeEnvelope must accept it.
 */
export function envelopeOf(
  world: FuzzWorld,
  options: { types?: readonly string[]; strict?: boolean; heartbeat?: "heartbeat" | "announce" } = {},
): Arbitrary<Record<string, unknown>> {
  const leaf = leaves(options.strict ?? false);
  const service = pick(world.services, leaf.token);
  const instance = pick(world.instances, leaf.token);
  const topic = options.strict ? fc.constantFrom(...world.topics) : pick(world.topics, nastyString);
  const liveness = { service, instance, status: fc.constantFrom("starting", "ready", "degraded", "stopping"), interval_ms: fc.integer({ min: 1, max: 60_000 }) };
  const catalogItem = (key: string) => fc.dictionary(fc.constant(key), leaf.text, { minKeys: 1, maxKeys: 1 });
  const tool = fc.record({ name: fc.stringMatching(/^fuzz_[a-z]{1,8}$/), inputSchema: leaf.inputSchema });
  const payloads: Record<string, Arbitrary<unknown>> = {
    prompt_request: fc.tuple(service, mcpParams(world, leaf)).map(([svc, call]) => ({ service: svc, ...call })),
    prompt_response: fc.record({ result: jsonObject }),
    error_notification: fc.record(
      {
        code: fc.constantFrom("INVALID_ENVELOPE", "UPSTREAM_ERROR", "NOT_A_CODE"),
        message: nastyString,
        jsonrpc_code: fc.integer({ min: -32768, max: -32000 }),
        data: fc.jsonValue({ maxDepth: 2 }),
      },
      { requiredKeys: ["code", "message"] },
    ),
    context_update: fc.record(
      { topic, method: fc.constantFrom("notifications/cancelled", "notifications/progress", "dmcp/accepted"), params: jsonObject, data: fc.jsonValue({ maxDepth: 3 }) },
      { requiredKeys: [] },
    ),
    agent_heartbeat: fc.oneof(
      ...(options.heartbeat === "announce" ? [] : [fc.record({ kind: fc.constant("heartbeat"), ...liveness, inflight: fc.nat(100), handled: fc.nat() })]),
      ...(options.heartbeat === "heartbeat"
        ? []
        : [
            fc.record(
              {
                kind: fc.constant("announce"),
                ...liveness,
                started_at: leaf.timestamp,
                capabilities: fc.constantFrom({}, { tools: {} }, { resources: {} }),
                catalog: fc.record(
                  {
                    tools: fc.array(tool, { maxLength: 3 }),
                    resources: fc.array(catalogItem("uri"), { maxLength: 2 }),
                    resource_templates: fc.array(fc.record({ uriTemplate }), { maxLength: 2 }),
                    prompts: fc.array(catalogItem("name"), { maxLength: 2 }),
                  },
                  { requiredKeys: [] },
                ),
              },
              { requiredKeys: ["kind", "service", "instance", "status", "interval_ms", "started_at", "catalog"] },
            ),
          ]),
    ),
  };
  return fc.constantFrom(...(options.types ?? MESSAGE_TYPES)).chain((type) =>
    fc.record(
      {
        dMCP_version: fc.constant(DMCP_VERSION),
        type: fc.constant(type),
        id: fc.oneof(fc.uuid(), leaf.token),
        correlation_id: fc.oneof(fc.uuid(), leaf.token),
        session_id: leaf.token,
        timestamp: leaf.timestamp,
        sender_id: leaf.token,
        deadline: leaf.deadline,
        receipt: fc.boolean(),
        payload: payloads[type] ?? jsonObject,
      },
      { requiredKeys: ["dMCP_version", "type", "id", "timestamp", "sender_id", "payload"] },
    ),
  );
}

/** URI templates, some of them with many expressions side by side (a matcher must not backtrack on those). */
const uriTemplate: Arbitrary<string> = fc
  .array(fc.oneof(fc.constantFrom("file:///", "/", "-", "x", ",", "."), fc.constantFrom("{a}", "{+b}", "{#c}", "{/d}", "{.e}", "{?f,g}", "{&h}", "{i*}")), {
    minLength: 1,
    maxLength: 12,
  })
  .map((parts) => parts.join(""));

// ---------------------------------------------------------------------------------------------------
// JSON-RPC messages (MCP clients' side)

export function jsonRpcMessage(world: FuzzWorld): Arbitrary<unknown> {
  const id = fc.oneof({ weight: 6, arbitrary: fc.integer() }, { weight: 3, arbitrary: fc.string({ maxLength: 12 }) }, { weight: 1, arbitrary: weirdValue });
  const initialize = fc.record({
    method: fc.constant("initialize"),
    params: fc.record(
      {
        protocolVersion: fc.oneof(fc.constantFrom("2025-11-25", "2025-06-18", "2024-11-05", "2026-07-28"), nastyString),
        capabilities: jsonObject,
        clientInfo: fc.record({ name: nastyString, version: nastyString }),
      },
      { requiredKeys: [] },
    ),
  });
  const call = fc.oneof({ weight: 9, arbitrary: mcpParams(world, leaves(false)) }, { weight: 1, arbitrary: initialize });
  const request = fc.tuple(id, call).map(([requestId, c]) => ({ jsonrpc: "2.0", id: requestId, ...c }));
  const notification = fc
    .oneof(
      fc.record({ method: fc.constant("notifications/initialized") }),
      fc.record({ method: fc.constant("notifications/cancelled"), params: fc.record({ requestId: id, reason: nastyString }, { requiredKeys: [] }) }),
      fc.record({ method: fc.constantFrom("notifications/progress", "notifications/roots/list_changed"), params: jsonObject }),
      fc.record({ method: nastyString, params: jsonObject }, { requiredKeys: ["method"] }),
    )
    .map((n) => ({ jsonrpc: "2.0", ...n }));
  const response = fc.oneof(
    id.map((requestId) => ({ jsonrpc: "2.0", id: requestId, result: {} })),
    id.map((requestId) => ({ jsonrpc: "2.0", id: requestId, error: { code: -32601, message: "no" } })),
  );
  const single = fc.oneof({ weight: 7, arbitrary: request }, { weight: 2, arbitrary: notification }, { weight: 1, arbitrary: response });
  return fc.oneof({ weight: 9, arbitrary: single }, { weight: 1, arbitrary: fc.array(single, { maxLength: 4 }) });
}

// ---------------------------------------------------------------------------------------------------
// Mutations

type MutationKind = "delete" | "replace" | "prototype-key" | "wrap" | "deep";
interface Mutation {
  at: number;
  kind: MutationKind;
  value: unknown;
  key: string;
  depth: number;
}

const mutation: Arbitrary<Mutation> = fc.record({
  at: fc.nat(),
  kind: fc.constantFrom<MutationKind>("delete", "replace", "replace", "prototype-key", "wrap", "deep"),
  value: weirdValue,
  key: fc.constantFrom(...PROTOTYPE_KEYS),
  depth: fc.integer({ min: 50, max: 3_000 }),
});

/** Every (container, key) position in a JSON value, the root's fields first. */
function positions(root: unknown): [Record<string, unknown>, string][] {
  const out: [Record<string, unknown>, string][] = [];
  const stack: unknown[] = [root];
  while (stack.length > 0 && out.length < 200) {
    const value = stack.pop();
    if (typeof value !== "object" || value === null) continue;
    for (const key of Object.keys(value)) {
      out.push([value as Record<string, unknown>, key]);
      stack.push((value as Record<string, unknown>)[key]);
    }
  }
  return out;
}

/** Applies mutations in place; a `prototype-key` mutation adds an own `__proto__` (or similar) key. */
function applyMutations(root: unknown, mutations: Mutation[]): unknown {
  for (const m of mutations) {
    const all = positions(root);
    const spot = all[m.at % Math.max(1, all.length)];
    if (!spot) continue;
    const [container, key] = spot;
    switch (m.kind) {
      case "delete":
        delete container[key];
        break;
      case "replace":
        container[key] = m.value;
        break;
      case "prototype-key":
        Object.defineProperty(container, m.key, { value: m.value, enumerable: true, writable: true, configurable: true });
        break;
      case "wrap":
        container[key] = Array.isArray(container[key]) ? { value: container[key] } : [container[key]];
        break;
      case "deep":
        container[key] = nested(m.depth, container[key]);
        break;
    }
  }
  return root;
}

type TextMutation =
  | { kind: "none" }
  | { kind: "number"; token: string; at: number }
  | { kind: "truncate"; at: number }
  | { kind: "bytes"; at: number; bytes: number[] }
  | { kind: "duplicate-key"; key: string; value: string }
  | { kind: "pad"; text: string };

const textMutation: Arbitrary<TextMutation> = fc.oneof(
  { weight: 12, arbitrary: fc.constant({ kind: "none" as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("number" as const), token: fc.constantFrom(...NUMBER_TOKENS), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("bytes" as const), at: fc.nat(), bytes: fc.constantFrom(...INVALID_UTF8) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("duplicate-key" as const),
      key: fc.constantFrom("type", "payload", "id", "jsonrpc", "method", "__proto__"),
      value: fc.constantFrom('"x"', "null", "{}", "[]", "1e999"),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("pad" as const), text: fc.constantFrom("\ufeff", "   ", "\t\r", "\u2028", "x", "}", "]", "\u0000") }) },
);

/** Serialises a value and damages the text or its bytes. */
function render(value: unknown, damage: TextMutation): Uint8Array {
  let text: string;
  try {
    text = JSON.stringify(value) ?? "null";
  } catch {
    // Stacked deep mutations can nest past what JSON.stringify recurses through; send deep text instead.
    text = `{"dMCP_version":"0.1","deep":${"[".repeat(10_000)}${"]".repeat(10_000)}}`;
  }
  switch (damage.kind) {
    case "none":
      return encoder.encode(text);
    case "number": {
      const numbers = [...text.matchAll(/-?\d+(\.\d+)?([eE][+-]?\d+)?/g)];
      const hit = numbers[damage.at % Math.max(1, numbers.length)];
      text = hit?.index === undefined ? `${text.slice(0, -1)},"n":${damage.token}}` : text.slice(0, hit.index) + damage.token + text.slice(hit.index + hit[0].length);
      return encoder.encode(text);
    }
    case "truncate":
      return encoder.encode(text.slice(0, damage.at % Math.max(1, text.length)));
    case "bytes": {
      const bytes = encoder.encode(text);
      const at = damage.at % (bytes.length + 1);
      return Uint8Array.from([...bytes.subarray(0, at), ...damage.bytes, ...bytes.subarray(at)]);
    }
    case "duplicate-key":
      return encoder.encode(text.endsWith("}") ? `${text.slice(0, -1)},"${damage.key}":${damage.value}}` : text);
    case "pad":
      return encoder.encode(damage.text + text + damage.text);
  }
}

/** A near-valid value: usually intact, often with one to three mutations, sometimes damaged as text. */
export function mutated(source: string, valid: Arbitrary<unknown>): Arbitrary<FuzzInput> {
  return fc
    .tuple(valid, fc.oneof({ weight: 2, arbitrary: fc.constant([] as Mutation[]) }, { weight: 5, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 3 }) }), textMutation)
    .map(([value, mutations, damage]) => ({
      source: `${source}/${mutations.length === 0 && damage.kind === "none" ? "valid" : mutations.length > 0 ? "mutated" : `text-${damage.kind}`}`,
      bytes: render(applyMutations(value, mutations), damage),
    }));
}

// ---------------------------------------------------------------------------------------------------
// The inputs of each target

export const rawBytes: Arbitrary<FuzzInput> = fc.uint8Array({ maxLength: 256 }).map((bytes) => ({ source: "bytes", bytes }));
export const anyJson: Arbitrary<FuzzInput> = fc.jsonValue({ maxDepth: 4 }).map((value) => ({ source: "json", bytes: encoder.encode(JSON.stringify(value)) }));
/** Nesting far deeper than any object the code builds (JSON.parse copes; recursive code may not). */
export const deepText: Arbitrary<FuzzInput> = fc.tuple(fc.integer({ min: 1_000, max: 20_000 }), fc.constantFrom("[", '{"a":')).map(([depth, open]) => ({
  source: "deep",
  bytes: encoder.encode(`{"dMCP_version":"0.1","type":"prompt_request","payload":${open.repeat(depth)}1${(open === "[" ? "]" : "}").repeat(depth)}}`),
}));

/** Envelopes that satisfy the schema: decodeEnvelope must accept every one. */
export function strictEnvelope(world: FuzzWorld, options: Parameters<typeof envelopeOf>[1] = {}): Arbitrary<FuzzInput> {
  return envelopeOf(world, { ...options, strict: true }).map((value) => ({ source: "envelope/strict", bytes: encoder.encode(JSON.stringify(value)) }));
}

/** Inputs for decodeEnvelope: anything, near-valid envelopes of every type, and oversized ones. */
export function envelopeInput(world: FuzzWorld, maxBytes: number): Arbitrary<FuzzInput> {
  const oversized = fc.integer({ min: 1, max: 64 * 1024 }).map((extra) => ({
    source: "oversized",
    bytes: encoder.encode(`{"dMCP_version":"0.1","type":"prompt_request","id":"big","correlation_id":"c-big","payload":"${"x".repeat(maxBytes + extra)}"}`),
  }));
  return fc.oneof(
    { weight: 20, arbitrary: rawBytes },
    { weight: 20, arbitrary: anyJson },
    { weight: 100, arbitrary: mutated("envelope", envelopeOf(world)) },
    { weight: 20, arbitrary: strictEnvelope(world) },
    { weight: 3, arbitrary: deepText },
    { weight: 1, arbitrary: oversized },
  );
}

/** Bodies and lines for the MCP edges: anything, and near-valid JSON-RPC (single or batched). */
export function jsonRpcInput(world: FuzzWorld): Arbitrary<FuzzInput> {
  return fc.oneof(
    { weight: 10, arbitrary: rawBytes },
    { weight: 20, arbitrary: anyJson },
    { weight: 150, arbitrary: mutated("jsonrpc", jsonRpcMessage(world)) },
    { weight: 3, arbitrary: deepText },
  );
}

/** Draws `count` inputs in chunks (so a large run never holds them all), reproducible from `seed`. */
export function* draw<T>(arbitrary: Arbitrary<T>, count: number, seed: number, chunk = 500): Generator<T> {
  for (let done = 0, round = 0; done < count; round++) {
    const size = Math.min(chunk, count - done);
    yield* fc.sample(arbitrary, { numRuns: size, seed: (seed + round * 7919) | 0 });
    done += size;
  }
}

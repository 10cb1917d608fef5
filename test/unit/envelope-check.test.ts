/**
 * The quick check of a call's envelopes (src/protocol/envelope-check.ts) never says yes where the
 * zod schema would refuse an envelope or return it changed; and it does say yes to what the bus sends
 * on every call, or it would save nothing.
 */
import { isDeepStrictEqual } from "node:util";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createEnvelope, Envelope, validateEnvelope } from "../../src/protocol/index.js";
import { isPlainCallEnvelope } from "../../src/protocol/envelope-check.js";

const SIGNATURE = { alg: "ed25519", key: "A".repeat(56), sig: "b".repeat(86) };

/** What gateways and executors send for one call, in the shapes createEnvelope gives them. */
function callEnvelopes(): Record<string, unknown>[] {
  const request = createEnvelope(
    "prompt_request",
    { service: "svc", method: "tools/call", params: { name: "echo", arguments: { text: "x" }, _meta: { progressToken: 1 } } },
    {
      sender: "gw-1",
      id: "c-1",
      correlationId: "c-1",
      sessionId: "s-1",
      deadline: new Date(Date.now() + 1000),
      caller: { kind: "token", subject: "alice", issuer: "https://issuer", claims: { role: "x" }, token: "t" },
    },
  );
  request.receipt = true;
  request.client_session = { gateway: "gw-1", capabilities: { sampling: {} }, log_level: "info" };
  const reply = { sender: "svc-1", correlationId: "c-1" };
  return [
    request,
    { ...request, reply_to: "_INBOX.x.1", signature: SIGNATURE },
    createEnvelope("prompt_request", { service: "svc", method: "ping" }, { sender: "gw-1" }),
    createEnvelope("prompt_response", { result: { content: [{ type: "text", text: "x" }] } }, reply),
    createEnvelope("error_notification", { code: "UPSTREAM_ERROR", message: "no", jsonrpc_code: -32602, data: { a: 1 } }, reply),
    createEnvelope("context_update", { method: "dmcp/accepted", params: { instance: "svc-1" } }, reply),
    createEnvelope("context_update", { method: "notifications/progress", params: { progress: 1 } }, reply),
  ].map((envelope) => JSON.parse(JSON.stringify(envelope)) as Record<string, unknown>);
}

/** The places a mutation may hit: the envelope's own fields and those of its parts. */
const PATHS = [
  ["dMCP_version"],
  ["type"],
  ["id"],
  ["correlation_id"],
  ["session_id"],
  ["timestamp"],
  ["sender_id"],
  ["deadline"],
  ["signature"],
  ["signature", "alg"],
  ["signature", "key"],
  ["signature", "sig"],
  ["signature", "extra"],
  ["receipt"],
  ["reply_to"],
  ["caller"],
  ["caller", "kind"],
  ["caller", "subject"],
  ["caller", "issuer"],
  ["caller", "claims"],
  ["caller", "token"],
  ["client_session"],
  ["client_session", "gateway"],
  ["client_session", "capabilities"],
  ["client_session", "log_level"],
  ["payload"],
  ["payload", "service"],
  ["payload", "method"],
  ["payload", "params"],
  ["payload", "result"],
  ["payload", "code"],
  ["payload", "message"],
  ["payload", "jsonrpc_code"],
  ["payload", "data"],
  ["payload", "topic"],
  ["payload", "kind"],
  ["payload", "params", "__proto__"],
  ["payload", "params", "constructor"],
  ["payload", "result", "__proto__"],
  ["__proto__"],
];

/** Edge values: lengths at the limits, numbers that are not safe integers, names and timestamps. */
const EDGE_VALUES: unknown[] = [
  undefined,
  "",
  "a".repeat(256),
  "a".repeat(257),
  "a".repeat(32),
  "a".repeat(33),
  "a".repeat(1025),
  "bad name",
  "2026-02-29T00:00:00Z",
  "2024-02-29T00:00:00.5+01:00",
  "2026-12-07T10:00:00",
  1.5,
  2 ** 53,
  Number.NaN,
  [],
  {},
  { type: "object" },
  SIGNATURE,
  { ...SIGNATURE, extra: 1 },
  "prompt_request",
  "agent_heartbeat",
  "0.2",
];
const VALUE = fc.oneof(fc.jsonValue(), fc.constantFrom(...EDGE_VALUES));

/** Sets (or, for undefined, deletes) the value at `path`, creating objects on the way. */
function mutate(envelope: Record<string, unknown>, path: string[], value: unknown): Record<string, unknown> {
  const copy = JSON.parse(JSON.stringify(envelope)) as Record<string, unknown>;
  let at = copy;
  for (const key of path.slice(0, -1)) {
    if (typeof at[key] !== "object" || at[key] === null) at[key] = {};
    at = at[key] as Record<string, unknown>;
  }
  const last = path.at(-1)!;
  if (value === undefined) delete at[last];
  else Object.defineProperty(at, last, { value, enumerable: true, writable: true, configurable: true });
  return copy;
}

/** The property: the quick check says yes only where the schema accepts and returns an equal value. */
function agreesWithSchema(raw: unknown): void {
  if (!isPlainCallEnvelope(raw)) return;
  const parsed = Envelope.safeParse(raw);
  expect(parsed.success).toBe(true);
  // Node's strict comparison (prototypes, own keys, undefined values); vitest's toStrictEqual also reads a `constructor` key as the type.
  expect(isDeepStrictEqual(parsed.data, raw)).toBe(true);
}

describe("the quick envelope check", () => {
  it("passes what the bus sends on every call, as the schema would", () => {
    for (const envelope of callEnvelopes()) {
      expect(isPlainCallEnvelope(envelope)).toBe(true);
      agreesWithSchema(envelope);
      expect(validateEnvelope(envelope)).toEqual({ ok: true, envelope });
    }
  });

  it("never passes an envelope the schema refuses or changes (each field set to each edge value)", () => {
    for (const envelope of callEnvelopes()) for (const path of PATHS) for (const value of EDGE_VALUES) agreesWithSchema(mutate(envelope, path, value));
  });

  it("never passes an envelope the schema refuses or changes (one or two fields mutated)", () => {
    const envelopes = callEnvelopes();
    const path = fc.constantFrom(...PATHS);
    fc.assert(
      fc.property(fc.nat(envelopes.length - 1), path, VALUE, fc.option(fc.tuple(path, VALUE)), (index, first, value, second) => {
        let envelope = mutate(envelopes[index]!, first, value);
        if (second) envelope = mutate(envelope, second[0], second[1]);
        agreesWithSchema(envelope);
      }),
      { numRuns: 5000 },
    );
  });

  it("never passes arbitrary JSON the schema refuses", () => {
    fc.assert(fc.property(fc.jsonValue(), agreesWithSchema), { numRuns: 1000 });
  });

  it("leaves to the schema what it would fill in, and still gives the schema's errors", () => {
    const [request] = callEnvelopes();
    const withoutCapabilities = mutate(request!, ["client_session", "capabilities"], undefined);
    expect(isPlainCallEnvelope(withoutCapabilities)).toBe(false);
    const decoded = validateEnvelope(withoutCapabilities);
    expect(decoded.ok && decoded.envelope.type === "prompt_request" && decoded.envelope.client_session?.capabilities).toEqual({});
    const bad = validateEnvelope(mutate(request!, ["payload", "service"], "bad name"));
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.error.message).toMatch(/payload\.service/);
  });
});

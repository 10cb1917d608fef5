/**
 * The pure parts of dMCP: envelopes, subjects, error mapping, the MCP message schema check, the
 * published JSON Schemas, the gateway's aggregated catalog (namespacing and routing) and the config
 * file. No bus, no processes.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { describe, expect, it } from "vitest";

import type { LiveInstance } from "../../src/bus/registry.js";
import { ConfigError, loadConfig, parseConfig } from "../../src/cli/config.js";
import { configJsonSchema, CONFIG_SCHEMA_FILE, policyJsonSchema, POLICY_SCHEMA_FILE } from "../../scripts/write-config-schema.js";
import { AggregatedCatalog, catalogsByService, parseQualifiedUri, qualifyName, qualifyUri, type ServiceCatalog } from "../../src/gateway/catalog/catalog.js";
import {
  asDmcpError,
  BusError,
  CallError,
  cancellation,
  createEnvelope,
  decodeEnvelope,
  DEFAULT_MAX_ENVELOPE_BYTES,
  DMCP_VERSION,
  DmcpError,
  encodeEnvelope,
  ERROR_CODES,
  ErrorCode,
  errorForCode,
  errorFromPayload,
  errorPayload,
  fromJsonRpcError,
  InternalError,
  InvalidSubjectTokenError,
  isDmcpError,
  isEnvelopeId,
  jsonRpcCodeFor,
  JsonRpcErrorCode,
  MAX_ENVELOPE_ID_CHARS,
  MESSAGE_TYPES,
  messageProblem,
  parseHeartbeatSubject,
  parseRegistryKey,
  REGISTRY_BUCKET,
  registryKey,
  RequestError,
  salvageIds,
  SecurityError,
  subjects,
  SUBJECT_ROOT,
  toJsonRpcError,
  UpstreamError,
  validateEnvelope,
  type AnnouncePayload,
  type Catalog,
  type Envelope,
  Envelope as EnvelopeSchema,
} from "../../src/protocol/index.js";
import { jsonSchemas } from "../../src/protocol/json-schema.js";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const schemasDir = path.join(repoRoot, "schemas");

// ---------------------------------------------------------------------------
// samples
// ---------------------------------------------------------------------------

const FULL_CATALOG: Catalog = {
  tools: [{ name: "echo", description: "echoes", inputSchema: { type: "object" } }],
  resources: [{ uri: "file:///a.txt", name: "a" }],
  resource_templates: [{ uriTemplate: "notes://{id}", name: "note" }],
  prompts: [{ name: "greet" }],
};

/** One valid envelope of each type, built the way the gateway and executors build them. */
function sampleEnvelopes(): Record<(typeof MESSAGE_TYPES)[number], Envelope> {
  const deadline = new Date(Date.now() + 30_000);
  const request = createEnvelope(
    "prompt_request",
    { service: "everything", method: "tools/call", params: { name: "echo", arguments: { message: "hi" } } },
    { sender: "gateway-1", sessionId: "session-1", deadline },
  );
  request.correlation_id = request.id;
  return {
    prompt_request: request,
    prompt_response: createEnvelope(
      "prompt_response",
      { result: { content: [{ type: "text", text: "hi" }] } },
      { sender: "everything-1", correlationId: request.id, sessionId: "session-1" },
    ),
    error_notification: createEnvelope(
      "error_notification",
      { code: "NO_RESPONDERS", message: "nobody home", jsonrpc_code: -32011, data: { service: "everything" } },
      { sender: "everything-1", correlationId: request.id },
    ),
    context_update: createEnvelope(
      "context_update",
      { topic: "sensors.pressure", method: "notifications/message", params: { level: "info" }, data: { bar: 3 } },
      { sender: "sensor-1" },
    ),
    agent_heartbeat: createEnvelope(
      "agent_heartbeat",
      {
        kind: "announce",
        service: "everything",
        instance: "everything-1",
        status: "ready",
        interval_ms: 2000,
        started_at: new Date().toISOString(),
        server_info: { name: "everything", version: "1.0.0" },
        protocol_version: "2025-11-25",
        capabilities: { tools: {} },
        instructions: "be nice",
        catalog: FULL_CATALOG,
      },
      { sender: "everything-1" },
    ),
  };
}

function decodeOk(bytes: Uint8Array, maxBytes?: number): Envelope {
  const decoded = decodeEnvelope(bytes, maxBytes);
  if (!decoded.ok) throw new Error(`expected a valid envelope, got ${decoded.error.message}`);
  return decoded.envelope;
}

function decodeError(value: unknown): DmcpError {
  const decoded = validateEnvelope(value);
  if (decoded.ok) throw new Error("expected the envelope to be rejected");
  return decoded.error;
}

// ---------------------------------------------------------------------------
// envelope
// ---------------------------------------------------------------------------

describe("envelope", () => {
  it("encodes an envelope as the UTF-8 bytes of its JSON, whatever the characters, and decodes it back", () => {
    const text = 'é ü 中文 😀 \u2028 \ud800 \u0000 "quoted"';
    const envelope = createEnvelope("prompt_request", { service: "s", method: "tools/call", params: { text, big: "x".repeat(10_000) } }, { sender: "t" });
    const bytes = encodeEnvelope(envelope);
    expect(bytes).toBeInstanceOf(Uint8Array);
    expect(Array.from(bytes)).toEqual(Array.from(new TextEncoder().encode(JSON.stringify(envelope))));
    const decoded = decodeEnvelope(bytes);
    expect(decoded.ok && decoded.envelope).toEqual(envelope);
  });

  it("writes the ids before the payload, so that an oversized envelope's head still names them", () => {
    const envelope = createEnvelope(
      "prompt_request",
      { service: "s", method: "tools/call", params: { pad: "x".repeat(100) } },
      {
        sender: "t",
        id: "req-1",
        correlationId: "req-1",
        sessionId: "sess",
        deadline: new Date(),
      },
    );
    const keys = Object.keys(envelope);
    expect(keys.at(-1)).toBe("payload");
    expect(keys.indexOf("correlation_id")).toBeLessThan(keys.indexOf("payload"));
    const oversized = decodeEnvelope(encodeEnvelope(envelope), 64);
    expect(oversized.ok).toBe(false);
    expect(salvageIds(oversized.ok ? undefined : oversized.raw)).toMatchObject({ correlationId: "req-1", sender: "t" });
  });

  it("creates, encodes and decodes every message type unchanged", () => {
    const samples = sampleEnvelopes();
    expect(Object.keys(samples).sort()).toEqual([...MESSAGE_TYPES].sort());
    for (const [type, envelope] of Object.entries(samples)) {
      expect(envelope.type).toBe(type);
      expect(envelope.dMCP_version).toBe(DMCP_VERSION);
      expect(envelope.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(Number.isNaN(Date.parse(envelope.timestamp))).toBe(false);
      expect(decodeOk(encodeEnvelope(envelope))).toEqual(envelope);
    }
  });

  it("sets the optional fields from the options, and only those", () => {
    const deadline = new Date("2030-01-01T00:00:00.000Z");
    const full = createEnvelope("prompt_request", { service: "s", method: "ping" }, { sender: "g", correlationId: "c-1", sessionId: "s-1", deadline });
    expect(full).toMatchObject({ sender_id: "g", correlation_id: "c-1", session_id: "s-1", deadline: "2030-01-01T00:00:00.000Z" });
    const asString = createEnvelope("prompt_request", { service: "s", method: "ping" }, { sender: "g", deadline: "2030-01-01T00:00:00Z" });
    expect(asString.deadline).toBe("2030-01-01T00:00:00Z");
    const bare = createEnvelope("prompt_request", { service: "s", method: "ping" }, { sender: "g" });
    expect(Object.keys(bare).sort()).toEqual(["dMCP_version", "id", "payload", "sender_id", "timestamp", "type"]);
  });

  it("gives every message a fresh id", () => {
    const ids = new Set(Array.from({ length: 100 }, () => createEnvelope("context_update", {}, { sender: "x" }).id));
    expect(ids.size).toBe(100);
  });

  it("keeps unknown fields on the envelope, in payloads and in catalog items", () => {
    const samples = sampleEnvelopes();
    const extended = {
      ...samples.prompt_request,
      future_field: { alg: "ed25519", value: "abc" },
      payload: { ...samples.prompt_request.payload, priority: 7 },
    };
    const decoded = decodeOk(encodeEnvelope(extended)) as Record<string, unknown>;
    expect(decoded.future_field).toEqual({ alg: "ed25519", value: "abc" });
    expect((decoded.payload as Record<string, unknown>).priority).toBe(7);

    const announce = samples.agent_heartbeat;
    const withExtras = {
      ...announce,
      payload: {
        ...announce.payload,
        region: "eu",
        catalog: { ...FULL_CATALOG, tools: [{ name: "echo", annotations: { readOnlyHint: true }, _meta: { x: 1 } }], tasks: [] },
      },
    };
    const back = decodeOk(encodeEnvelope(withExtras));
    expect(back).toEqual(withExtras);
  });

  it("fills the announcement's defaults (capabilities and catalog lists)", () => {
    const announce = createEnvelope(
      "agent_heartbeat",
      { kind: "announce", service: "s", instance: "i", status: "starting", interval_ms: 2000, started_at: new Date().toISOString(), catalog: {} },
      { sender: "i" },
    );
    const decoded = decodeOk(encodeEnvelope(announce));
    if (decoded.type !== "agent_heartbeat" || decoded.payload.kind !== "announce") throw new Error("wrong type");
    expect(decoded.payload.capabilities).toEqual({});
    expect(decoded.payload.catalog).toEqual({ tools: [], resources: [], resource_templates: [], prompts: [] });
  });

  it("answers bad JSON with INVALID_ENVELOPE and no raw value", () => {
    const decoded = decodeEnvelope(new TextEncoder().encode("{not json"));
    expect(decoded.ok).toBe(false);
    if (decoded.ok) return;
    expect(decoded.error).toBeInstanceOf(DmcpError);
    expect(decoded.error.code).toBe(ErrorCode.InvalidEnvelope);
    expect(decoded.error.jsonrpcCode).toBe(JsonRpcErrorCode.InvalidRequest);
    expect(decoded.raw).toBeUndefined();
  });

  it("names the path of what is wrong", () => {
    const request = sampleEnvelopes().prompt_request;
    const cases: [Record<string, unknown>, string][] = [
      [{ ...request, type: "bogus" }, "type"],
      [{ ...request, type: undefined }, "type"],
      [{ ...request, dMCP_version: "0.2" }, "dMCP_version"],
      [{ ...request, sender_id: undefined }, "sender_id"],
      [{ ...request, sender_id: "" }, "sender_id"],
      [{ ...request, id: 42 }, "id"],
      [{ ...request, timestamp: "yesterday" }, "timestamp"],
      [{ ...request, deadline: "soon" }, "deadline"],
      [{ ...request, payload: undefined }, "payload"],
      [{ ...request, payload: { service: "s" } }, "payload.method"],
      [{ ...request, payload: { service: "a.b", method: "tools/call" } }, "payload.service"],
      [{ ...request, payload: { service: "s", method: "x", params: [1] } }, "payload.params"],
      [{ ...sampleEnvelopes().prompt_response, payload: { result: "text" } }, "payload.result"],
      [{ ...sampleEnvelopes().error_notification, payload: { message: "m" } }, "payload.code"],
      [{ ...sampleEnvelopes().agent_heartbeat, payload: { kind: "nope" } }, "payload.kind"],
      [{ ...sampleEnvelopes().agent_heartbeat, payload: { ...sampleEnvelopes().agent_heartbeat.payload, status: "sleepy" } }, "payload.status"],
    ];
    for (const [value, pathName] of cases) {
      const error = decodeError(value);
      expect(error.code).toBe(ErrorCode.InvalidEnvelope);
      expect(error.message).toContain(`${pathName}:`);
      const issues = (error.data as { issues: { path: string }[] }).issues;
      expect(issues.map((i) => i.path)).toContain(pathName);
    }
    expect(decodeError([1, 2]).message).toContain("(root)");
    expect(decodeError(null).code).toBe(ErrorCode.InvalidEnvelope);
  });

  it("keeps the parsed JSON of an invalid envelope so that its ids can be salvaged", () => {
    const bad = { ...sampleEnvelopes().prompt_request, payload: {} };
    const decoded = decodeEnvelope(encodeEnvelope(bad));
    expect(decoded.ok).toBe(false);
    if (decoded.ok) return;
    expect(decoded.raw).toEqual(bad);
    expect(salvageIds(decoded.raw)).toEqual({ correlationId: bad.correlation_id, sender: "gateway-1" });
  });

  it("refuses envelopes over the limit with PAYLOAD_TOO_LARGE", () => {
    const big = createEnvelope("context_update", { data: "x".repeat(DEFAULT_MAX_ENVELOPE_BYTES) }, { sender: "s" });
    const decoded = decodeEnvelope(encodeEnvelope(big));
    expect(decoded.ok).toBe(false);
    if (decoded.ok) return;
    expect(decoded.error.code).toBe(ErrorCode.PayloadTooLarge);
    expect(decoded.error.jsonrpcCode).toBe(JsonRpcErrorCode.PayloadTooLarge);

    const small = encodeEnvelope(createEnvelope("context_update", {}, { sender: "s" }));
    expect(decodeEnvelope(small, small.byteLength).ok).toBe(true);
    const tooSmall = decodeEnvelope(small, small.byteLength - 1);
    expect(!tooSmall.ok && tooSmall.error.code).toBe(ErrorCode.PayloadTooLarge);
    // The limit is checked before parsing, so even bad JSON over the limit is PAYLOAD_TOO_LARGE.
    const junk = decodeEnvelope(new Uint8Array(11), 10);
    expect(!junk.ok && junk.error.code).toBe(ErrorCode.PayloadTooLarge);
  });

  it("has one rule for correlation ids (1-256 characters), which envelopes, salvaged ids and isEnvelopeId all follow", () => {
    expect(MAX_ENVELOPE_ID_CHARS).toBe(256);
    const request = sampleEnvelopes().prompt_request;
    for (const id of ["", "c", "c".repeat(255), "c".repeat(256), "c".repeat(257), 7, null]) {
      const fits = typeof id === "string" && id.length >= 1 && id.length <= 256;
      expect(isEnvelopeId(id)).toBe(fits);
      // The quick check of a call's envelopes and the schema agree with it.
      expect(validateEnvelope({ ...request, correlation_id: id }).ok).toBe(fits);
      expect(EnvelopeSchema.safeParse({ ...request, correlation_id: id }).success).toBe(fits);
      expect(salvageIds({ correlation_id: id }).correlationId).toBe(fits ? id : undefined);
    }
  });

  it("salvages correlation_id (else id) and sender_id from anything", () => {
    expect(salvageIds({ correlation_id: "c", id: "i", sender_id: "s" })).toEqual({ correlationId: "c", sender: "s" });
    expect(salvageIds({ id: "i" })).toEqual({ correlationId: "i" });
    expect(salvageIds({ id: 5, correlation_id: null, sender_id: 3 })).toEqual({});
    expect(salvageIds({ id: "" })).toEqual({});
    expect(salvageIds("text")).toEqual({});
    expect(salvageIds(null)).toEqual({});
    expect(salvageIds(undefined)).toEqual({});
  });
});

// ---------------------------------------------------------------------------
// subjects
// ---------------------------------------------------------------------------

describe("subjects", () => {
  it("builds the documented subjects", () => {
    expect(SUBJECT_ROOT).toBe("dmcp.v1");
    expect(subjects.request("everything")).toBe("dmcp.v1.req.everything");
    expect(subjects.queueGroup("everything")).toBe("dmcp-everything");
    expect(subjects.instanceRequest("everything", "everything-1a2b")).toBe("dmcp.v1.inst.everything.everything-1a2b.req");
    expect(subjects.context("sensors")).toBe("dmcp.v1.ctx.sensors");
    expect(subjects.context("sensors.pressure.hall_2")).toBe("dmcp.v1.ctx.sensors.pressure.hall_2");
    expect(subjects.contextAll()).toBe("dmcp.v1.ctx.>");
    expect(subjects.heartbeat("svc", "svc-1")).toBe("dmcp.v1.hb.svc.svc-1");
    expect(subjects.heartbeatAll()).toBe("dmcp.v1.hb.>");
    expect(subjects.errors("svc-1")).toBe("dmcp.v1.err.svc-1");
    expect(subjects.errorsAll()).toBe("dmcp.v1.err.>");
    expect(subjects.gatewayAnswer("gateway-1a2b")).toBe("dmcp.v1.gw.gateway-1a2b.answer");
    expect(subjects.gatewayCancel).toBe("dmcp.v1.gw.cancel");
    expect(subjects.sessionEvents("0f8b1c1e-0000-4000-8000-000000000000", "_GET_stream")).toBe("dmcp.v1.sse.0f8b1c1e-0000-4000-8000-000000000000._GET_stream");
    expect(subjects.sessionEventsAll()).toBe("dmcp.v1.sse.>");
    expect(subjects.rateSpent).toBe("dmcp.v1.rate.spent");
    expect(REGISTRY_BUCKET).toBe("dmcp_registry");
    expect(registryKey("svc", "svc-1")).toBe("svc.svc-1");
  });

  it("rejects tokens with dots, wildcards, white space or other characters", () => {
    const bad = ["", "a.b", "*", ">", "a*", "a>", "a b", " a", "a\tb", "a\nb", "é", "a/b", "a$b", "x".repeat(129)];
    const builders: ((value: string) => unknown)[] = [
      (v) => subjects.request(v),
      (v) => subjects.queueGroup(v),
      (v) => subjects.instanceRequest(v, "i"),
      (v) => subjects.instanceRequest("s", v),
      (v) => subjects.heartbeat(v, "i"),
      (v) => subjects.heartbeat("s", v),
      (v) => subjects.errors(v),
      (v) => subjects.gatewayAnswer(v),
      (v) => subjects.sessionEvents(v, "s"),
      (v) => subjects.sessionEvents("s", v),
      (v) => registryKey(v, "i"),
      (v) => registryKey("s", v),
    ];
    for (const value of bad) {
      for (const build of builders) {
        expect(() => build(value), JSON.stringify(value)).toThrow(InvalidSubjectTokenError);
      }
    }
    try {
      subjects.request("a.b");
    } catch (err) {
      expect(err).toBeInstanceOf(InvalidSubjectTokenError);
      expect((err as InvalidSubjectTokenError).code).toBe("INVALID_SUBJECT_TOKEN");
    }
    expect(subjects.request("x".repeat(128))).toBe(`dmcp.v1.req.${"x".repeat(128)}`);
  });

  it("accepts dotted topics but no empty segments or wildcards", () => {
    for (const topic of ["", ".a", "a.", "a..b", "a.*", "a.>", ">", "a b", "a.b c"]) {
      expect(() => subjects.context(topic), JSON.stringify(topic)).toThrow(InvalidSubjectTokenError);
    }
    const sixteen = Array.from({ length: 16 }, (_, i) => `t${i}`).join(".");
    expect(subjects.context(sixteen)).toBe(`dmcp.v1.ctx.${sixteen}`);
    expect(() => subjects.context(`${sixteen}.t16`)).toThrow(InvalidSubjectTokenError);
  });

  it("parses heartbeat subjects and registry keys back", () => {
    expect(parseHeartbeatSubject(subjects.heartbeat("svc", "svc-1"))).toEqual({ service: "svc", instance: "svc-1" });
    expect(parseHeartbeatSubject("dmcp.v1.hb.svc")).toBeUndefined();
    expect(parseHeartbeatSubject("dmcp.v1.hb.svc.i.extra")).toBeUndefined();
    expect(parseHeartbeatSubject("dmcp.v1.req.svc.i")).toBeUndefined();
    expect(parseHeartbeatSubject("dmcp.v2.hb.svc.i")).toBeUndefined();
    expect(parseHeartbeatSubject("other.v1.hb.svc.i")).toBeUndefined();

    expect(parseRegistryKey(registryKey("svc", "svc-1"))).toEqual({ service: "svc", instance: "svc-1" });
    expect(parseRegistryKey("svc")).toBeUndefined();
    expect(parseRegistryKey("a.b.c")).toBeUndefined();
    expect(parseRegistryKey("a.")).toBeUndefined();
    expect(parseRegistryKey("a.b c")).toBeUndefined();
    expect(parseRegistryKey("a.b@c")).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------

describe("error mapping", () => {
  it("has a JSON-RPC code for every dMCP error code", () => {
    expect(ERROR_CODES.sort()).toEqual(Object.keys(jsonRpcCodeFor).sort());
    for (const code of ERROR_CODES) {
      expect(Number.isInteger(jsonRpcCodeFor[code])).toBe(true);
      expect(new DmcpError(code, "m").jsonrpcCode).toBe(jsonRpcCodeFor[code]);
    }
  });

  it("matches the error table of PROTOCOL.md", () => {
    const protocolMd = path.join(repoRoot, "PROTOCOL.md");
    const text = readFileSync(protocolMd, "utf8");
    const documented = new Map<string, number>();
    for (const line of text.split("\n")) {
      const row = /^\|\s*`([A-Z_]+)`\s*\|\s*[^|\d-]*(-?\d+)/.exec(line);
      if (row) documented.set(row[1]!, Number(row[2]));
    }
    expect(Object.fromEntries(documented)).toEqual(jsonRpcCodeFor);
  });

  it("turns a local error into an error_notification payload and back", () => {
    const error = new DmcpError(ErrorCode.NoResponders, "nobody serves x", { data: { service: "x" } });
    const payload = errorPayload(error);
    expect(payload).toEqual({ code: "NO_RESPONDERS", message: "nobody serves x", jsonrpc_code: -32011, data: { service: "x" } });
    expect("data" in errorPayload(new DmcpError(ErrorCode.Internal, "m"))).toBe(false);

    const back = errorFromPayload(payload);
    expect(back).toBeInstanceOf(DmcpError);
    expect(back.code).toBe(ErrorCode.NoResponders);
    expect(back.message).toBe("nobody serves x");
    expect(back.jsonrpcCode).toBe(-32011);
    expect(back.data).toEqual({ service: "x" });

    // A custom JSON-RPC code (e.g. MethodNotFound for UNKNOWN_TARGET) survives the hop.
    const custom = errorFromPayload(errorPayload(new DmcpError(ErrorCode.UnknownTarget, "Method not found: x", { jsonrpcCode: -32601 })));
    expect(custom.jsonrpcCode).toBe(-32601);
  });

  it("maps unknown wire codes to INTERNAL and fills a missing jsonrpc_code from the table", () => {
    const unknown = errorFromPayload({ code: "SOMETHING_NEW", message: "m", jsonrpc_code: -32050 });
    expect(unknown.code).toBe(ErrorCode.Internal);
    expect(unknown.jsonrpcCode).toBe(-32050);
    const noJsonRpc = errorFromPayload({ code: "DEADLINE_EXCEEDED", message: "late" });
    expect(noJsonRpc.jsonrpcCode).toBe(JsonRpcErrorCode.DeadlineExceeded);
    expect(errorFromPayload({ code: "NOPE", message: "m" }).jsonrpcCode).toBe(JsonRpcErrorCode.InternalError);
  });

  it("passes upstream JSON-RPC errors through with their own code, message and data", () => {
    const upstream = new DmcpError(ErrorCode.UpstreamError, "Invalid arguments", { jsonrpcCode: -32602, data: { field: "x" } });
    expect(toJsonRpcError(upstream)).toEqual({ code: -32602, message: "Invalid arguments", data: { field: "x" } });
    // ... also after a hop over the bus.
    expect(toJsonRpcError(errorFromPayload(errorPayload(upstream)))).toEqual({ code: -32602, message: "Invalid arguments", data: { field: "x" } });
    const noData = toJsonRpcError(new DmcpError(ErrorCode.UpstreamError, "boom", { jsonrpcCode: -1 }));
    expect(noData).toEqual({ code: -1, message: "boom" });
  });

  it("gives every other error data.dmcp_code, merged with its data", () => {
    expect(toJsonRpcError(new DmcpError(ErrorCode.NoResponders, "none", { data: { service: "x" } }))).toEqual({
      code: -32011,
      message: "none",
      data: { dmcp_code: "NO_RESPONDERS", service: "x" },
    });
    expect(toJsonRpcError(new DmcpError(ErrorCode.DeadlineExceeded, "late"))).toEqual({
      code: -32012,
      message: "late",
      data: { dmcp_code: "DEADLINE_EXCEEDED" },
    });
    expect(toJsonRpcError(new DmcpError(ErrorCode.Internal, "m", { data: "text" })).data).toEqual({ dmcp_code: "INTERNAL", detail: "text" });
    expect(toJsonRpcError(new DmcpError(ErrorCode.Internal, "m", { data: [1] })).data).toEqual({ dmcp_code: "INTERNAL", detail: [1] });
    expect(toJsonRpcError(new DmcpError(ErrorCode.UnknownTarget, "Resource not found: x", { jsonrpcCode: -32002, data: { uri: "x" } }))).toEqual({
      code: -32002,
      message: "Resource not found: x",
      data: { dmcp_code: "UNKNOWN_TARGET", uri: "x" },
    });
  });

  it("hides the message of errors that are not DmcpErrors", () => {
    expect(toJsonRpcError(new Error("secret path /etc/x"))).toEqual({
      code: -32603,
      message: "internal gateway error",
      data: { dmcp_code: "INTERNAL" },
    });
    expect(toJsonRpcError("string")).toMatchObject({ code: -32603 });
  });
});

describe("error families", () => {
  const CLASSES: Record<string, new (...args: never[]) => DmcpError> = { BusError, CallError, UpstreamError, RequestError, SecurityError, InternalError };

  /** [code, family] as PROTOCOL.md §9.1 lists them: "`BusError` (`BUS_UNAVAILABLE`, ...)". */
  function documentedFamilies(): [string, string][] {
    const text = readFileSync(path.join(repoRoot, "PROTOCOL.md"), "utf8").replace(/\s+/g, " ");
    return [...text.matchAll(/`(\w+Error)` \(((?:`[A-Z_]+`(?:, )?)+)\)/g)].flatMap(([, family, codes]) =>
      [...codes!.matchAll(/`([A-Z_]+)`/g)].map(([, code]): [string, string] => [code!, family!]),
    );
  }

  it("turns every received code into an error of its family (as documented), still a DmcpError of that code", () => {
    const listed = documentedFamilies();
    // Every code once: in one family, and none left out.
    expect(listed.map(([code]) => code).sort()).toEqual([...ERROR_CODES].sort());
    const documented = new Map(listed);
    for (const code of ERROR_CODES) {
      const family = CLASSES[documented.get(code)!]!;
      const received = errorFromPayload({ code, message: `m ${code}`, data: { n: 1 } });
      expect(received, code).toBeInstanceOf(family);
      expect(received.name, code).toBe(family.name);
      expect(isDmcpError(received, code), code).toBe(true);
      expect(received).toMatchObject({ code, message: `m ${code}`, jsonrpcCode: jsonRpcCodeFor[code], data: { n: 1 } });
      // The family does not change what travels.
      expect(errorPayload(received)).toEqual(errorPayload(new DmcpError(code, `m ${code}`, { data: { n: 1 } })));
      expect(errorForCode(code, "x")).toBeInstanceOf(family);
    }
    const unknown = errorFromPayload({ code: "SOMETHING_NEW", message: "m" });
    expect(unknown).toBeInstanceOf(InternalError);
    expect(unknown.data).toEqual({ dmcp_code: "SOMETHING_NEW" });
  });

  it("keeps the cause, the data and a custom JSON-RPC code", () => {
    const cause = new Error("socket closed");
    const error = new BusError(ErrorCode.BusUnavailable, "the bus is gone", { cause, data: { url: "nats://x" } });
    expect(error).toBeInstanceOf(DmcpError);
    expect(error).toBeInstanceOf(Error);
    expect(error.cause).toBe(cause);
    expect(error).toMatchObject({ name: "BusError", code: "BUS_UNAVAILABLE", jsonrpcCode: -32010, data: { url: "nats://x" } });
    expect(new RequestError(ErrorCode.UnknownTarget, "Method not found: x", { jsonrpcCode: -32601 }).jsonrpcCode).toBe(-32601);
    expect("cause" in new CallError(ErrorCode.Cancelled, "stop")).toBe(false);
  });

  it("gives decoding failures their family and the parser's error as cause", () => {
    const notJson = decodeEnvelope(new TextEncoder().encode("{nope"));
    expect(notJson).toMatchObject({ ok: false, error: expect.any(RequestError) });
    expect((notJson as { error: DmcpError }).error.cause).toBeInstanceOf(SyntaxError);
    expect(validateEnvelope({ dMCP_version: "0.1" })).toMatchObject({ ok: false, error: expect.any(RequestError) });
    expect(decodeEnvelope(new Uint8Array(11), 10)).toMatchObject({ ok: false, error: expect.any(BusError) });
    expect(cancellation("enough", "fallback")).toBeInstanceOf(CallError);
  });

  it("carries an MCP peer's JSON-RPC error as UPSTREAM_ERROR and gives it back unchanged", () => {
    const peer = { code: -32602, message: "Invalid arguments", data: { field: "x" } };
    const error = fromJsonRpcError(peer);
    expect(error).toBeInstanceOf(UpstreamError);
    expect(error).toMatchObject({ code: ErrorCode.UpstreamError, jsonrpcCode: -32602, message: "Invalid arguments", data: { field: "x" } });
    expect(toJsonRpcError(error)).toEqual(peer);
    expect(toJsonRpcError(errorFromPayload(errorPayload(error)))).toEqual(peer);
    expect(toJsonRpcError(fromJsonRpcError({ code: 7, message: "no data" }))).toEqual({ code: 7, message: "no data" });
  });

  it("makes any thrown value a DmcpError: itself, or INTERNAL caused by it", () => {
    const own = new UpstreamError(ErrorCode.UpstreamClosed, "gone");
    expect(asDmcpError(own)).toBe(own);
    const thrown = new TypeError("x is not a function");
    const wrapped = asDmcpError(thrown);
    expect(wrapped).toBeInstanceOf(InternalError);
    expect(wrapped).toMatchObject({ code: "INTERNAL", message: "x is not a function" });
    expect(wrapped.cause).toBe(thrown);
    expect(asDmcpError("text")).toMatchObject({ code: "INTERNAL", message: "text", cause: "text" });
  });
});

// ---------------------------------------------------------------------------
// JSON Schemas
// ---------------------------------------------------------------------------

interface AjvValidate {
  (value: unknown): boolean;
  errors?: unknown[] | null;
}
interface AjvInstance {
  addSchema(schema: object): unknown;
  getSchema(id: string): AjvValidate | undefined;
}

const require = createRequire(import.meta.url);
const hasAjv = existsSync(path.join(repoRoot, "node_modules", "ajv", "dist", "2020.js"));

/** Ajv (draft 2020-12) with every schema of `schemas/` loaded; formats checked when ajv-formats is there. */
function loadAjv(files: Record<string, Record<string, unknown>>): AjvInstance {
  const Ajv2020 = (require("ajv/dist/2020.js") as { default: new (options: object) => AjvInstance }).default;
  const withFormats = existsSync(path.join(repoRoot, "node_modules", "ajv-formats"));
  const ajv = new Ajv2020({ allErrors: true, strict: true, validateFormats: withFormats });
  if (withFormats) (require("ajv-formats") as { default: (ajv: AjvInstance) => void }).default(ajv);
  for (const schema of Object.values(files)) ajv.addSchema(schema);
  return ajv;
}

function committedSchema(file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path.join(schemasDir, file), "utf8")) as Record<string, unknown>;
}

describe("MCP message schema (what every inbound path checks)", () => {
  it("accepts requests, notifications and responses that follow it, unknown _meta keys included", () => {
    for (const message of [
      { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "t", _meta: { progressToken: "p", "x.example/key": [1] } } },
      { jsonrpc: "2.0", id: "a", method: "ping" },
      { jsonrpc: "2.0", id: 2, method: "tools/call", params: { _meta: { progressToken: 1.5, "io.modelcontextprotocol/related-task": { taskId: "t-1" } } } },
      { jsonrpc: "2.0", method: "notifications/progress", params: { progressToken: 1, progress: 1 } },
      { jsonrpc: "2.0", id: 3, result: {} },
      { jsonrpc: "2.0", id: 4, error: { code: -32601, message: "no" } },
    ]) {
      expect(messageProblem(message), JSON.stringify(message)).toBeUndefined();
    }
  });

  it.each([
    ["a _meta that is a string", { params: { _meta: "x" } }, "params._meta must be an object"],
    ["a _meta that is an array", { params: { _meta: [] } }, "params._meta must be an object"],
    ["a _meta that is null", { params: { _meta: null } }, "params._meta must be an object"],
    ["a progressToken that is an object", { params: { _meta: { progressToken: {} } } }, "params._meta.progressToken must be a string or a number"],
    ["a progressToken that is a boolean", { params: { _meta: { progressToken: true } } }, "params._meta.progressToken must be a string or a number"],
    ["a related task without a taskId", { params: { _meta: { "io.modelcontextprotocol/related-task": {} } } }, "related-task"],
    ["params that are an array", { params: [1] }, "params must be an object"],
  ])("answers a request with %s with -32602 naming the field, and its id", (_label, fields, named) => {
    expect(messageProblem({ jsonrpc: "2.0", id: 7, method: "tools/call", ...fields })).toEqual({
      code: JsonRpcErrorCode.InvalidParams,
      message: expect.stringContaining(named),
      id: 7,
    });
    // A notification has no id to answer with.
    expect(messageProblem({ jsonrpc: "2.0", method: "notifications/progress", ...fields })).toMatchObject({ code: JsonRpcErrorCode.InvalidParams, id: null });
  });

  it.each([
    ["no object", [1], null],
    ["another JSON-RPC version", { jsonrpc: "1.0", id: 3, method: "ping" }, 3],
    ["an id that is neither string nor number", { jsonrpc: "2.0", id: true, method: "ping" }, null],
    ["a method that is not a string", { jsonrpc: "2.0", id: 4, method: 1 }, 4],
    ["a result that is not an object", { jsonrpc: "2.0", id: 5, result: "x" }, null],
    ["an error without a code", { jsonrpc: "2.0", id: 6, error: { message: "x" } }, null],
    ["neither method, result nor error", { jsonrpc: "2.0", id: 8 }, null],
  ])("answers %s with -32600", (_label, message, id) => {
    expect(messageProblem(message)).toMatchObject({ code: JsonRpcErrorCode.InvalidRequest, id });
  });
});

describe("JSON Schemas", () => {
  const generated = { ...jsonSchemas(), [CONFIG_SCHEMA_FILE]: configJsonSchema(), [POLICY_SCHEMA_FILE]: policyJsonSchema() };

  it("are committed exactly as generated (run `npm run schemas` after changing a zod schema)", () => {
    const committed = readdirSync(schemasDir)
      .filter((f) => f.endsWith(".json"))
      .sort();
    expect(committed).toEqual(Object.keys(generated).sort());
    for (const [file, schema] of Object.entries(generated)) {
      expect(committedSchema(file), file).toEqual(schema);
      expect(readFileSync(path.join(schemasDir, file), "utf8"), file).toBe(`${JSON.stringify(schema, null, 2)}\n`);
    }
  });

  it("carry an $id under one base and the draft 2020-12 $schema", () => {
    for (const [file, schema] of Object.entries(generated)) {
      expect(schema.$id).toBe(`https://dmcp-gateway.dev/schemas/v0.1/${file}`);
      expect(schema.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
    }
  });

  it.skipIf(!hasAjv)("validate what the code sends and reject what it rejects", () => {
    const ajv = loadAjv(Object.fromEntries(Object.keys(generated).map((file) => [file, committedSchema(file)])));
    const validator = (file: string) => {
      const validate = ajv.getSchema(`https://dmcp-gateway.dev/schemas/v0.1/${file}`);
      if (!validate) throw new Error(`ajv does not know ${file}`);
      return validate;
    };
    const envelopeSchema = validator("envelope.schema.json");
    const samples = sampleEnvelopes();
    for (const [type, sample] of Object.entries(samples)) {
      const wire = JSON.parse(new TextDecoder().decode(encodeEnvelope(sample))) as Record<string, unknown>;
      expect(envelopeSchema(wire), `${type}: ${JSON.stringify(envelopeSchema.errors)}`).toBe(true);
      const own = validator(`${type}.schema.json`);
      expect(own(wire), `${type}: ${JSON.stringify(own.errors)}`).toBe(true);
      // Unknown fields are allowed, as in the zod schemas.
      expect(own({ ...wire, extension: { any: "thing" } })).toBe(true);
      // Every other type's schema rejects it.
      for (const other of MESSAGE_TYPES.filter((t) => t !== type)) expect(validator(`${other}.schema.json`)(wire), `${other} accepts ${type}`).toBe(false);
      // Schema and zod agree on a few broken variants.
      for (const broken of [
        { ...wire, sender_id: undefined },
        { ...wire, dMCP_version: "0.2" },
        { ...wire, payload: "x" },
        { ...wire, id: "" },
      ]) {
        const json = JSON.parse(JSON.stringify(broken)) as unknown;
        expect(envelopeSchema(json)).toBe(false);
        expect(validateEnvelope(json).ok).toBe(false);
      }
    }
    // A heartbeat (the other agent_heartbeat kind) and a minimal announcement with defaults left out.
    const heartbeat = createEnvelope(
      "agent_heartbeat",
      { kind: "heartbeat", service: "s", instance: "i", status: "ready", interval_ms: 2000, inflight: 0, handled: 3 },
      { sender: "i" },
    );
    const announce = createEnvelope(
      "agent_heartbeat",
      { kind: "announce", service: "s", instance: "i", status: "ready", interval_ms: 2000, started_at: "2025-01-01T00:00:00Z", catalog: {} },
      { sender: "i" },
    );
    for (const value of [heartbeat, announce]) {
      expect(envelopeSchema(value), JSON.stringify(envelopeSchema.errors)).toBe(true);
      expect(validateEnvelope(value).ok).toBe(true);
    }
    expect(envelopeSchema({ ...heartbeat, payload: { ...heartbeat.payload, status: "sleepy" } })).toBe(false);
    expect(envelopeSchema({ ...heartbeat, payload: { ...heartbeat.payload, service: "a.b" } })).toBe(false);
  });

  it.skipIf(!hasAjv)("validate the sample config file", () => {
    const ajv = loadAjv({ [CONFIG_SCHEMA_FILE]: committedSchema(CONFIG_SCHEMA_FILE) });
    const validate = ajv.getSchema(`https://dmcp-gateway.dev/schemas/v0.1/${CONFIG_SCHEMA_FILE}`)!;
    const sample = JSON.parse(readFileSync(path.join(repoRoot, "dmcp.config.json"), "utf8")) as Record<string, unknown>;
    expect(sample.$schema).toBe(`./schemas/${CONFIG_SCHEMA_FILE}`);
    expect(validate(sample), JSON.stringify(validate.errors)).toBe(true);
    expect(validate({ servers: { x: { url: "http://127.0.0.1:1/mcp", replicas: 2 } }, gateway: { http: false } })).toBe(true);
    expect(validate({ servers: { x: {} } })).toBe(false);
    expect(validate({ servers: { "a.b": { command: "x" } } })).toBe(false);
    expect(validate({ gateway: { http: { port: 70000 } } })).toBe(false);
    expect(validate({ extra: true })).toBe(false);
  });
});

// ---------------------------------------------------------------------------
// the aggregated catalog
// ---------------------------------------------------------------------------

interface LiveOptions {
  instance?: string;
  status?: AnnouncePayload["status"];
  startedAt?: string;
  capabilities?: Record<string, unknown>;
  instructions?: string;
}

function live(service: string, catalog: Partial<Catalog>, options: LiveOptions = {}): LiveInstance {
  const full: Catalog = { tools: [], resources: [], resource_templates: [], prompts: [], ...catalog };
  const capabilities = options.capabilities ?? {
    ...(full.tools.length ? { tools: {} } : {}),
    ...(full.resources.length || full.resource_templates.length ? { resources: {} } : {}),
    ...(full.prompts.length ? { prompts: {} } : {}),
  };
  const instance = options.instance ?? `${service}-1`;
  const announcement: AnnouncePayload = {
    kind: "announce",
    service,
    instance,
    status: options.status ?? "ready",
    interval_ms: 2000,
    started_at: options.startedAt ?? "2025-01-01T00:00:00.000Z",
    capabilities,
    catalog: full,
    ...(options.instructions ? { instructions: options.instructions } : {}),
  };
  return { service, instance, announcement, lastSeen: Date.now() };
}

function aggregate(...instances: LiveInstance[]): AggregatedCatalog {
  return new AggregatedCatalog(catalogsByService(instances));
}

const names = (items: Record<string, unknown>[], key = "name") => items.map((i) => i[key]);

describe("aggregated catalog", () => {
  it("picks one catalog per service: ready over degraded, then the most recently started", () => {
    const old = live("s", { tools: [{ name: "old" }] }, { instance: "s-1", startedAt: "2025-01-01T00:00:00Z" });
    const young = live("s", { tools: [{ name: "young" }] }, { instance: "s-2", startedAt: "2025-02-01T00:00:00Z" });
    const degraded = live("s", { tools: [{ name: "degraded" }] }, { instance: "s-3", startedAt: "2025-03-01T00:00:00Z", status: "degraded" });
    const byService = catalogsByService([old, degraded, young]);
    expect([...byService.keys()]).toEqual(["s"]);
    expect(names(byService.get("s")!.catalog.tools)).toEqual(["young"]);
    expect(names(catalogsByService([degraded]).get("s")!.catalog.tools)).toEqual(["degraded"]);
  });

  it("exposes the names of a single service unchanged", () => {
    const catalog = aggregate(live("memory", { tools: [{ name: "create_entities", description: "d", inputSchema: { type: "object" } }, { name: "read_graph" }] }));
    expect(catalog.services).toEqual(["memory"]);
    expect(catalog.tools).toEqual([{ name: "create_entities", description: "d", inputSchema: { type: "object" } }, { name: "read_graph" }]);
    expect(catalog.collisions).toEqual([]);
    expect(catalog.tool("read_graph")).toEqual({ service: "memory", target: "read_graph" });
    expect(catalog.tool("nope")).toBeUndefined();
  });

  it("qualifies a tool name offered by two services as <service>__<name> and reports the collision", () => {
    const catalog = aggregate(
      live("beta", { tools: [{ name: "echo", description: "beta echo" }, { name: "only_beta" }] }),
      live("alpha", { tools: [{ name: "echo", description: "alpha echo" }] }),
    );
    expect(catalog.services).toEqual(["alpha", "beta"]);
    expect(catalog.tools).toEqual([{ name: "alpha__echo", description: "alpha echo" }, { name: "beta__echo", description: "beta echo" }, { name: "only_beta" }]);
    expect(catalog.collisions).toEqual([{ kind: "tool", name: "echo", services: ["alpha", "beta"] }]);
    expect(catalog.tool("alpha__echo")).toEqual({ service: "alpha", target: "echo" });
    expect(catalog.tool("beta__echo")).toEqual({ service: "beta", target: "echo" });
    expect(catalog.tool("echo")).toBeUndefined();
    expect(catalog.tool("only_beta")).toEqual({ service: "beta", target: "only_beta" });
  });

  it("accepts the qualified name of any tool, colliding or not, but only for what the service offers", () => {
    const catalog = aggregate(live("alpha", { tools: [{ name: "a_tool" }] }), live("beta", { tools: [{ name: "b_tool" }] }));
    expect(names(catalog.tools)).toEqual(["a_tool", "b_tool"]);
    expect(catalog.tool("beta__b_tool")).toEqual({ service: "beta", target: "b_tool" });
    expect(catalog.tool("alpha__a_tool")).toEqual({ service: "alpha", target: "a_tool" });
    expect(catalog.tool("alpha__b_tool")).toBeUndefined();
    expect(catalog.tool("gamma__b_tool")).toBeUndefined();
    expect(catalog.tool("__b_tool")).toBeUndefined();
    expect(qualifyName("alpha", "x")).toBe("alpha__x");
  });

  it("treats prompts like tools", () => {
    const catalog = aggregate(live("alpha", { prompts: [{ name: "greet", arguments: [] }, { name: "solo" }] }), live("beta", { prompts: [{ name: "greet" }] }));
    expect(catalog.prompts).toEqual([{ name: "alpha__greet", arguments: [] }, { name: "solo" }, { name: "beta__greet" }]);
    expect(catalog.collisions).toEqual([{ kind: "prompt", name: "greet", services: ["alpha", "beta"] }]);
    expect(catalog.prompt("beta__greet")).toEqual({ service: "beta", target: "greet" });
    expect(catalog.prompt("greet")).toBeUndefined();
    expect(catalog.prompt("solo")).toEqual({ service: "alpha", target: "solo" });
    expect(catalog.prompt("alpha__solo")).toEqual({ service: "alpha", target: "solo" });
    // Tools and prompts are separate namespaces.
    expect(catalog.tool("solo")).toBeUndefined();
  });

  it("routes listed resource URIs and qualifies colliding ones as dmcp://service/<service>/<encoded uri>", () => {
    const shared = "file:///shared/notes.txt?x=1#y";
    const catalog = aggregate(live("alpha", { resources: [{ uri: shared, name: "a" }, { uri: "alpha://only" }] }), live("beta", { resources: [{ uri: shared, name: "b" }] }));
    const qualifiedAlpha = `dmcp://service/alpha/${encodeURIComponent(shared)}`;
    expect(qualifyUri("alpha", shared)).toBe(qualifiedAlpha);
    expect(catalog.resources).toEqual([{ uri: qualifiedAlpha, name: "a" }, { uri: "alpha://only" }, { uri: `dmcp://service/beta/${encodeURIComponent(shared)}`, name: "b" }]);
    expect(catalog.collisions).toEqual([{ kind: "resource", name: shared, services: ["alpha", "beta"] }]);
    expect(catalog.resource("alpha://only")).toEqual({ service: "alpha", target: "alpha://only" });
    expect(catalog.resource(qualifiedAlpha)).toEqual({ service: "alpha", target: shared });
    // The unqualified colliding URI matches no listing, template or single resource server.
    expect(catalog.resource(shared)).toBeUndefined();
    // A qualified URI works for any URI of a known service, listed or not.
    expect(catalog.resource(qualifyUri("beta", "beta://dynamic/1"))).toEqual({ service: "beta", target: "beta://dynamic/1" });
    expect(catalog.resource(qualifyUri("gamma", "x://y"))).toBeUndefined();
    expect(parseQualifiedUri("dmcp://service/alpha/%E0%A4%A")).toBeUndefined();
    expect(parseQualifiedUri("dmcp://service//x")).toBeUndefined();
    expect(parseQualifiedUri("file:///x")).toBeUndefined();
  });

  it("routes a URI that matches one service's template, and reports several as ambiguous", () => {
    const catalog = aggregate(
      live("alpha", { resource_templates: [{ uriTemplate: "notes://{id}" }, { uriTemplate: "mem://{key}" }] }),
      live("beta", { resource_templates: [{ uriTemplate: "mem://{key}" }] }),
    );
    expect(catalog.resourceTemplates).toEqual([{ uriTemplate: "notes://{id}" }, { uriTemplate: "mem://{key}" }, { uriTemplate: "mem://{key}" }]);
    expect(catalog.resource("notes://42")).toEqual({ service: "alpha", target: "notes://42" });
    expect(catalog.resource("mem://k")).toEqual({ ambiguous: ["alpha", "beta"] });
    expect(catalog.resource(qualifyUri("beta", "mem://k"))).toEqual({ service: "beta", target: "mem://k" });
    expect(catalog.resource("other://x")).toBeUndefined();
    expect(catalog.template("notes://{id}")).toEqual({ service: "alpha", target: "notes://{id}" });
    expect(catalog.template("mem://{key}")).toEqual({ ambiguous: ["alpha", "beta"] });
  });

  it("falls back to the only service with the resources capability", () => {
    const catalog = aggregate(live("files", { resources: [{ uri: "file:///a" }] }), live("tools", { tools: [{ name: "t" }] }));
    expect(catalog.resource("file:///not-listed")).toEqual({ service: "files", target: "file:///not-listed" });
    const withEmptyCapability = aggregate(live("files", {}, { capabilities: { resources: {} } }));
    expect(withEmptyCapability.resource("x://y")).toEqual({ service: "files", target: "x://y" });
    const two = aggregate(live("a", { resources: [{ uri: "a://1" }] }), live("b", { resources: [{ uri: "b://1" }] }));
    expect(two.resource("c://1")).toBeUndefined();
    expect(aggregate(live("t", { tools: [{ name: "t" }] })).resource("x://y")).toBeUndefined();
  });

  it("collects instructions per service and is empty without services", () => {
    const catalog = aggregate(live("b", {}, { instructions: "use b" }), live("a", {}, { instructions: "use a" }));
    expect(catalog.instructions).toEqual(["[a] use a", "[b] use b"]);
    const empty = new AggregatedCatalog(new Map<string, ServiceCatalog>());
    expect([empty.tools, empty.prompts, empty.resources, empty.resourceTemplates, empty.collisions]).toEqual([[], [], [], [], []]);
    expect(empty.tool("x")).toBeUndefined();
    expect(empty.resource("x://y")).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------
// config
// ---------------------------------------------------------------------------

describe("config", () => {
  it("parses the sample dmcp.config.json and fills defaults", () => {
    const { config, baseDir } = loadConfig(path.join(repoRoot, "dmcp.config.json"));
    expect(baseDir).toBe(path.resolve(repoRoot));
    expect(Object.keys(config.servers).sort()).toEqual(["everything", "memory"]);
    expect(config.servers.everything).toMatchObject({ command: "npx", env: {}, replicas: 1 });
    expect(config.gateway.http).toEqual({ port: 8808, host: "127.0.0.1" });
    expect(config.nats).toEqual({});
  });

  it("fills every default for an empty file", () => {
    expect(parseConfig({})).toEqual({
      nats: {},
      gateway: { http: { port: 8808, host: "127.0.0.1" }, callTimeoutMs: 60_000, cache: { enabled: true } },
      servers: {},
    });
    expect(parseConfig({ gateway: { http: false } }).gateway.http).toBe(false);
    expect(parseConfig({ servers: { r: { url: "https://example.com/mcp" } } }).servers.r).toEqual({
      url: "https://example.com/mcp",
      headers: {},
      transport: "auto",
      replicas: 1,
      forwardCaller: false,
      audit: false,
      delivery: "direct",
      durable: {},
      priority: "normal",
      tools: {},
      cache: {},
    });
  });

  it("names the exact path of an error", () => {
    const cases: [unknown, string][] = [
      [{ gateway: { http: { port: 70000 } } }, "gateway.http.port:"],
      [{ gateway: { callTimeoutMs: 0 } }, "gateway.callTimeoutMs:"],
      [{ servers: { x: { url: "not a url" } } }, "servers.x.url:"],
      [{ servers: { x: { command: "npx", replicas: 0 } } }, "servers.x.replicas:"],
      [{ servers: { x: {} } }, "servers.x:"],
      [{ nats: { url: "" } }, "nats.url:"],
      [{ servers: { x: { url: "https://example.com/mcp", bearerToken: { env: "" } } } }, "servers.x.bearerToken.env:"],
      [{ servers: { x: { url: "https://example.com/mcp", headers: { "X-Key": { vault: "k" } } } } }, "servers.x.headers.X-Key:"],
      [{ gateway: { policy: { rules: [{ allow: { tool: [] } }] } } }, "gateway.policy"],
      [{ extra: 1 }, "(root):"],
    ];
    for (const [raw, expected] of cases) {
      expect(() => parseConfig(raw), JSON.stringify(raw)).toThrow(ConfigError);
      expect(() => parseConfig(raw), JSON.stringify(raw)).toThrow(expected);
    }
    expect(() => parseConfig({ servers: { x: {} } }, "my.json")).toThrow(/^invalid my\.json: servers\.x: a server needs either "command"/);
  });
});

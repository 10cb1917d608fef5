/**
 * The gateway's Call (issue 13, rule 3): one object per request, routed once, by the catalog the
 * request arrived on; its revision worked out from `_meta` once; a 2025 request's call tied to its
 * session's upstream sessions, a 2026-07-28 one not.
 */
import { describe, expect, it } from "vitest";
import { DeliveryTable } from "../../src/bus/durable/delivery-table.js";
import { AccessPolicy, ANONYMOUS, Call, SessionPins, type CallRequest, type ServiceCatalog, type ServiceDirectory } from "../../src/gateway/index.js";
import { AggregatedCatalog } from "../../src/gateway/catalog/catalog.js";
import { ErrorCode, JsonRpcErrorCode, META, type PriorityLane } from "../../src/protocol/index.js";

const tool = (name: string) => ({ name, inputSchema: { type: "object" } });

function directory(laneFor?: DeliveryTable["laneFor"]): ServiceDirectory {
  const catalogs = new Map<string, ServiceCatalog>([
    ["alpha", { catalog: { tools: [tool("echo")], resources: [{ uri: "mem://a", name: "a" }], prompts: [], resource_templates: [] }, capabilities: {} }],
    ["beta", { catalog: { tools: [tool("echo"), tool("add")], resources: [], prompts: [], resource_templates: [] }, capabilities: {} }],
  ]);
  const deliveries = new DeliveryTable(catalogs);
  if (laneFor) deliveries.laneFor = laneFor;
  return { catalog: new AggregatedCatalog(catalogs), deliveries, sessionServices: new Set(["beta"]), taskServices: new Set(["alpha"]) };
}

const call = (request: Partial<CallRequest>, services = directory()) => new Call({ method: "tools/call", params: {}, ...request }, services, 1000);

describe("Call", () => {
  it("routes once, however often its route, delivery and policy target are asked for", () => {
    let routed = 0;
    const counted = directory((service, _method, params) => {
      routed++;
      return service === "beta" && params.name === "add" ? ("high" as PriorityLane) : undefined;
    });
    const add = call({ params: { name: "add", arguments: {} } }, counted);
    for (let i = 0; i < 3; i++) {
      expect(add.route).toMatchObject({ service: "beta", params: { name: "add" }, lane: "high", keepsSessions: true, keepsTasks: false });
      expect(add.delivery).toBe("durable");
      expect(add.policyTarget).toEqual({ kind: "tools", names: ["add", "beta/add"] });
    }
    expect(routed).toBe(1);
  });

  it("sends a qualified name as the upstream knows it, and keeps the client's name for the policy", () => {
    const echo = call({ params: { name: "alpha__echo" } });
    expect(echo.route).toMatchObject({ service: "alpha", params: { name: "echo" }, lane: undefined, keepsSessions: false, keepsTasks: true });
    expect(echo.policyTarget).toEqual({ kind: "tools", names: ["alpha__echo", "alpha/echo"] });
  });

  it("keeps the routing error for when the call is sent, after the policy had its say", () => {
    const unknown = call({ method: "resources/read", params: { uri: "mem://missing" } });
    expect(unknown.policyTarget).toEqual({ kind: "resources", names: ["mem://missing"] });
    expect(unknown.delivery).toBe("direct");
    for (let i = 0; i < 2; i++) expect(() => unknown.route).toThrow(expect.objectContaining({ code: ErrorCode.UnknownTarget, jsonrpcCode: JsonRpcErrorCode.ResourceNotFound }));
  });

  it("is routed by the catalog it was built on, not a later one", () => {
    const before = call({ params: { name: "add" } });
    const after = call({ params: { name: "add" } }, { ...directory(), catalog: new AggregatedCatalog(new Map()) });
    expect(before.route.service).toBe("beta");
    expect(() => after.route).toThrow(expect.objectContaining({ code: ErrorCode.UnknownTarget }));
  });

  it("ties a 2025 request to its session's upstream sessions and leaves a 2026-07-28 request untied", () => {
    const pins = new SessionPins();
    const ties: unknown[] = [];
    const upstream = {
      tie: (requestId: string | number) => {
        ties.push(requestId);
        return { correlationId: `c-${requestId}`, session: { clientSession: { gateway: "g", capabilities: {} }, pins } };
      },
    };
    const session = call({ requestId: 7, upstream, params: { name: "add" } });
    expect(session.stateless).toBe(false);
    expect(session.version).toBeUndefined();
    expect(session.correlationId).toBe("c-7");
    expect(session.session?.pins).toBe(pins);
    const meta = { [META.protocolVersion]: "2026-07-28", [META.clientCapabilities]: {} };
    const stateless = call({ requestId: 8, upstream, params: { name: "add", _meta: meta } });
    expect(stateless.stateless).toBe(true);
    expect(stateless.version).toBe("2026-07-28");
    expect(stateless.session).toBeUndefined();
    expect(stateless.correlationId).toBeUndefined();
    expect(ties).toEqual([7]);
  });

  it("derives the same caller's request of another method, with its deadline, untied", () => {
    const identity = { kind: "token" as const, subject: "ops" };
    const access = new AccessPolicy({ default: "allow" }).accessFor(identity);
    const upstream = { tie: () => ({ correlationId: "c", session: { clientSession: { gateway: "g", capabilities: {} }, pins: new SessionPins() } }) };
    const original = call({ method: "tasks/get", params: { taskId: "t" }, requestId: 1, identity, access, caller: { kind: "token", subject: "ops" }, upstream });
    const derived = original.derive("tools/call", { name: "add" });
    expect(derived).toMatchObject({ method: "tools/call", identity, access, caller: { subject: "ops" }, timeoutMs: 1000, requestId: 1, signal: original.signal });
    expect(derived.session).toBeUndefined();
    expect(derived.policyTarget).toEqual({ kind: "tools", names: ["add", "beta/add"] });
    expect(call({}).identity).toBe(ANONYMOUS);
  });
});

describe("SessionPins", () => {
  it("releases a replica that left, saying whether a call of the session had reached it", () => {
    const pins = new SessionPins();
    expect(pins.pinFor("svc", () => "a")).toBe("a");
    expect(pins.release("svc", "a")).toBe(false);
    expect(pins.get("svc")).toBeUndefined();
    pins.reached("svc", "b");
    expect(pins.release("svc", "other")).toBe(false);
    expect(pins.get("svc")).toBe("b");
    expect(pins.release("svc", "b")).toBe(true);
    expect(pins.entries()).toEqual([]);
  });
});

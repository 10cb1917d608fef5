/**
 * Conformance of PROTOCOL.md from the other side of raw-agent.test.ts: a caller and a misbehaving
 * service written from the document alone (plain NATS messages, no imports from src/), against the
 * real `dmcp wrap` and `dmcp gateway` (from dist/; `npm run build` first).
 */
import { randomUUID } from "node:crypto";

import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { gatewayTransport, RawMcpClient } from "../support/mcp-client.js";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { startGatewayHttp, wrapFixtureStdio, type Child } from "../support/processes.js";

type Envelope = Record<string, unknown> & { type: string; correlation_id?: string; session_id?: string; payload: Record<string, unknown> };

function envelope(type: string, payload: Record<string, unknown>, extra: Record<string, unknown> = {}): Envelope {
  const id = randomUUID();
  return { dMCP_version: "0.1", type, id, correlation_id: id, timestamp: new Date().toISOString(), sender_id: "raw-caller", payload, ...extra };
}

describe("a caller and a service written from PROTOCOL.md alone", () => {
  let nats: EmbeddedNats;
  let nc: NatsConnection;
  let executor: Child;
  let gateway: Child & { url: string };
  let client: RawMcpClient;
  let instance: string;

  async function ask(body: string | Envelope, subject = "dmcp.v1.req.fx"): Promise<Envelope> {
    const data = typeof body === "string" ? body : JSON.stringify(body);
    const reply = await nc.request(subject, data, { timeout: 10_000 });
    return reply.json<Envelope>();
  }

  beforeAll(async () => {
    nats = await startTestNats();
    nc = await connect({ servers: nats.url, name: "raw-caller" });
    gateway = await startGatewayHttp(nats.url, ["--call-timeout", "20000"]);
    executor = await wrapFixtureStdio(nats.url, "fx");
    // Executors answer ping themselves, as the instance that got it (§5.2).
    instance = String((await ask(envelope("prompt_request", { service: "fx", method: "ping" }))).sender_id);
    client = await RawMcpClient.connect(gatewayTransport("http", { natsUrl: nats.url, httpUrl: gateway.url }));
  });

  afterAll(async () => {
    await client?.close();
    await nc?.close();
    await executor?.stop();
    await gateway?.stop();
    await nats?.stop();
  });

  describe("every error the executor raises itself names its instance in data.instance (§5.1, §13.2)", () => {
    it("INVALID_ENVELOPE for a request that fails validation, beside data.issues", async () => {
      const request = envelope("prompt_request", { service: "fx" });
      const answer = await ask(request);
      expect(answer).toMatchObject({ type: "error_notification", correlation_id: request.id, payload: { code: "INVALID_ENVELOPE", jsonrpc_code: -32600 } });
      expect(answer.payload.data).toMatchObject({ instance, issues: [{ path: "payload.method" }] });
    });

    it("INVALID_ENVELOPE for a message that is not JSON", async () => {
      const answer = await ask("{not json");
      expect(answer.payload).toMatchObject({ code: "INVALID_ENVELOPE", data: { instance } });
    });

    it("PAYLOAD_TOO_LARGE for a result over the server's max_payload, with the request's session_id", async () => {
      const request = envelope(
        "prompt_request",
        { service: "fx", method: "tools/call", params: { name: "big", arguments: { bytes: 2 * 1024 * 1024 } } },
        { session_id: "raw-session" },
      );
      const answer = await ask(request);
      expect(answer).toMatchObject({ correlation_id: request.id, session_id: "raw-session", payload: { code: "PAYLOAD_TOO_LARGE", jsonrpc_code: -32014, data: { instance } } });
    });
  });
});

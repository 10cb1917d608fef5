/**
 * The headers `dmcp wrap --url` sends its upstream (adapters/outbound/http/streamable-http.ts), read
 * by a real node:http server: the transport hands node:http a flat list of headers, to which node:http
 * adds neither Host nor the URL's credentials, so the transport does. The configured headers go on
 * every request, each name once; the transport's own headers of the same name (case aside) win.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StreamableHttpClientTransport } from "../../adapters/outbound/http/streamable-http.js";

/** Each request's headers as the server read them: [name, value] pairs in the order sent. */
const seen: { method: string; headers: [string, string][] }[] = [];
let server: Server;
let port: number;

function pairs(req: IncomingMessage): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) out.push([req.rawHeaders[i]!.toLowerCase(), req.rawHeaders[i + 1]!]);
  return out;
}

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push({ method: req.method!, headers: pairs(req) });
    req.resume();
    req.on("end", () => {
      if (req.method === "GET") return void res.writeHead(405).end();
      res.writeHead(200, { "content-type": "application/json", "mcp-session-id": "session-1" }).end(JSON.stringify({ jsonrpc: "2.0", id: 1, result: {} }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** Sends one request and waits for its answer. */
async function call(transport: StreamableHttpClientTransport, method: string, params: Record<string, unknown> = {}): Promise<void> {
  const answered = new Promise<void>((resolve) => (transport.onmessage = () => resolve()));
  await transport.send({ jsonrpc: "2.0", id: 1, method, params });
  await answered;
}

describe("the Streamable HTTP upstream transport's request headers", () => {
  it("sends Host, the URL's Basic credentials and the configured headers once each; its own headers win", async () => {
    seen.length = 0;
    const url = new URL(`http://us%40er:p%3Ass@127.0.0.1:${port}/mcp?key=1`);
    const transport = new StreamableHttpClientTransport(url, { "X-Tenant": "blue", Accept: "text/plain", "mcp-session-id": "forged" });
    try {
      await call(transport, "initialize");
      transport.setProtocolVersion("2025-06-18");
      await call(transport, "tools/call", { name: "echo" });
      expect(seen).toHaveLength(2);
      for (const { headers } of seen) {
        const names = headers.map(([name]) => name);
        expect(new Set(names).size).toBe(names.length);
        const header = Object.fromEntries(headers);
        expect(header.host).toBe(`127.0.0.1:${port}`);
        expect(header.authorization).toBe(`Basic ${Buffer.from("us@er:p:ss").toString("base64")}`);
        expect(header["x-tenant"]).toBe("blue");
        expect(header.accept).toBe("application/json, text/event-stream");
        expect(header["content-type"]).toBe("application/json");
        expect(header.connection).toBe("keep-alive");
      }
      // initialize goes without a session id, so the configured one goes as it is; later requests carry the server's.
      expect(Object.fromEntries(seen[0]!.headers)["mcp-session-id"]).toBe("forged");
      const second = Object.fromEntries(seen[1]!.headers);
      expect(second["mcp-session-id"]).toBe("session-1");
      expect(second["mcp-protocol-version"]).toBe("2025-06-18");
      expect(Number(second["content-length"])).toBe(Buffer.byteLength(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "echo" } })));
    } finally {
      await transport.close();
    }
  });

  it("keeps a configured Host and Authorization instead of adding its own", async () => {
    seen.length = 0;
    const transport = new StreamableHttpClientTransport(new URL(`http://user:secret@127.0.0.1:${port}/mcp`), { host: "upstream.example", authorization: "Bearer t0ken" });
    try {
      await call(transport, "initialize");
      const header = Object.fromEntries(seen[0]!.headers);
      expect(header.host).toBe("upstream.example");
      expect(header.authorization).toBe("Bearer t0ken");
      expect(seen[0]!.headers.filter(([name]) => name === "host" || name === "authorization")).toHaveLength(2);
    } finally {
      await transport.close();
    }
  });
});

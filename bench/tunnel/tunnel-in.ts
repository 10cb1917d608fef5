/**
 * The tunnel's HTTP side: every HTTP request becomes one NATS request (body as payload, the headers of
 * wire.ts as NATS headers) and its reply becomes the HTTP response. GET, the client's long-lived
 * listening stream, is refused with 405 as the Streamable HTTP spec allows: one request, one reply.
 *
 *   node dist/bench/tunnel/tunnel-in.js --nats URL --port PORT   (prints `LISTENING <port>` on stderr)
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import { connect, headers as natsHeaders } from "@nats-io/transport-node";
import { METHOD_HEADER, REQUEST_HEADERS, REQUEST_TIMEOUT_MS, RESPONSE_HEADERS, STATUS_HEADER, TUNNEL_SUBJECT } from "./wire.js";

const { values } = parseArgs({ options: { nats: { type: "string" }, port: { type: "string", default: "0" } }, strict: true });
if (values.nats === undefined) throw new Error("usage: tunnel-in --nats URL [--port PORT]");

const nc = await connect({ servers: values.nats, noAsyncTraces: true });

const server = http.createServer((req, res) => {
  if (req.method === "GET") {
    res.writeHead(405, { allow: "POST, DELETE" }).end();
    return;
  }
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => {
    const h = natsHeaders();
    h.set(METHOD_HEADER, req.method ?? "POST");
    for (const name of REQUEST_HEADERS) {
      const value = req.headers[name];
      if (typeof value === "string") h.set(name, value);
    }
    nc.request(TUNNEL_SUBJECT, Buffer.concat(chunks), { headers: h, timeout: REQUEST_TIMEOUT_MS }).then(
      (reply) => {
        const out: Record<string, string> = {};
        for (const name of RESPONSE_HEADERS) {
          const value = reply.headers?.get(name);
          if (value) out[name] = value;
        }
        res.writeHead(Number(reply.headers?.get(STATUS_HEADER) || 502), out).end(reply.data);
      },
      (err: unknown) => {
        res.writeHead(502, { "content-type": "text/plain" }).end(`tunnel: ${err instanceof Error ? err.message : String(err)}`);
      },
    );
  });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(values.port), "127.0.0.1", () => process.stderr.write(`LISTENING ${(server.address() as AddressInfo).port}\n`));

const stop = () => {
  server.close();
  server.closeAllConnections();
  void nc.drain().finally(() => process.exit(0));
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);

/**
 * The tunnel's upstream side: answers each NATS request of tunnel-in with one HTTP request to the
 * upstream (keep-alive), its whole response body as the reply payload and its status and headers
 * (wire.ts) as NATS headers. A POST's SSE answer ends after the response, so reading it whole is
 * what a pass-through would send.
 *
 *   node dist/bench/tunnel/tunnel-out.js --nats URL --upstream URL   (prints `READY` on stderr)
 */
import http from "node:http";
import { parseArgs } from "node:util";
import { connect, headers as natsHeaders, type Msg } from "@nats-io/transport-node";
import { METHOD_HEADER, REQUEST_HEADERS, RESPONSE_HEADERS, STATUS_HEADER, TUNNEL_QUEUE, TUNNEL_SUBJECT } from "./wire.js";

const { values } = parseArgs({ options: { nats: { type: "string" }, upstream: { type: "string" } }, strict: true });
if (values.nats === undefined || values.upstream === undefined) throw new Error("usage: tunnel-out --nats URL --upstream URL");
const upstream = new URL(values.upstream);
const agent = new http.Agent({ keepAlive: true });

const nc = await connect({ servers: values.nats, noAsyncTraces: true });

function reply(msg: Msg, status: number, body: Uint8Array, from: http.IncomingHttpHeaders = {}): void {
  const h = natsHeaders();
  h.set(STATUS_HEADER, String(status));
  for (const name of RESPONSE_HEADERS) {
    const value = from[name];
    if (typeof value === "string") h.set(name, value);
  }
  msg.respond(body, { headers: h });
}

function forward(msg: Msg): void {
  const headers: Record<string, string> = {};
  for (const name of REQUEST_HEADERS) {
    const value = msg.headers?.get(name);
    if (value) headers[name] = value;
  }
  headers["content-length"] = String(msg.data.length);
  const req = http.request(upstream, { method: msg.headers?.get(METHOD_HEADER) || "POST", headers, agent }, (res) => {
    const chunks: Buffer[] = [];
    res.on("data", (chunk: Buffer) => chunks.push(chunk));
    res.on("end", () => reply(msg, res.statusCode ?? 502, Buffer.concat(chunks), res.headers));
    res.on("error", (err) => reply(msg, 502, Buffer.from(`tunnel: ${err.message}`)));
  });
  req.on("error", (err) => reply(msg, 502, Buffer.from(`tunnel: ${err.message}`)));
  req.end(msg.data);
}

nc.subscribe(TUNNEL_SUBJECT, { queue: TUNNEL_QUEUE, callback: (err, msg) => (err ? undefined : forward(msg)) });
await nc.flush();
process.stderr.write("READY\n");

const stop = () => {
  agent.destroy();
  void nc.drain().finally(() => process.exit(0));
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);

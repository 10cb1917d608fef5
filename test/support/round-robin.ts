/**
 * A non-sticky load balancer for tests: an HTTP proxy that sends each request (not each connection)
 * to the next backend in turn, as an ordinary round-robin balancer does. Responses stream through
 * (SSE included). A backend that refuses the connection, or drops it before any answer (a process
 * just killed), is skipped for that request: it goes to the next one, as HAProxy's `retry-on
 * conn-failure empty-response` with `option redispatch` does. When every backend fails, the answer is 502.
 * A backend that dies in the middle of an answer cuts the client's connection.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface RoundRobinProxy {
  /** The proxy's URL for `path` (default `/mcp`). */
  url: string;
  /** Which backend (its index) each request went to, in order. */
  readonly served: number[];
  /** Which backend each request was first sent to, in the order the requests arrived (before any answer). */
  readonly routed: number[];
  /** Each request answered so far: its method and backend, in order. */
  readonly requests: { method: string; backend: number }[];
  /** How many answers with `method` are still streaming to their clients. */
  streaming(method: string): number;
  /** Cuts the connections of the answers with `method` still streaming (a network fault between client and balancer). */
  cut(method: string): void;
  close(): Promise<void>;
}

/** Starts a proxy on a free loopback port in front of `backends` (base URLs, e.g. `http://127.0.0.1:8808`). */
export async function startRoundRobinProxy(backends: string[], path = "/mcp"): Promise<RoundRobinProxy> {
  const served: number[] = [];
  const routed: number[] = [];
  const requests: { method: string; backend: number }[] = [];
  const open = new Set<{ method: string; res: ServerResponse }>();
  let next = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const index = next++ % backends.length;
      routed.push(index);
      forward(req, res, Buffer.concat(chunks), index, backends.length);
    });
  });
  const forward = (req: IncomingMessage, res: ServerResponse, body: Buffer, index: number, triesLeft: number): void => {
    const target = new URL(req.url ?? "/", backends[index]);
    const upstream = request(target, { method: req.method, headers: { ...req.headers, host: target.host }, agent: false }, (answer) => {
      served.push(index);
      requests.push({ method: req.method ?? "", backend: index });
      const streaming = { method: req.method ?? "", res };
      open.add(streaming);
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
      res.on("close", () => {
        open.delete(streaming);
        answer.destroy();
      });
      // The backend died mid-answer (SIGKILL): the client's connection is cut too, as a balancer's would be.
      answer.on("close", () => {
        if (!answer.complete) res.destroy();
      });
    });
    upstream.on("error", (err: NodeJS.ErrnoException) => {
      if (res.headersSent) return void res.destroy();
      if ((err.code === "ECONNREFUSED" || err.code === "ECONNRESET") && triesLeft > 1) return forward(req, res, body, (index + 1) % backends.length, triesLeft - 1);
      res.writeHead(502, { "content-type": "text/plain" }).end(`bad gateway: ${err.message}`);
    });
    // The client went away: so does the request to the backend (an SSE stream left open ends there too).
    res.on("close", () => upstream.destroy());
    upstream.end(body);
  };
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${path}`,
    served,
    routed,
    requests,
    streaming: (method) => [...open].filter((answer) => answer.method === method && !answer.res.writableEnded).length,
    cut(method) {
      for (const answer of open) if (answer.method === method && !answer.res.writableEnded) answer.res.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

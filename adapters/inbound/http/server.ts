/**
 * The Node HTTP server under the app. A client that trickles its headers or body is cut off (408)
 * instead of holding a socket forever; both deadlines end once the request is in, so SSE answers and
 * long calls stream on.
 */
import { createServer, type RequestListener, type Server } from "node:http";

export interface HttpTimeouts {
  headersMs: number;
  requestMs: number;
  /** Node checks both only this often, so a slow client is cut at most this much after its deadline. */
  checkEveryMs: number;
}

/** The documented figures: headers within 10 s, the request with its body within 30 s. */
export const HTTP_TIMEOUTS: HttpTimeouts = { headersMs: 10_000, requestMs: 30_000, checkEveryMs: 1_000 };

export function listen(app: RequestListener, port: number, host: string, timeouts: HttpTimeouts): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer({ headersTimeout: timeouts.headersMs, requestTimeout: timeouts.requestMs, connectionsCheckingInterval: timeouts.checkEveryMs }, app).listen(
      port,
      host,
    );
    server.once("listening", () => resolve(server));
    server.once("error", reject);
  });
}

/** The timeouts a server enforces, as it holds them. */
export function timeoutsOf(server: Server): HttpTimeouts {
  return {
    headersMs: server.headersTimeout,
    requestMs: server.requestTimeout,
    checkEveryMs: (server as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval,
  };
}

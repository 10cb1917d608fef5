/**
 * Inbound adapter: the gateway as a Streamable HTTP MCP server at `/mcp` (the express app and its
 * routes). Each MCP session gets an inbound transport of its own (session-transport.ts), to which the
 * session id in `Mcp-Session-Id` routes later requests; a 2026-07-28 request is an exchange of its own
 * (stateless-http.ts). The middleware is in middleware/, the Node server and its timeouts in server.ts.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import express, { type Request, type Response } from "express";
import { JsonRpcErrorCode } from "../../../src/protocol/index.js";
import { ANONYMOUS, type Gateway, type Identity } from "../../../src/gateway/index.js";
import type { GatewayMonitor } from "../dashboard/monitor.js";
import type { Logger } from "../../../src/util/index.js";
import {
  asAsyncMiddleware,
  asMiddleware,
  authenticatedIdentity,
  cors,
  isLoopbackHost,
  jsonRpcErrors,
  loopbackGuard,
  protectedResourceMetadata,
  rateLimiter,
  requireAuth,
  sendRpcError,
  type AsyncRequestGate,
  type Authenticate,
  type RateLimit,
} from "./middleware/index.js";
import { HTTP_TIMEOUTS, listen, timeoutsOf, type HttpTimeouts } from "./server.js";
import { handleStatelessRequest, isStatelessRequest } from "./stateless-http.js";
import { HttpSessions, storeUnavailable, type HttpSession } from "./http-sessions.js";
import { sessionPosts } from "./session-posts.js";
import { DASHBOARD_PATH, mountDashboard } from "../dashboard/index.js";

const PROTECTED_RESOURCE_PATH = "/.well-known/oauth-protected-resource";

export interface HttpServeOptions {
  port: number;
  host?: string;
  /** Largest accepted request body. */
  maxBodyBytes?: number;
  /** Sessions with no request for this long are closed. */
  sessionIdleMs?: number;
  /** Answer POSTs with plain JSON instead of an SSE stream: faster, but no in-call notifications. */
  jsonResponses?: boolean;
  /** Close a call's SSE stream once it has waited this many ms for its answer, for the client to resume it (SSE polling); never without it. */
  ssePollMs?: number | undefined;
  /** A plain call still unanswered after this many ms gets a resumable SSE stream (direct-answers.ts); 0: never. */
  resumableAfterMs?: number | undefined;
  logger: Logger;
  /** Serve the live dashboard of this monitor at /dashboard; without it there is no /dashboard. */
  dashboard?: GatewayMonitor | undefined;
  /** Require authentication on /mcp and /dashboard; without it the gateway is open. */
  auth?: { authenticate: Authenticate; authorizationServers: string[] } | undefined;
  /** Requests per client (identity, else address) on /mcp; unlimited without it. */
  rateLimit?: RateLimit | undefined;
  /** Browser origins allowed to call /mcp (CORS); `*` for any. No CORS headers without them. */
  corsOrigins?: string[] | undefined;
  /** How long a client may take over its headers and its whole request (tests shorten them). */
  timeouts?: HttpTimeouts | undefined;
}

export interface HttpGatewayServer {
  url: string;
  port: number;
  /** Where the dashboard is served, when it is. */
  dashboardUrl?: string;
  /** The timeouts the HTTP server enforces, as it holds them. */
  timeouts: HttpTimeouts;
  sessionCount(): number;
  /** How many SSE streams have events held in this gateway's memory (for a resumption), all sessions together. */
  heldStreamCount(): number;
  /** Closes at once the sessions of identities that may no longer come in (a user removed from the tokens file). */
  closeSessionsOf(revoked: (identity: Identity) => boolean): Promise<void>;
  /** Takes no new connections or sessions; open ones keep working (for a graceful stop). */
  stopAccepting(): void;
  close(): Promise<void>;
}

/** Who sent an HTTP request: its authenticated identity, or anonymous on an open gateway. */
function identityOf(req: IncomingMessage): Identity {
  return authenticatedIdentity(req) ?? ANONYMOUS;
}

export async function serveHttp(gateway: Gateway, options: HttpServeOptions): Promise<HttpGatewayServer> {
  const host = options.host ?? "127.0.0.1";
  const maxBodyBytes = options.maxBodyBytes ?? 4 * 1024 * 1024;
  const sessionIdleMs = options.sessionIdleMs ?? 60 * 60 * 1000;
  const logger = options.logger;
  const sessions = new HttpSessions({
    gateway,
    shared: await gateway.shareSessions(sessionIdleMs),
    events: await gateway.openSessionEvents(),
    logger,
    idleMs: sessionIdleMs,
    jsonResponses: options.jsonResponses,
    ssePollMs: options.ssePollMs,
    resumableAfterMs: options.resumableAfterMs,
  });
  await sessions.watch();
  /** The request's session (held here or taken up from the bus), or undefined once the request is answered. */
  const sessionOf = async (req: IncomingMessage, res: ServerResponse): Promise<HttpSession | undefined> => {
    const sessionId = req.headers["mcp-session-id"];
    if (typeof sessionId !== "string" || !sessionId) return undefined;
    let entry: HttpSession | undefined;
    try {
      entry = await sessions.find(sessionId);
    } catch (err) {
      storeUnavailable(res, req, logger, err);
      return undefined;
    }
    if (!entry) sendRpcError(res, 404, JsonRpcErrorCode.InvalidRequest, req.method === "POST" ? "Session not found: initialize a new session" : "Session not found");
    else if (!sessions.admit(entry, identityOf(req), res)) return undefined;
    return entry;
  };

  const app = express();
  app.disable("x-powered-by");
  // A gateway bound to loopback only answers to loopback names and loopback pages (DNS rebinding).
  const corsOrigins = options.corsOrigins ?? [];
  // The gates before /mcp, in order; the fast path for session POSTs runs the same ones.
  const gates = [...(isLoopbackHost(host) ? [loopbackGuard(corsOrigins)] : []), ...(corsOrigins.length > 0 ? [cors(corsOrigins)] : [])];
  for (const gate of gates) app.use(asMiddleware(gate));
  app.get("/healthz", (_req, res) => {
    res.json({ status: "ok", sessions: sessions.size });
  });
  app.get("/readyz", (_req, res) => {
    const ready = gateway.core.ready;
    res.status(ready ? 200 : 503).json({ status: ready ? "ready" : "not ready", bus: gateway.core.busConnected, services: gateway.core.catalog.services.length });
  });
  if (gateway.metrics) {
    const metrics = gateway.metrics;
    app.get("/metrics", (_req, res, next) => {
      metrics.metrics().then((text) => res.type(metrics.contentType).send(text), next);
    });
  }
  let authGate: AsyncRequestGate | undefined;
  if (options.auth) {
    // RFC 9728: where clients learn which authorization servers issue tokens for /mcp.
    const { authenticate, authorizationServers } = options.auth;
    // A plain HTTP server: express's req.protocol is http here too (no proxy is trusted).
    const origin = (req: IncomingMessage) => `http://${req.headers.host ?? `${host}:${port}`}`;
    const metadataPath = `${PROTECTED_RESOURCE_PATH}/mcp`;
    app.get([PROTECTED_RESOURCE_PATH, metadataPath], (req, res) => {
      res.json(protectedResourceMetadata(`${origin(req)}/mcp`, authorizationServers));
    });
    authGate = requireAuth(authenticate, (req) => `${origin(req)}${metadataPath}`);
    app.use(["/mcp", DASHBOARD_PATH], asAsyncMiddleware(authGate));
  }
  // Each client's limit holds across the gateways on the bus, not per process.
  const rateShare = options.rateLimit ? gateway.shareRateLimits() : undefined;
  const rateGate = options.rateLimit ? rateLimiter(options.rateLimit, rateShare) : undefined;
  if (rateGate) app.use("/mcp", asMiddleware(rateGate));
  // After the host-header guard and authentication, so the dashboard is guarded like /mcp.
  const dashboard = options.dashboard ? mountDashboard(app, options.dashboard, { logger }) : undefined;
  let accepting = true;
  /** A POST of a session, its body parsed: by express's route, or ahead of express (session-posts.ts). */
  const postToSession = (req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void> => {
    // A session held here is served at once (no wait for a lookup that cannot be needed).
    const sessionId = req.headers["mcp-session-id"];
    const held = typeof sessionId === "string" ? sessions.held(sessionId) : undefined;
    if (!held) return sessionOf(req, res).then((entry) => entry?.transport.handleRequest(req, res, body));
    try {
      return sessions.admit(held, identityOf(req), res) ? held.transport.handleRequest(req, res, body) : Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  };
  app.post("/mcp", express.json({ limit: maxBodyBytes, type: () => true }), async (req, res) => {
    if (req.header("mcp-session-id")) {
      await postToSession(req, res, req.body);
      return;
    }
    if (!accepting) {
      res.setHeader("retry-after", "5");
      sendRpcError(res, 503, JsonRpcErrorCode.ShuttingDown, "the gateway is shutting down");
      return;
    }
    if (isStatelessRequest(req)) {
      await handleStatelessRequest(gateway, req, res, identityOf(req));
      return;
    }
    if (!containsInitialize(req.body)) {
      sendRpcError(res, 400, JsonRpcErrorCode.InvalidRequest, "Bad Request: no Mcp-Session-Id header and not an initialize request");
      return;
    }
    const { transport, session } = await sessions.open(identityOf(req));
    await transport.handleRequest(req, res, req.body);
    // The transport refused the initialize (not valid JSON-RPC, in a batch, wrong Accept header): no
    // session came of it, and nothing would ever close this one.
    if (transport.sessionId === undefined) await session?.close();
  });
  const byHeader = async (req: Request, res: Response) => {
    if (!req.header("mcp-session-id")) {
      sendRpcError(res, 400, JsonRpcErrorCode.InvalidRequest, "Missing Mcp-Session-Id header");
      return;
    }
    const entry = await sessionOf(req, res);
    if (entry) await entry.transport.handleRequest(req, res);
  };
  app.get("/mcp", byHeader);
  app.delete("/mcp", byHeader);
  app.all("/mcp", (_req, res) => sendRpcError(res, 405, JsonRpcErrorCode.InvalidRequest, "Method not allowed"));
  app.use(jsonRpcErrors(maxBodyBytes, logger));

  const listener = sessionPosts(
    {
      maxBodyBytes,
      gates,
      authenticate: authGate,
      rateLimit: rateGate,
      cors: corsOrigins.length > 0,
      holds: (id) => sessions.holds(id),
      serve: postToSession,
      logger,
    },
    app,
  );
  const server = await listen(listener, options.port, host, options.timeouts ?? HTTP_TIMEOUTS);
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}/mcp`;
  logger.info({ url }, "gateway serving MCP over Streamable HTTP");
  const dashboardUrl = dashboard ? url.replace(/\/mcp$/, DASHBOARD_PATH) : undefined;
  if (dashboardUrl) logger.info({ url: dashboardUrl }, "gateway serving its dashboard");
  return {
    url,
    port,
    ...(dashboardUrl ? { dashboardUrl } : {}),
    timeouts: timeoutsOf(server),
    sessionCount: () => sessions.size,
    heldStreamCount: () => sessions.heldStreamCount,
    closeSessionsOf: (revoked) => sessions.closeSessionsOf(revoked),
    stopAccepting() {
      accepting = false;
      server.close();
    },
    async close() {
      accepting = false;
      dashboard?.close();
      rateShare?.stop();
      await sessions.close();
      const closed = new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
      // close() waits for open connections (keep-alive, half-sent bodies); end them so it can finish.
      server.closeAllConnections();
      await closed;
    },
  };
}

function containsInitialize(body: unknown): boolean {
  const messages = Array.isArray(body) ? body : [body];
  return messages.some((m) => typeof m === "object" && m !== null && (m as { method?: unknown }).method === "initialize");
}

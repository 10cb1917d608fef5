/**
 * The live dashboard of the HTTP gateway (`dmcp gateway --http PORT --dashboard`), mounted on the
 * gateway's own express app so that it shares its host binding and its host-header guard:
 *
 * - `GET /dashboard`: the page (one self-contained HTML document).
 * - `GET /dashboard/api/state`: everything the page shows, as one JSON document.
 * - `GET /dashboard/api/events`: Server-Sent Events; a `state` event, then `update` events (what
 *   changed, batched by the monitor a few times a second).
 *
 * Each update is serialised once and written to every client. A client that stops reading is cut
 * off when its unsent backlog passes a limit, and the number of clients is capped: a dashboard must
 * never hold the gateway's memory hostage.
 */
import type { Express, Response } from "express";
import type { GatewayMonitor, MonitorUpdate } from "./monitor.js";
import type { Logger } from "../../../src/util/index.js";
import { dashboardPage } from "./page.js";

export const DASHBOARD_PATH = "/dashboard";

export interface DashboardOptions {
  logger: Logger;
  /** Event streams served at once; more get 503. */
  maxClients?: number;
  /** A client whose unsent backlog exceeds this is disconnected (its browser reconnects and starts over). */
  maxBacklogBytes?: number;
  /** Comment lines keep idle streams open through proxies. */
  keepAliveMs?: number;
}

export interface Dashboard {
  clientCount(): number;
  /** Ends every event stream and stops watching the monitor. */
  close(): void;
}

export function mountDashboard(app: Express, monitor: GatewayMonitor, options: DashboardOptions): Dashboard {
  const maxClients = options.maxClients ?? 32;
  const maxBacklogBytes = options.maxBacklogBytes ?? 4 * 1024 * 1024;
  const page = dashboardPage();
  const clients = new Set<Response>();
  let unwatch: (() => void) | undefined;

  const drop = (client: Response) => {
    if (!clients.delete(client)) return;
    // Nobody watches: the monitor stops reading traffic.
    if (clients.size === 0) {
      unwatch?.();
      unwatch = undefined;
    }
  };
  const write = (client: Response, text: string) => {
    if (client.writableLength > maxBacklogBytes) {
      options.logger.warn({ backlog: client.writableLength }, "dashboard client is not reading; disconnecting it");
      drop(client);
      client.destroy();
      return;
    }
    client.write(text);
  };
  const broadcast = (update: MonitorUpdate) => {
    const text = sse("update", update);
    for (const client of clients) write(client, text);
  };
  const keepAlive = setInterval(() => {
    for (const client of clients) write(client, ": keep-alive\n\n");
  }, options.keepAliveMs ?? 15_000);
  keepAlive.unref();

  app.get(DASHBOARD_PATH, (_req, res) => {
    res.set({
      "content-security-policy": page.csp,
      "x-content-type-options": "nosniff",
      "x-frame-options": "DENY",
      "referrer-policy": "no-referrer",
      "cache-control": "no-store",
    });
    res.type("html").send(page.html);
  });
  app.get(`${DASHBOARD_PATH}/api/state`, (_req, res) => {
    res.set({ "cache-control": "no-store", "x-content-type-options": "nosniff" }).json(monitor.snapshot());
  });
  app.get(`${DASHBOARD_PATH}/api/events`, (req, res) => {
    if (clients.size >= maxClients) {
      res
        .status(503)
        .set("retry-after", "10")
        .json({ error: `at most ${maxClients} dashboard clients at once` });
      return;
    }
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
      // Reverse proxies (nginx) would otherwise buffer the stream.
      "x-accel-buffering": "no",
    });
    res.write("retry: 2000\n\n");
    clients.add(res);
    // Watch first, then send the snapshot: an update may repeat entries the snapshot has (the page
    // skips them by sequence number), but none falls between the two.
    unwatch ??= monitor.watch(broadcast);
    write(res, sse("state", monitor.snapshot()));
    req.on("close", () => drop(res));
  });

  return {
    clientCount: () => clients.size,
    close() {
      clearInterval(keepAlive);
      for (const client of [...clients]) {
        drop(client);
        client.end();
      }
    },
  };
}

/** One SSE event. JSON.stringify escapes line breaks, so the data is always one line. */
function sse(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

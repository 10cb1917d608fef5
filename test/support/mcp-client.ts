/**
 * A raw MCP client over the SDK's client transports, for tests that must see every field on the wire
 * (the SDK's typed helpers drop unknown fields). Connects to the gateway over stdio or HTTP.
 */
import type { JSONRPCMessage, Transport } from "@modelcontextprotocol/client";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio";
import { DMCP_BIN } from "./processes.js";

export type Inbound = "stdio" | "http";

interface RpcResponse {
  jsonrpc: "2.0";
  id: number;
  result?: Record<string, unknown>;
  error?: { code: number; message: string; data?: unknown };
}

export class RawMcpClient {
  readonly notifications: { method: string; params?: Record<string, unknown> }[] = [];
  private nextId = 1;
  private readonly pending = new Map<number, (response: RpcResponse) => void>();
  private readonly notificationWaiters = new Set<{ method: string; resolve: () => void }>();

  constructor(readonly transport: Transport) {
    transport.onmessage = (message) => {
      const m = message as Record<string, unknown>;
      if ("id" in m && ("result" in m || "error" in m)) {
        const resolve = this.pending.get(m.id as number);
        this.pending.delete(m.id as number);
        resolve?.(m as unknown as RpcResponse);
      } else if (typeof m.method === "string" && !("id" in m)) {
        const notification = { method: m.method, ...(m.params ? { params: m.params as Record<string, unknown> } : {}) };
        this.notifications.push(notification);
        for (const waiter of this.notificationWaiters) {
          if (waiter.method === m.method) {
            this.notificationWaiters.delete(waiter);
            waiter.resolve();
          }
        }
      }
    };
  }

  static async connect(transport: Transport, protocolVersion = "2025-11-25"): Promise<RawMcpClient> {
    const client = new RawMcpClient(transport);
    await transport.start();
    const init = await client.request("initialize", {
      protocolVersion,
      capabilities: {},
      clientInfo: { name: "dmcp-test", version: "1.0.0" },
    });
    if (init.error) throw new Error(`initialize failed: ${init.error.message}`);
    transport.setProtocolVersion?.(String(init.result!.protocolVersion));
    await transport.send({ jsonrpc: "2.0", method: "notifications/initialized" } as JSONRPCMessage);
    return client;
  }

  /** Sends a request and resolves with the whole JSON-RPC response (result or error). */
  request(method: string, params?: Record<string, unknown>, timeoutMs = 30_000): Promise<RpcResponse> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no answer to ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, (response) => {
        clearTimeout(timer);
        resolve(response);
      });
      const message = { jsonrpc: "2.0", id, method, ...(params ? { params } : {}) };
      this.transport.send(message as JSONRPCMessage).catch((err: unknown) => {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(err as Error);
      });
    });
  }

  /** The id of the newest request sent (to cancel it). */
  get lastRequestId(): number {
    return this.nextId - 1;
  }

  /** The result, or throws with the JSON-RPC error. */
  async result(method: string, params?: Record<string, unknown>): Promise<Record<string, unknown>> {
    const response = await this.request(method, params);
    if (response.error) throw Object.assign(new Error(response.error.message), { rpc: response.error });
    return response.result!;
  }

  notify(method: string, params?: Record<string, unknown>): Promise<void> {
    return this.transport.send({ jsonrpc: "2.0", method, ...(params ? { params } : {}) } as JSONRPCMessage);
  }

  /** Resolves when a notification with this method arrives (or has arrived since `since`). */
  waitForNotification(method: string, timeoutMs = 15_000, since = 0): Promise<void> {
    if (this.notifications.slice(since).some((n) => n.method === method)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = {
        method,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.notificationWaiters.delete(waiter);
        reject(new Error(`no ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.notificationWaiters.add(waiter);
    });
  }

  async toolNames(): Promise<string[]> {
    const result = await this.result("tools/list");
    return (result.tools as { name: string }[]).map((tool) => tool.name).sort();
  }

  close(): Promise<void> {
    return this.transport.close();
  }
}

/** A gateway of the given inbound kind: stdio spawns `dmcp gateway --stdio`; http uses a URL. */
export function gatewayTransport(kind: Inbound, target: { natsUrl: string; httpUrl?: string }): Transport {
  if (kind === "stdio") {
    return new StdioClientTransport({
      command: process.execPath,
      args: [DMCP_BIN, "gateway", "--stdio", "--nats", target.natsUrl, "--log-level", "warn"],
      stderr: "ignore",
    });
  }
  if (!target.httpUrl) throw new Error("http inbound needs a gateway URL");
  return new StreamableHTTPClientTransport(new URL(target.httpUrl));
}

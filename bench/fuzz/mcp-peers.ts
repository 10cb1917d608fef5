/**
 * Raw MCP clients of the two inbound transports, for the fuzz: whatever bytes the fuzz makes go out
 * unchanged, and every message that comes back is seen (no SDK client validating or dropping them).
 */
import { performance } from "node:perf_hooks";
import type { ChildProc } from "./children.js";

export type RpcMessage = Record<string, unknown>;

export const MCP_HEADERS = { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25" };

export interface HttpAnswer {
  status: number;
  sessionId: string | undefined;
  /** The JSON-RPC messages of the body (an SSE stream's events or a JSON body). */
  messages: RpcMessage[];
  /** When each of `messages` arrived, in ms after the POST was sent. */
  arrivedAfterMs: number[];
  /** Parts of the body that were not JSON. */
  unparsed: number;
}

/** POSTs a body; an SSE answer is read event by event, so that each message's arrival time is known. */
export async function postMcp(url: string, body: Uint8Array | string, headers: Record<string, string>, timeoutMs = 20_000): Promise<HttpAnswer> {
  const sent = performance.now();
  const res = await fetch(url, { method: "POST", headers, body, signal: AbortSignal.timeout(timeoutMs) });
  const answer: HttpAnswer = { status: res.status, sessionId: res.headers.get("mcp-session-id") ?? undefined, messages: [], arrivedAfterMs: [], unparsed: 0 };
  const take = (chunk: string) => {
    const at = performance.now() - sent;
    try {
      const value: unknown = JSON.parse(chunk);
      for (const message of Array.isArray(value) ? value : [value]) {
        answer.messages.push(message as RpcMessage);
        answer.arrivedAfterMs.push(at);
      }
    } catch {
      answer.unparsed++;
    }
  };
  if (!res.headers.get("content-type")?.includes("text/event-stream")) {
    const text = await res.text();
    if (text !== "") take(text);
    return answer;
  }
  const decoder = new TextDecoder();
  let pending = "";
  const takeLines = (final: boolean) => {
    const lines = pending.split("\n");
    pending = final ? "" : (lines.pop() ?? "");
    for (const line of lines) {
      const data = line.startsWith("data:") ? line.slice(5).trim() : "";
      if (data !== "") take(data);
    }
  };
  for await (const chunk of res.body ?? []) {
    pending += decoder.decode(chunk as Uint8Array, { stream: true });
    takeLines(false);
  }
  pending += decoder.decode();
  takeLines(true);
  return answer;
}

export async function deleteSession(url: string, sessionId: string): Promise<void> {
  await fetch(url, { method: "DELETE", headers: { ...MCP_HEADERS, "mcp-session-id": sessionId }, signal: AbortSignal.timeout(10_000) }).catch(() => undefined);
}

/** An initialized session on the HTTP gateway, for the harness's own calls. */
export class HttpSession {
  private nextId = 1;

  private constructor(
    readonly url: string,
    readonly id: string,
  ) {}

  static async open(url: string): Promise<HttpSession> {
    const init = await postMcp(
      url,
      JSON.stringify({ jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "dmcp-fuzz", version: "1" } } }),
      MCP_HEADERS,
    );
    if (init.status !== 200 || !init.sessionId) throw new Error(`initialize over HTTP answered ${init.status}`);
    const session = new HttpSession(url, init.sessionId);
    await postMcp(url, JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }), session.headers);
    return session;
  }

  get headers(): Record<string, string> {
    return { ...MCP_HEADERS, "mcp-session-id": this.id };
  }

  async call(method: string, params: Record<string, unknown> = {}): Promise<RpcMessage> {
    const id = this.nextId++;
    const answer = await postMcp(this.url, JSON.stringify({ jsonrpc: "2.0", id, method, params }), this.headers);
    const response = answer.messages.find((m) => m.id === id);
    if (!response) throw new Error(`no answer to ${method} over HTTP (status ${answer.status})`);
    return response;
  }

  close(): Promise<void> {
    return deleteSession(this.url, this.id);
  }
}

const OWN_ID_PREFIX = "fz-harness-";

/**
 * The client side of `dmcp gateway --stdio`: writes raw bytes to its stdin, reads JSON lines from its
 * stdout. Answers to the harness's own requests are kept apart from the rest, which go to the listener.
 */
export class StdioPeer {
  private partial = "";
  private nextId = 1;
  private readonly own = new Map<string, (message: RpcMessage) => void>();
  private listener: ((message: RpcMessage) => void) | undefined;
  /** Notifications the gateway sent (list changes and the like). */
  notifications = 0;
  /** Stdout lines that were not JSON: stdout belongs to the protocol, so each one is a fault. */
  readonly notJson: string[] = [];

  constructor(private readonly child: ChildProc) {
    const stdout = child.proc.stdout!;
    stdout.setEncoding("utf8");
    stdout.on("data", (chunk: string) => {
      const lines = (this.partial + chunk).split("\n");
      this.partial = lines.pop() ?? "";
      for (const line of lines) if (line.trim() !== "") this.onLine(line);
    });
  }

  onMessage(listener: ((message: RpcMessage) => void) | undefined): void {
    this.listener = listener;
  }

  async write(data: Uint8Array | string): Promise<void> {
    const stdin = this.child.proc.stdin!;
    if (!stdin.write(data)) await new Promise<void>((resolve) => stdin.once("drain", resolve));
  }

  /** Sends a request of the harness's own and resolves with its response. */
  request(method: string, params: Record<string, unknown> = {}, timeoutMs = 20_000): Promise<RpcMessage> {
    const id = `${OWN_ID_PREFIX}${this.nextId++}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.own.delete(id);
        reject(new Error(`no answer to ${method} on stdio within ${timeoutMs} ms`));
      }, timeoutMs);
      this.own.set(id, (message) => {
        clearTimeout(timer);
        resolve(message);
      });
      this.write(`${JSON.stringify({ jsonrpc: "2.0", id, method, params })}\n`).catch((err: unknown) => {
        clearTimeout(timer);
        this.own.delete(id);
        reject(err as Error);
      });
    });
  }

  private onLine(line: string): void {
    let message: RpcMessage;
    try {
      message = JSON.parse(line) as RpcMessage;
    } catch {
      if (this.notJson.length < 5) this.notJson.push(line.slice(0, 300));
      return;
    }
    if (typeof message.method === "string") {
      this.notifications++;
      return;
    }
    const resolve = typeof message.id === "string" ? this.own.get(message.id) : undefined;
    if (resolve) {
      this.own.delete(message.id as string);
      resolve(message);
      return;
    }
    this.listener?.(message);
  }
}

/** The kind of a JSON-RPC answer: `result`, or the error's code name and dMCP code, e.g. `-32602 invalid params (UNKNOWN_TARGET)`. */
export function answerKind(message: RpcMessage): string {
  if ("result" in message) return "result";
  const error = message.error as { code?: unknown; data?: { dmcp_code?: unknown } } | undefined;
  if (!error || typeof error !== "object") return "neither result nor error";
  const code = typeof error.code === "number" ? error.code : NaN;
  const dmcp = typeof error.data?.dmcp_code === "string" ? ` (${error.data.dmcp_code})` : "";
  return `${code} ${JSON_RPC_NAMES[code] ?? "error"}${dmcp}`;
}

const JSON_RPC_NAMES: Record<number, string> = {
  [-32700]: "parse error",
  [-32600]: "invalid request",
  [-32601]: "method not found",
  [-32602]: "invalid params",
  [-32603]: "internal error",
  [-32002]: "resource not found",
  [-32000]: "server error",
  [-32001]: "session not found",
};

/**
 * A client of the gateway inside this process, for the announcer: it asks for the catalog as any
 * client would, and hears of its changes through the list_changed notifications the gateway sends.
 */
import type { JSONRPCMessage } from "@modelcontextprotocol/server";
import type { InboundTransport } from "../../../src/gateway/index.js";

interface Answer {
  result?: Record<string, unknown>;
  error?: { message: string };
}

export class LocalClient implements InboundTransport {
  onmessage: InboundTransport["onmessage"];
  onerror: InboundTransport["onerror"];
  onclose: InboundTransport["onclose"];
  /** Each notification the gateway sends this client, by method. */
  onnotification: ((method: string) => void) | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, (answer: Answer) => void>();
  private closed = false;

  async start(): Promise<void> {}

  async send(message: JSONRPCMessage): Promise<void> {
    const m = message as { id?: unknown; method?: unknown; result?: Record<string, unknown>; error?: { message: string } };
    if (typeof m.method === "string") {
      if (m.id === undefined) this.onnotification?.(m.method);
      // The gateway asks nothing of a client that declared no capabilities; should it, it is told no.
      else this.onmessage?.({ jsonrpc: "2.0", id: m.id, error: { code: -32601, message: "not supported by this client" } } as JSONRPCMessage);
      return;
    }
    if (typeof m.id === "number") {
      this.pending.get(m.id)?.(m);
      this.pending.delete(m.id);
    }
  }

  /** The result of a request, or throws with its error. */
  async request(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    if (this.closed) throw new Error("the local client is closed");
    const id = this.nextId++;
    const answer = await new Promise<Answer>((resolve) => {
      this.pending.set(id, resolve);
      this.onmessage?.({ jsonrpc: "2.0", id, method, params } as JSONRPCMessage);
    });
    if (answer.error || !answer.result) throw new Error(`${method}: ${answer.error?.message ?? "no result"}`);
    return answer.result;
  }

  notify(method: string): void {
    this.onmessage?.({ jsonrpc: "2.0", method } as JSONRPCMessage);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const resolve of this.pending.values()) resolve({ error: { message: "the local client closed" } });
    this.pending.clear();
    this.onclose?.();
  }
}

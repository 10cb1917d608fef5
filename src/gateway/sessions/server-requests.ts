/**
 * Requests the gateway sends to one MCP client on behalf of an upstream (sampling, elicitation,
 * roots), paired with the client's responses by id.
 */
import { CallError, DmcpError, ErrorCode, fromJsonRpcError, type JsonRpcId, type JsonRpcMessage } from "../../protocol/index.js";

interface Waiting {
  resolve: (result: Record<string, unknown>) => void;
  reject: (error: DmcpError) => void;
  timer: NodeJS.Timeout;
}

export type Answer = { result: Record<string, unknown> } | { error: { code: number; message: string; data?: unknown } };

/**
 * The gateway a server-to-client request's id names (ids are `dmcp-<n>@<gateway>`, or
 * `dmcp-<n>.<key>@<gateway>` for a request that came sealed), if it is one of ours.
 */
export function gatewayOfRequestId(id: JsonRpcId): string | undefined {
  if (typeof id !== "string" || !id.startsWith("dmcp-")) return undefined;
  const at = id.lastIndexOf("@");
  return at < 0 ? undefined : id.slice(at + 1);
}

/** The caller key a sealed server-to-client request's id names: its answer crosses the bus sealed to it (PROTOCOL.md §19.2). */
export function sealedToOfRequestId(id: JsonRpcId): string | undefined {
  return typeof id === "string" ? /^dmcp-\d+\.(X[A-Z2-7]{55})@/.exec(id)?.[1] : undefined;
}

export class ServerRequests {
  private readonly waiting = new Map<JsonRpcId, Waiting>();
  private sequence = 0;

  constructor(
    /** Sends a message to the client; `sealed`: the request came sealed (PROTOCOL.md §16). */
    private readonly transmit: (message: JsonRpcMessage, relatedRequestId?: JsonRpcId, sealed?: boolean) => void,
    /** Named in every id: a client that answers through another gateway is routed back here (PROTOCOL.md §19.2). */
    private readonly gatewayId: string,
  ) {}

  /**
   * Sends a request to the client (on the stream of `related`, when given) and resolves with its result.
   * A request that came sealed to caller key `sealedTo` names it in its id, so that a gateway the client
   * answers through seals the answer to it.
   */
  send(
    method: string,
    params: Record<string, unknown> | undefined,
    related: JsonRpcId | undefined,
    timeoutMs: number,
    sealedTo?: string | undefined,
  ): Promise<Record<string, unknown>> {
    // Ids of our own kind, so they cannot be mistaken for the client's.
    const id = `dmcp-${++this.sequence}${sealedTo === undefined ? "" : `.${sealedTo}`}@${this.gatewayId}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new CallError(ErrorCode.DeadlineExceeded, `the MCP client did not answer ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, { resolve, reject, timer });
      this.transmit(params === undefined ? { jsonrpc: "2.0", id, method } : { jsonrpc: "2.0", id, method, params }, related, sealedTo !== undefined);
    });
  }

  /** Settles the request a client response answers (or fails it); false when it answers none of ours. */
  settle(id: JsonRpcId, answer: Answer | DmcpError): boolean {
    const waiting = this.waiting.get(id);
    if (!waiting) return false;
    this.waiting.delete(id);
    clearTimeout(waiting.timer);
    if (answer instanceof DmcpError) waiting.reject(answer);
    else if ("result" in answer) waiting.resolve(answer.result);
    else waiting.reject(fromJsonRpcError(answer.error));
    return true;
  }

  closeAll(error: DmcpError): void {
    for (const [id, waiting] of [...this.waiting]) {
      this.waiting.delete(id);
      clearTimeout(waiting.timer);
      waiting.reject(error);
    }
  }
}

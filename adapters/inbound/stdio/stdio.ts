/**
 * Inbound adapter: the gateway as an MCP server on stdin/stdout (how Claude Desktop launches it).
 *
 * A transport of our own rather than the SDK's, because a bad line must be answered: the SDK's stdio
 * transport reports unparsable input to `onerror` only, and the client would wait forever.
 */
import type { Readable, Writable } from "node:stream";
import type { JSONRPCMessage } from "@modelcontextprotocol/server";
import { errorResponse, JsonRpcErrorCode, messageProblem } from "../../../src/protocol/index.js";
import type { Gateway, InboundTransport } from "../../../src/gateway/index.js";

/** Longest accepted line; longer input is answered with an error and dropped. */
export const DEFAULT_MAX_LINE_BYTES = 4 * 1024 * 1024;

/** One JSON-RPC message per line, in on `input` and out on `output` (an SDK server may use it too). */
export class LineStdioServerTransport implements InboundTransport {
  onmessage: InboundTransport["onmessage"];
  onerror: InboundTransport["onerror"];
  onclose: InboundTransport["onclose"];
  private buffer = "";
  private discarding = false;
  private closed = false;

  constructor(
    private readonly input: Readable = process.stdin,
    private readonly output: Writable = process.stdout,
    private readonly maxLineBytes = DEFAULT_MAX_LINE_BYTES,
  ) {}

  async start(): Promise<void> {
    this.input.setEncoding("utf8");
    this.input.on("data", this.onData);
    this.input.on("end", this.onEnd);
    this.input.on("error", this.onInputError);
    this.output.on("error", this.onOutputError);
  }

  async send(message: JSONRPCMessage): Promise<void> {
    if (this.closed) return;
    const line = `${JSON.stringify(message)}\n`;
    if (!this.output.write(line)) await new Promise<void>((resolve) => this.output.once("drain", resolve));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.input.off("data", this.onData);
    this.input.off("end", this.onEnd);
    this.input.off("error", this.onInputError);
    this.input.pause();
    this.onclose?.();
  }

  private readonly onData = (chunk: string): void => {
    let start = 0;
    for (let newline = chunk.indexOf("\n"); newline !== -1; newline = chunk.indexOf("\n", start)) {
      this.take(chunk.slice(start, newline), true);
      start = newline + 1;
    }
    this.take(chunk.slice(start), false);
  };

  /** Adds text to the current line; a complete line is handled, an overlong one dropped once. */
  private take(text: string, complete: boolean): void {
    if (!this.discarding) this.buffer += text;
    if (!this.discarding && Buffer.byteLength(this.buffer) > this.maxLineBytes) {
      this.discarding = true;
      this.buffer = "";
      this.reply(JsonRpcErrorCode.InvalidRequest, `message exceeds the limit of ${this.maxLineBytes} bytes`);
    }
    if (!complete) return;
    const line = this.buffer.trim();
    this.buffer = "";
    const wasDiscarding = this.discarding;
    this.discarding = false;
    if (!wasDiscarding && line) this.handleLine(line);
  }

  private handleLine(line: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      this.reply(JsonRpcErrorCode.ParseError, "Parse error: the line is not valid JSON");
      return;
    }
    // The whole MCP message schema, _meta included: what an upstream would drop must be answered here.
    const problem = messageProblem(parsed);
    if (problem) {
      this.reply(problem.code, problem.message, problem.id);
      return;
    }
    this.onmessage?.(parsed as JSONRPCMessage);
  }

  private reply(code: number, message: string, id: string | number | null = null): void {
    this.onerror?.(new Error(message));
    void this.send(errorResponse(id, { code, message }) as JSONRPCMessage);
  }

  private readonly onEnd = (): void => void this.close();
  private readonly onInputError = (error: Error): void => this.onerror?.(error);
  private readonly onOutputError = (error: Error): void => {
    this.onerror?.(error);
    void this.close();
  };
}

/**
 * Serves the gateway on this process's stdin/stdout; `closed` resolves when stdin ends. The client is
 * whoever started the process: a `local` identity, named by `identity` (default "local").
 */
export async function serveStdio(gateway: Gateway, streams: { input?: Readable; output?: Writable } = {}, identity = "local"): Promise<{ closed: Promise<void> }> {
  const transport = new LineStdioServerTransport(streams.input, streams.output);
  const session = await gateway.connect(transport, "stdio", { kind: "local", subject: identity });
  return { closed: session.closed };
}

/**
 * The upstream transport of a child process: the SDK's stdio client transport, with the child's stderr
 * kept in our log and the lines on its stdout that are not messages told to the executor.
 */
import type { ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { deserializeMessage, STDIO_DEFAULT_MAX_BUFFER_SIZE, type JSONRPCMessage } from "@modelcontextprotocol/client";
import { StdioClientTransport, type StdioServerParameters } from "@modelcontextprotocol/client/stdio";
import type { UpstreamTransport } from "../../../src/executor/index.js";
import { ErrorCode, UpstreamError } from "../../../src/protocol/index.js";
import { excerpt, type Logger } from "../../../src/util/index.js";

export class StdioUpstreamTransport extends StdioClientTransport implements UpstreamTransport {
  onunreadable: UpstreamTransport["onunreadable"];

  /** `server` without `stderr`: the child's stderr is always piped into `logger`. */
  constructor(
    server: Omit<StdioServerParameters, "stderr">,
    private readonly logger: Logger,
  ) {
    super({ ...server, stderr: "pipe" });
    forwardStderr(this.stderr as Readable | null, logger, (line) => (this.lastStderrLine = line));
    this.readLinesTelling();
  }

  /** What the child said last on stderr, and how it exited: why a server that went away did. */
  private lastStderrLine: string | undefined;
  private exit: string | undefined;

  override async start(): Promise<void> {
    await super.start();
    this.logger.debug({ childPid: this.pid }, "upstream child started");
    // The SDK keeps the child in a private field; without it (another SDK version) the exit is not told.
    const child = Reflect.get(this, "_process") as ChildProcess | undefined;
    child?.once("exit", (code, signal) => (this.exit = signal ? `killed by ${signal}` : `exit code ${code}`));
  }

  endedHow(): string | undefined {
    if (!this.exit) return undefined;
    return this.lastStderrLine ? `${this.exit}; its stderr ended with a line ${excerpt(this.lastStderrLine)}` : this.exit;
  }

  /**
   * The SDK's stdio transport drops a stdout line that is not JSON without a word, and reports one that
   * is JSON but not a JSON-RPC message without the line. Its line reader (a private field: the SDK
   * keeps no other hook for such lines) is swapped for one that hands them to `onunreadable`, so that
   * a garbled answer fails its call at once instead of at its deadline. Without that field (another
   * SDK version) lines are read as before.
   */
  private readLinesTelling(): void {
    if (!Reflect.has(this, "_readBuffer")) return;
    Reflect.set(this, "_readBuffer", new TellingLineReader((line, reason) => this.onunreadable?.(line, reason)));
  }
}

/** The SDK's ReadBuffer (same limit, same validation), telling of each line that is not a message. */
class TellingLineReader {
  private buffer: Buffer | undefined;

  constructor(private readonly onUnreadable: (line: string, reason: string) => void) {}

  append(chunk: Buffer): void {
    if ((this.buffer?.length ?? 0) + chunk.length > STDIO_DEFAULT_MAX_BUFFER_SIZE) {
      this.clear();
      // The SDK's message for it, of the family of what it is: the upstream wrote past the limit without a newline.
      throw new UpstreamError(ErrorCode.UpstreamError, `ReadBuffer exceeded maximum size of ${STDIO_DEFAULT_MAX_BUFFER_SIZE} bytes`);
    }
    this.buffer = this.buffer ? Buffer.concat([this.buffer, chunk]) : chunk;
  }

  readMessage(): JSONRPCMessage | null {
    while (this.buffer) {
      const newline = this.buffer.indexOf("\n");
      if (newline === -1) return null;
      const line = this.buffer.toString("utf8", 0, newline).replace(/\r$/, "");
      this.buffer = this.buffer.subarray(newline + 1);
      try {
        return deserializeMessage(line);
      } catch (err) {
        if (line.trim() !== "") this.onUnreadable(line, err instanceof SyntaxError ? `not JSON (${err.message})` : "not a JSON-RPC message");
      }
    }
    return null;
  }

  clear(): void {
    this.buffer = undefined;
  }
}

/** The child's stderr is its log: keep it, line by line, in ours (stdout belongs to MCP). */
function forwardStderr(stream: Readable | null, logger: Logger, onLine: (line: string) => void): void {
  if (!stream) return;
  const lines = createInterface({ input: stream });
  lines.on("line", (line) => {
    if (!line.trim()) return;
    logger.info({ upstream_stderr: line }, "upstream log");
    onLine(line);
  });
  lines.on("error", () => undefined);
}

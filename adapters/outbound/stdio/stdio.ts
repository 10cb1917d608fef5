/** Outbound adapter: an MCP server run as a child process, spoken to over stdio. */
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { deserializeMessage, STDIO_DEFAULT_MAX_BUFFER_SIZE, type JSONRPCMessage } from "@modelcontextprotocol/client";
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio";
import { CLIENT_INFO, McpUpstream, sessionOrStateless, type UpstreamConnector } from "../../../src/executor/index.js";
import type { Logger } from "../../../src/util/logger.js";

export interface StdioServerSpec {
  command: string;
  args?: string[];
  /** Added to (or replacing variables of) the environment the child inherits from this process. */
  env?: Record<string, string>;
  cwd?: string;
}

export function stdioConnector(spec: StdioServerSpec): UpstreamConnector {
  const description = `stdio: ${[spec.command, ...(spec.args ?? [])].join(" ")}`;
  const spawn = (logger: Logger) => {
    const transport = new StdioClientTransport({
      command: spec.command,
      args: spec.args ?? [],
      // Like running the command in this shell: the child sees this process's environment (the SDK's
      // default would be a minimal one), so a server behaves wrapped as it does when run by hand.
      env: { ...inheritedEnv(), ...spec.env },
      ...(spec.cwd ? { cwd: spec.cwd } : {}),
      stderr: "pipe",
    });
    forwardStderr(transport.stderr as Readable | null, logger);
    readLinesTelling(transport);
    return { transport, upstream: new McpUpstream(transport, logger) };
  };
  const connect = sessionOrStateless((logger) => spawn(logger).upstream);
  return {
    description,
    async connect(logger: Logger, capabilities?: Record<string, unknown>): Promise<McpUpstream> {
      const upstream = await connect(logger, capabilities);
      logger.debug("upstream child started");
      return upstream;
    },
    // A child of its own: the SDK's stdio server pins a connection to the revision of its first message.
    async connectStateless(logger: Logger): Promise<McpUpstream> {
      const { transport, upstream } = spawn(logger);
      // A child that does not answer would otherwise outlive the attempt.
      await upstream.connectStateless(CLIENT_INFO).catch(async (err: unknown) => {
        await upstream.close();
        throw err;
      });
      logger.debug({ pid: transport.pid }, "stateless upstream child started");
      return upstream;
    },
  };
}

/**
 * The SDK's stdio transport drops a stdout line that is not JSON without a word, and reports one that
 * is JSON but not a JSON-RPC message without the line. Its line reader is swapped for one that hands
 * such lines to the transport's `onunreadable` (the session then fails the call a garbled answer names,
 * at once, instead of at its deadline); the SDK keeps no other hook for them. Without the reader
 * (another SDK version) lines are read as before.
 */
function readLinesTelling(transport: StdioClientTransport): void {
  const hooked = transport as unknown as { _readBuffer?: unknown; onunreadable?: (line: string, reason: string) => void };
  if (!("_readBuffer" in hooked)) return;
  hooked._readBuffer = new TellingLineReader((line, reason) => hooked.onunreadable?.(line, reason));
}

/** The SDK's ReadBuffer (same limit, same validation), telling of each line that is not a message. */
class TellingLineReader {
  private buffer: Buffer | undefined;

  constructor(private readonly onUnreadable: (line: string, reason: string) => void) {}

  append(chunk: Buffer): void {
    if ((this.buffer?.length ?? 0) + chunk.length > STDIO_DEFAULT_MAX_BUFFER_SIZE) {
      this.clear();
      throw new Error(`ReadBuffer exceeded maximum size of ${STDIO_DEFAULT_MAX_BUFFER_SIZE} bytes`);
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

function inheritedEnv(): Record<string, string> {
  return Object.fromEntries(Object.entries(process.env).filter((entry): entry is [string, string] => entry[1] !== undefined));
}

/** The child's stderr is its log: keep it, line by line, in ours (stdout belongs to MCP). */
function forwardStderr(stream: Readable | null, logger: Logger): void {
  if (!stream) return;
  const lines = createInterface({ input: stream });
  lines.on("line", (line) => {
    if (line.trim()) logger.info({ upstream_stderr: line }, "upstream log");
  });
  lines.on("error", () => undefined);
}

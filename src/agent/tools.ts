/**
 * The tools of a native agent: declaration (names and schemas checked up front, so a mistake fails at
 * start-up rather than at the first call), the catalog entries announced on the bus, argument
 * validation and the shaping of a handler's return value into an MCP CallToolResult.
 */
import * as z from "zod";
import type { RequestContext } from "../bus/index.js";
import { ErrorCode, formatIssues, JsonRpcErrorCode, RequestError } from "../protocol/index.js";
import type { Logger } from "../util/index.js";
import { AgentDeclarationError } from "./errors.js";

/** MCP's tool-name rule (SEP-986): 1-128 characters from A-Z a-z 0-9 _ - . */
const TOOL_NAME = /^[A-Za-z0-9_.-]{1,128}$/;
/** setTimeout's limit; a longer deadline is as good as none. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface ToolContext {
  /** The request's correlation id: use it to make side effects idempotent. */
  correlationId: string;
  sessionId?: string | undefined;
  /** Milliseconds left before the caller stops waiting. */
  timeoutMs: number;
  /** Aborted when the caller's deadline passes or the caller cancels: nobody reads the answer after that. */
  signal: AbortSignal;
  /** Tells the caller how far the call has got (MCP progress); a no-op when the caller asked for none. */
  reportProgress(progress: number, total?: number, message?: string): void;
}

/** MCP tool annotations (hints for clients; never trusted for security). */
export interface ToolAnnotations {
  title?: string;
  readOnlyHint?: boolean;
  destructiveHint?: boolean;
  idempotentHint?: boolean;
  openWorldHint?: boolean;
  [key: string]: unknown;
}

export interface ToolDefinition<S extends z.ZodType> {
  description: string;
  title?: string;
  /** The arguments, as a zod object schema; leave it out for a tool without arguments. */
  input?: S;
  annotations?: ToolAnnotations;
}

export type ToolHandler<S extends z.ZodType> = (args: z.output<S>, ctx: ToolContext) => unknown;

export interface ContentBlock {
  type: string;
  [key: string]: unknown;
}

/** MCP's CallToolResult, loosely typed so that fields of newer revisions pass through. */
export interface CallToolResult {
  content: ContentBlock[];
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
  [key: string]: unknown;
}

/** A catalog entry as announced in the registry and returned by tools/list. */
export interface ToolListEntry {
  name: string;
  description: string;
  title?: string;
  inputSchema: Record<string, unknown>;
  annotations?: ToolAnnotations;
  [key: string]: unknown;
}

interface DeclaredTool {
  entry: ToolListEntry;
  input: z.ZodType;
  handler: (args: unknown, ctx: ToolContext) => unknown;
}

export class ToolSet {
  private readonly tools = new Map<string, DeclaredTool>();

  constructor(private readonly logger: Logger) {}

  get size(): number {
    return this.tools.size;
  }

  declare<S extends z.ZodType>(name: string, definition: ToolDefinition<S>, handler: ToolHandler<S>): void {
    if (typeof name !== "string" || !TOOL_NAME.test(name)) {
      throw new AgentDeclarationError(`invalid tool name ${JSON.stringify(name)}: use 1-128 characters from A-Z a-z 0-9 _ - .`);
    }
    if (this.tools.has(name)) throw new AgentDeclarationError(`tool ${name} is declared twice`);
    if (typeof definition?.description !== "string") throw new AgentDeclarationError(`tool ${name} needs a description (a string)`);
    if (typeof handler !== "function") throw new AgentDeclarationError(`tool ${name} needs a handler function`);
    const input: z.ZodType = definition.input ?? z.object({});
    if (!isZodSchema(input)) throw new AgentDeclarationError(`the input of tool ${name} must be a zod schema, e.g. z.object({...})`);
    const entry: ToolListEntry = {
      name,
      description: definition.description,
      ...(definition.title !== undefined ? { title: definition.title } : {}),
      inputSchema: inputJsonSchema(name, input),
      ...(definition.annotations !== undefined ? { annotations: definition.annotations } : {}),
    };
    this.tools.set(name, { entry, input, handler: handler as DeclaredTool["handler"] });
  }

  list(): ToolListEntry[] {
    return [...this.tools.values()].map((tool) => tool.entry);
  }

  /**
   * Serves one tools/call. A missing or unknown tool, or arguments that are not an object, are protocol
   * errors (the request does not fit MCP's CallToolRequest); arguments that fail the tool's schema and
   * a handler that throws are tool execution errors, which MCP 2025-11-25 reports in the result
   * (`isError`) so that the model can read them and try again (PROTOCOL.md §13.2).
   */
  async call(params: Record<string, unknown> | undefined, context: RequestContext): Promise<CallToolResult> {
    const name = params?.name;
    if (typeof name !== "string") throw new RequestError(ErrorCode.UnknownTarget, "tools/call needs params.name (a string)", { jsonrpcCode: JsonRpcErrorCode.InvalidParams });
    const tool = this.tools.get(name);
    if (!tool) throw new RequestError(ErrorCode.UnknownTarget, `Unknown tool: ${name}`, { jsonrpcCode: JsonRpcErrorCode.InvalidParams });
    const args = params?.arguments === undefined ? {} : params.arguments;
    if (!isRecord(args)) throw new RequestError(ErrorCode.InvalidParams, "tools/call needs params.arguments to be an object");
    const parsed = await tool.input.safeParseAsync(args);
    if (!parsed.success) {
      return { content: [{ type: "text", text: `Invalid arguments for tool ${name}: ${formatIssues(parsed.error.issues)}` }], isError: true };
    }
    const ctx: ToolContext = {
      correlationId: context.correlationId,
      sessionId: context.sessionId,
      timeoutMs: context.timeoutMs,
      signal: eitherSignal(AbortSignal.timeout(Math.max(0, Math.min(context.timeoutMs, MAX_TIMER_MS))), context.signal),
      reportProgress: progressReporter(params, context),
    };
    try {
      return toCallToolResult(await tool.handler(parsed.data, ctx));
    } catch (err) {
      this.logger.warn({ err, tool: name, correlationId: context.correlationId }, "tool failed");
      return { content: [{ type: "text", text: err instanceof Error ? err.message : String(err) }], isError: true };
    }
  }
}

/**
 * A result that already looks like a CallToolResult (it has a `content` array) goes out as it is;
 * any other value becomes text for the model plus, for plain objects, structuredContent for programs.
 * Strings are sent as they are rather than JSON-quoted. Throws when the value is not JSON.
 */
export function toCallToolResult(value: unknown): CallToolResult {
  if (isRecord(value) && Array.isArray(value.content)) return value as CallToolResult;
  if (value === undefined) return { content: [] };
  const text = typeof value === "string" ? value : JSON.stringify(value);
  if (typeof text !== "string") throw new TypeError(`the tool returned a ${typeof value}, which is not JSON`);
  return { content: [{ type: "text", text }], ...(isPlainObject(value) ? { structuredContent: value } : {}) };
}

/** MCP requires the root of an inputSchema to be of type "object"; the SDK's conversion is used as the model. */
function inputJsonSchema(tool: string, input: z.ZodType): Record<string, unknown> {
  let schema: Record<string, unknown>;
  try {
    schema = z.toJSONSchema(input, { target: "draft-2020-12", io: "input" }) as Record<string, unknown>;
  } catch (cause) {
    throw new AgentDeclarationError(`the input of tool ${tool} cannot be described as JSON Schema: ${(cause as Error).message}`, { cause });
  }
  if (schema.type === "object") return schema;
  // A union of objects (e.g. z.discriminatedUnion) has no root type but only ever accepts objects.
  if (schema.type === undefined && isUnionOfObjects(schema)) return { type: "object", ...schema };
  throw new AgentDeclarationError(`the input of tool ${tool} must describe an object (use z.object({...})); its JSON Schema has type ${JSON.stringify(schema.type ?? "(none)")}`);
}

function isUnionOfObjects(schema: Record<string, unknown>): boolean {
  const members = schema.anyOf ?? schema.oneOf;
  return Array.isArray(members) && members.length > 0 && members.every((member) => isRecord(member) && member.type === "object");
}

/** Duck-typed, so that a schema built with the application's own copy of zod 4 is accepted too. */
function isZodSchema(value: unknown): value is z.ZodType {
  return isRecord(value) && "_zod" in value && typeof (value as { safeParseAsync?: unknown }).safeParseAsync === "function";
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (!isRecord(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Aborts when either aborts (AbortSignal.any arrived in Node 20.3; engines allow 20.0). */
function eitherSignal(a: AbortSignal, b: AbortSignal): AbortSignal {
  if (typeof AbortSignal.any === "function") return AbortSignal.any([a, b]);
  const controller = new AbortController();
  const forward = (signal: AbortSignal) => () => controller.abort(signal.reason);
  for (const signal of [a, b]) {
    if (signal.aborted) controller.abort(signal.reason);
    else signal.addEventListener("abort", forward(signal), { once: true });
  }
  return controller.signal;
}

/** Progress for the caller's progressToken, if it sent one. */
function progressReporter(params: Record<string, unknown> | undefined, context: RequestContext): ToolContext["reportProgress"] {
  const token = (params?._meta as Record<string, unknown> | undefined)?.progressToken;
  if (typeof token !== "string" && typeof token !== "number") return () => undefined;
  return (progress, total, message) =>
    context.notify("notifications/progress", {
      progressToken: token,
      progress,
      ...(total === undefined ? {} : { total }),
      ...(message === undefined ? {} : { message }),
    });
}

/**
 * The gateway's own service, `dmcp`: context topics as MCP resources (`dmcp://context/<topic>`,
 * readable and subscribable) and two tools, one to publish a context update and one to replay a
 * topic's history. It takes part in aggregation like any other service, so its names follow the same
 * collision rules.
 */
import { ContextStreams, type Bus, type BusSubscription, type ContextEntry, type ContextRetention } from "../bus/index.js";
import { contextUri, type DmcpError, ErrorCode, isDmcpError, isValidTopic, JsonRpcErrorCode, RequestError, topicOfUri, type Catalog } from "../protocol/index.js";
import type { Logger } from "../util/index.js";

/** The reserved service name of the gateway's own tools and resources. */
export const GATEWAY_SERVICE = "dmcp";
export const PUBLISH_TOOL = "dmcp_publish_context";
export const HISTORY_TOOL = "dmcp_context_history";
const MAX_HISTORY = 1000;

export interface ContextServiceOptions {
  bus: Bus;
  logger: Logger;
  sender: string;
  /** Limits of the context stream; without them an existing stream keeps its own. */
  retention?: ContextRetention;
}

export class ContextService {
  private readonly streams: ContextStreams;
  private readonly topics = new Set<string>();
  private readonly listeners = new Set<(topic: string) => void>();
  private readonly topicListeners = new Set<() => void>();
  private watcher: BusSubscription | undefined;

  constructor(private readonly options: ContextServiceOptions) {
    this.streams = new ContextStreams(options.bus, options.sender);
  }

  async start(): Promise<void> {
    await this.streams.ensureStream(this.options.retention);
    // Watch first, then list: a topic created in between is seen by one or the other.
    this.watcher = this.streams.watch(
      ">",
      (entry) => this.onUpdate(entry.topic),
      (bad) => {
        this.options.logger.warn({ subject: bad.subject, err: bad.error }, "malformed context update on the bus");
        this.options.bus.dropped("context", bad.error.code.toLowerCase());
        if (this.options.bus.codec.isRejection(bad.error)) this.options.bus.reportError(this.options.sender, bad.error, { subject: bad.subject });
      },
    );
    for (const topic of (await this.streams.topics()).keys()) this.topics.add(topic);
  }

  stop(): void {
    this.watcher?.unsubscribe();
  }

  /** Called with the topic of every valid update, for resource subscriptions. */
  onUpdated(listener: (topic: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Called when a topic appears for the first time. */
  onTopicsChanged(listener: () => void): () => void {
    this.topicListeners.add(listener);
    return () => this.topicListeners.delete(listener);
  }

  catalog(): Catalog {
    return {
      tools: [
        {
          name: PUBLISH_TOOL,
          title: "Publish a context update",
          description: "Publishes a dMCP context_update on a topic; agents subscribed to it receive it, and it is kept for replay.",
          inputSchema: {
            type: "object",
            properties: {
              topic: { type: "string", description: "dot-separated topic, e.g. plant.pressure" },
              data: { description: "the update: any JSON value" },
            },
            required: ["topic", "data"],
          },
        },
        {
          name: HISTORY_TOOL,
          title: "Replay a context topic",
          description: "Returns a topic's stored updates in order, from a sequence number or a time.",
          inputSchema: {
            type: "object",
            properties: {
              topic: { type: "string" },
              from_seq: { type: "integer", minimum: 1, description: "first stream sequence to return" },
              since: { type: "string", format: "date-time", description: "return updates stored at or after this time" },
              limit: { type: "integer", minimum: 1, maximum: MAX_HISTORY, default: 100 },
            },
            required: ["topic"],
          },
          annotations: { readOnlyHint: true },
        },
      ],
      resources: [...this.topics].sort().map((topic) => ({
        uri: contextUri(topic),
        name: topic,
        title: `Context topic ${topic}`,
        description: `The latest dMCP context update on ${topic}`,
        mimeType: "application/json",
      })),
      resource_templates: [],
      prompts: [],
    };
  }

  /** Serves a request addressed to the gateway's own service. */
  async handle(method: string, params: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (method === "resources/read") return this.read(String(params.uri));
    if (method === "tools/call" && (params.name === PUBLISH_TOOL || params.name === HISTORY_TOOL)) {
      const args = (params.arguments ?? {}) as Record<string, unknown>;
      try {
        return await (params.name === PUBLISH_TOOL ? this.publish(args) : this.history(args));
      } catch (err) {
        // Arguments that fail the tool's schema are a tool result the model can read, as MCP 2025-11-25 asks.
        if (isDmcpError(err, ErrorCode.InvalidParams)) return { content: [{ type: "text", text: err.message }], isError: true };
        throw err;
      }
    }
    throw new RequestError(ErrorCode.UnknownTarget, `Method not found: ${method}`, { jsonrpcCode: JsonRpcErrorCode.MethodNotFound });
  }

  /** The topic of a context resource URI this service serves, or undefined. */
  static topicOf(uri: string): string | undefined {
    return topicOfUri(uri);
  }

  private async read(uri: string): Promise<Record<string, unknown>> {
    const topic = topicOfUri(uri);
    const latest = topic
      ? await this.streams.latest(topic, (bad) => this.options.logger.warn({ seq: bad.seq, err: bad.error }, "passing over a malformed stored context update"))
      : undefined;
    if (!latest) {
      throw new RequestError(ErrorCode.UnknownTarget, `Resource not found: ${uri}`, { jsonrpcCode: JsonRpcErrorCode.ResourceNotFound, data: { uri } });
    }
    return { contents: [{ uri, mimeType: "application/json", text: JSON.stringify(latest.envelope.payload.data ?? null), _meta: entryMeta(latest) }] };
  }

  private async publish(args: Record<string, unknown>): Promise<Record<string, unknown>> {
    const topic = requireTopic(args.topic);
    if (!("data" in args)) throw invalid("data is required");
    const { seq } = await this.streams.publish(topic, args.data);
    return { content: [{ type: "text", text: `published on ${topic} as #${seq}` }], structuredContent: { topic, seq } };
  }

  private async history(args: Record<string, unknown>): Promise<Record<string, unknown>> {
    const topic = requireTopic(args.topic);
    const limit = args.limit === undefined ? 100 : Number(args.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_HISTORY) throw invalid(`limit must be a whole number from 1 to ${MAX_HISTORY}`);
    let from: { seq: number } | { time: Date } | "all" = "all";
    if (args.from_seq !== undefined) {
      if (!Number.isInteger(args.from_seq) || (args.from_seq as number) < 1) throw invalid("from_seq must be a whole number from 1");
      from = { seq: args.from_seq as number };
    } else if (args.since !== undefined) {
      const time = new Date(String(args.since));
      if (Number.isNaN(time.getTime())) throw invalid("since must be an ISO 8601 date-time");
      from = { time };
    }
    const entries = await this.streams.history(topic, {
      from,
      limit,
      onBad: (bad) => this.options.logger.warn({ seq: bad.seq, err: bad.error }, "skipping a malformed stored context update"),
    });
    const updates = entries.map((entry) => ({
      seq: entry.seq,
      time: entry.time.toISOString(),
      sender_id: entry.envelope.sender_id,
      data: entry.envelope.payload.data ?? null,
    }));
    return { content: [{ type: "text", text: JSON.stringify(updates) }], structuredContent: { topic, updates } };
  }

  private onUpdate(topic: string): void {
    if (!this.topics.has(topic)) {
      this.topics.add(topic);
      for (const listener of this.topicListeners) listener();
    }
    for (const listener of this.listeners) listener(topic);
  }
}

function entryMeta(entry: ContextEntry): Record<string, unknown> {
  return { "io.dmcp/seq": entry.seq, "io.dmcp/time": entry.time.toISOString(), "io.dmcp/sender": entry.envelope.sender_id };
}

function requireTopic(value: unknown): string {
  if (typeof value !== "string" || !isValidTopic(value)) throw invalid("topic must be 1-16 dot-separated tokens of A-Z a-z 0-9 _ -");
  return value;
}

function invalid(message: string): DmcpError {
  return new RequestError(ErrorCode.InvalidParams, `Invalid arguments: ${message}`);
}

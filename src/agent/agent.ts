/**
 * A native dMCP agent: serves its own tools on the bus (no MCP server behind it), announces itself with
 * an agent profile, publishes and subscribes to context topics, and calls other services' tools.
 * It composes the same parts as an executor: a ServiceEndpoint for requests, an InstancePresence for
 * the registry and heartbeats, plus ContextStreams and a Requester.
 */
import { randomUUID } from "node:crypto";
import type { Registry } from "prom-client";
import { hostname } from "node:os";
import type * as z from "zod";
import {
  awaitStreams,
  CONTEXT_STREAM_SPEC,
  ContextStreams,
  InstancePresence,
  NatsServicesEndpoint,
  REGISTRY_STREAM,
  Requester,
  ServiceEndpoint,
  type AnnouncementInput,
  type BadContextMessage,
  type Bus,
  type ReplayFrom,
} from "../bus/index.js";
import { ErrorCode, isValidToken, isValidTopic, RequestError, subjects, type AgentProfile, type ContextUpdate, type InstanceStatus } from "../protocol/index.js";
import { createLogger, type Logger } from "../util/index.js";
import { AgentDeclarationError, AgentStateError } from "./errors.js";
import { badUpdateReporter } from "./report.js";
import { agentRequestHandler } from "./requests.js";
import { toEvent, TopicSubscription, type AgentSubscription, type ContextEvent, type ContextHandler, type SubscribeOptions } from "./subscriptions.js";
import type { MessageSecurity } from "../security/index.js";
import { ToolSet, type CallToolResult, type ToolDefinition, type ToolHandler } from "./tools.js";

export interface AgentOptions {
  bus: Bus;
  /** The service name other participants call it by (1-128 of A-Z a-z 0-9 _ -). */
  name: string;
  version: string;
  description?: string;
  /** Shown to MCP clients by the gateway, as an MCP server's instructions. */
  instructions?: string;
  /** Stable id for the profile; defaults to `<name>@<host>`. */
  id?: string;
  /** Unique per process; defaults to `<name>-<random>`. */
  instance?: string;
  logger?: Logger;
  heartbeatMs?: number;
  /** Timeout of agent.call when the call does not give one. */
  callTimeoutMs?: number;
  /** How long stop() waits for calls and context handlers in flight. */
  stopGraceMs?: number;
  /** Where to record metrics (durable subscriptions' redeliveries and dead letters); none without it. */
  metrics?: Registry;
  /**
   * Signs what the agent sends, verifies what it receives, opens requests sealed to its service's curve
   * key (PROTOCOL.md §14). Default: the bus's own (`connectBus({ security })`), if any.
   */
  security?: MessageSecurity;
}

export interface AgentCallOptions {
  timeoutMs?: number;
  sessionId?: string;
  signal?: AbortSignal;
}

type State = "idle" | "starting" | "running" | "stopping" | "stopped";

const DEFAULT_CALL_TIMEOUT_MS = 60_000;
const DEFAULT_STOP_GRACE_MS = 10_000;

export class Agent {
  readonly name: string;
  readonly version: string;
  readonly instance: string;
  readonly id: string;
  private readonly logger: Logger;
  private readonly tools: ToolSet;
  private readonly endpoint: ServiceEndpoint;
  private readonly natsServices: NatsServicesEndpoint;
  private readonly presence: InstancePresence;
  private readonly streams: ContextStreams;
  private readonly requester: Requester;
  private readonly published = new Set<string>();
  private readonly consumed = new Set<string>();
  private readonly subscriptions = new Set<TopicSubscription>();
  private readonly reportBad: (bad: BadContextMessage) => void;
  private state: State = "idle";
  private status: InstanceStatus = "starting";
  /** Set once the context stream exists: from then on subscriptions open as soon as they are made. */
  private streamReady = false;
  private starting: Promise<void> | undefined;
  /** Ends a start() that still waits for a gateway to create the streams. */
  private readonly startAbort = new AbortController();

  constructor(private readonly options: AgentOptions) {
    if (typeof options.name !== "string" || !isValidToken(options.name)) {
      throw new AgentDeclarationError(`invalid agent name ${JSON.stringify(options.name)}: use 1-128 characters from A-Z a-z 0-9 _ - (it is the service name on the bus)`);
    }
    if (typeof options.version !== "string" || options.version.length < 1 || options.version.length > 64) {
      throw new AgentDeclarationError("the agent needs a version of 1-64 characters");
    }
    this.name = options.name;
    this.version = options.version;
    this.instance = options.instance ?? `${options.name}-${randomUUID().slice(0, 8)}`;
    if (!isValidToken(this.instance)) throw new AgentDeclarationError(`invalid instance id ${JSON.stringify(this.instance)}: use 1-128 characters from A-Z a-z 0-9 _ -`);
    this.id = options.id ?? `${options.name}@${hostname()}`.slice(0, 256);
    if (this.id.length < 1 || this.id.length > 256) throw new AgentDeclarationError("the agent id must have 1-256 characters");
    this.logger = (options.logger ?? createLogger({ name: "dmcp-agent" })).child({ agent: this.name, instance: this.instance });
    this.tools = new ToolSet(this.logger);
    const bus = options.security ? options.bus.withCodec(options.security) : options.bus;
    this.endpoint = new ServiceEndpoint({
      bus,
      service: this.name,
      instance: this.instance,
      logger: this.logger,
      handler: agentRequestHandler(this.tools),
    });
    this.natsServices = new NatsServicesEndpoint(bus, {
      name: this.name,
      id: this.instance,
      version: this.version,
      description: options.description ?? `dMCP agent ${this.name}`,
      metadata: { kind: "agent", agent_id: this.id },
      endpoint: this.endpoint,
    });
    this.presence = new InstancePresence(bus, {
      service: this.name,
      instance: this.instance,
      ...(options.heartbeatMs ? { intervalMs: options.heartbeatMs } : {}),
      load: () => ({ status: this.status, inflight: this.endpoint.inflightCount, handled: this.endpoint.handled }),
    });
    this.streams = new ContextStreams(bus, this.instance, options.metrics);
    this.requester = new Requester(bus, this.instance);
    this.reportBad = badUpdateReporter(bus, this.instance, this.logger);
  }

  /** Declares a tool. Its arguments are validated against `input` before the handler runs. */
  tool<S extends z.ZodType = z.ZodObject<Record<string, never>>>(name: string, definition: ToolDefinition<S>, handler: ToolHandler<S>): this {
    this.assertNotStopped("declare a tool");
    this.tools.declare(name, definition, handler);
    this.reannounce();
    return this;
  }

  /** Declares topics this agent publishes (shown in its profile). */
  publishes(...topics: string[]): this {
    return this.declareTopics(this.published, topics);
  }

  /** Declares topics this agent consumes (shown in its profile). */
  consumes(...topics: string[]): this {
    return this.declareTopics(this.consumed, topics);
  }

  get profile(): AgentProfile {
    return {
      id: this.id,
      name: this.name,
      version: this.version,
      ...(this.options.description !== undefined ? { description: this.options.description } : {}),
      publishes: [...this.published],
      consumes: [...this.consumed],
    };
  }

  get running(): boolean {
    return this.state === "running";
  }

  /**
   * Waits for a gateway to have created the registry bucket and the context stream (agents do not
   * create them) and checks them, takes requests, opens the subscriptions made so far, then announces
   * itself: a caller that sees the announcement can call at once.
   */
  start(): Promise<void> {
    if (this.state !== "idle") return Promise.reject(new AgentStateError(`agent ${this.name} cannot start: it is ${this.state}`));
    this.state = "starting";
    this.starting = this.open().catch(async (err: unknown) => {
      // A half-started agent must not stay on the bus.
      await this.close();
      throw err;
    });
    return this.starting;
  }

  private async open(): Promise<void> {
    await awaitStreams(this.options.bus, [REGISTRY_STREAM, CONTEXT_STREAM_SPEC], {
      logger: this.logger,
      signal: this.startAbort.signal,
      who: `agent ${this.name}`,
    });
    await this.endpoint.start();
    this.natsServices.start();
    this.streamReady = true;
    await Promise.all([...this.subscriptions].map((sub) => sub.start()));
    // stop() during start: leave without ever announcing.
    if (this.state !== "starting") return;
    this.status = "ready";
    await this.presence.start(this.announcement());
    this.state = "running";
    this.logger.info({ tools: this.tools.list().map((t) => t.name) }, "agent serving");
  }

  /** Stops taking requests, leaves the registry at once, stops subscriptions, finishes calls in flight. */
  async stop(): Promise<void> {
    if (this.state === "idle") {
      this.state = "stopped";
      // Subscriptions made before a start() that never came: settle their `ready`.
      await Promise.allSettled([...this.subscriptions].map((sub) => sub.stop()));
      return;
    }
    if (this.state === "stopping" || this.state === "stopped") return;
    this.state = "stopping";
    this.startAbort.abort(new AgentStateError(`agent ${this.name} was stopped while it started`));
    await this.starting?.catch(() => undefined);
    // A start() that failed has closed everything already.
    if ((this.state as State) === "stopped") return;
    await this.close();
  }

  private async close(): Promise<void> {
    this.state = "stopping";
    this.status = "stopping";
    const draining = this.endpoint.stop(this.options.stopGraceMs ?? DEFAULT_STOP_GRACE_MS);
    this.natsServices.stop();
    await this.presence.stop();
    await Promise.allSettled([...this.subscriptions].map((sub) => sub.stop()));
    this.subscriptions.clear();
    await draining;
    this.requester.close();
    this.state = "stopped";
    this.logger.info("agent stopped");
  }

  /** Publishes one update on a topic; resolves once the context stream stored it. */
  async publish(topic: string, data: unknown, options: { sessionId?: string; correlationId?: string } = {}): Promise<{ seq: number; envelope: ContextUpdate }> {
    this.assertTopic(topic);
    this.assertStream("publish");
    return this.streams.publish(topic, data, options);
  }

  /**
   * Subscribes to a topic, or a pattern with `*` and `>` wildcards. Made before start(), it opens when
   * the agent starts; `ready` tells when updates flow.
   */
  subscribe(pattern: string, handler: ContextHandler, options: SubscribeOptions = {}): AgentSubscription {
    this.assertNotStopped("subscribe");
    try {
      subjects.contextPattern(pattern);
    } catch (cause) {
      throw new AgentDeclarationError(`invalid topic pattern ${JSON.stringify(pattern)}: use dot-separated tokens of A-Z a-z 0-9 _ -, or * and >`, { cause });
    }
    if (typeof handler !== "function") throw new AgentDeclarationError("subscribe needs a handler function");
    const durableName = options.durableName ?? this.name;
    if (!isValidToken(durableName)) throw new AgentDeclarationError(`invalid durable name ${JSON.stringify(durableName)}: use 1-128 characters from A-Z a-z 0-9 _ -`);
    const subscription = new TopicSubscription({
      streams: this.streams,
      pattern,
      handler,
      durable: options.durable === true,
      durableName,
      from: options.from,
      logger: this.logger,
      onBad: this.reportBad,
      flush: () => this.options.bus.flush(),
      graceMs: this.options.stopGraceMs ?? DEFAULT_STOP_GRACE_MS,
    });
    this.subscriptions.add(subscription);
    // Whoever ignores `ready` still hears of a failure, in the log, without an unhandled rejection.
    subscription.ready.catch((err: unknown) => this.logger.error({ err, pattern }, "subscription failed"));
    // Before the stream exists, start() opens it with the others.
    if (this.streamReady) subscription.start().catch(() => undefined);
    return {
      ready: subscription.ready,
      stop: async () => {
        this.subscriptions.delete(subscription);
        await subscription.stop();
      },
    };
  }

  /** Stored updates of a topic, oldest first (from the start, a sequence or a time; at most `limit`). */
  async history(topic: string, options: { from?: ReplayFrom; limit?: number } = {}): Promise<(ContextEvent & { seq: number })[]> {
    this.assertTopic(topic);
    this.assertStream("read history");
    const entries = await this.streams.history(topic, {
      ...options,
      // A replay is read again and again: a bad entry is logged, not reported on the bus each time.
      onBad: (bad) => this.logger.warn({ err: bad.error, subject: bad.subject, seq: bad.seq }, "skipping a malformed context update"),
    });
    return entries.map((entry) => ({ ...toEvent(entry), seq: entry.seq }));
  }

  /** Calls a tool of another service on the bus; returns its CallToolResult, or throws a DmcpError. */
  async call(service: string, tool: string, args: Record<string, unknown> = {}, options: AgentCallOptions = {}): Promise<CallToolResult> {
    if (this.state === "stopped") throw new AgentStateError(`agent ${this.name} is stopped`);
    if (!isValidToken(service)) throw new RequestError(ErrorCode.UnknownTarget, `invalid service name ${JSON.stringify(service)}`, { data: { service } });
    const result = await this.requester.call(
      service,
      "tools/call",
      { name: tool, arguments: args },
      {
        timeoutMs: options.timeoutMs ?? this.options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS,
        sessionId: options.sessionId,
        signal: options.signal,
      },
    );
    return result as CallToolResult;
  }

  private declareTopics(into: Set<string>, topics: string[]): this {
    this.assertNotStopped("declare topics");
    for (const topic of topics) this.assertTopic(topic);
    for (const topic of topics) into.add(topic);
    this.reannounce();
    return this;
  }

  /** The profile and catalog changed after the first announcement: tell the registry. */
  private reannounce(): void {
    if (this.state !== "running") return;
    void this.presence.announce(this.announcement()).catch((err: unknown) => this.logger.warn({ err }, "announcement failed"));
  }

  private announcement(): AnnouncementInput & { profile: AgentProfile } {
    return {
      catalog: { tools: this.tools.list(), resources: [], resource_templates: [], prompts: [] },
      capabilities: { tools: {} },
      server_info: { name: this.name, version: this.version },
      ...(this.options.instructions !== undefined ? { instructions: this.options.instructions } : {}),
      profile: this.profile,
    };
  }

  private assertTopic(topic: string): void {
    if (typeof topic !== "string" || !isValidTopic(topic)) {
      throw new AgentDeclarationError(`invalid topic ${JSON.stringify(topic)}: use 1-16 dot-separated tokens of A-Z a-z 0-9 _ -`);
    }
  }

  private assertStream(what: string): void {
    if (this.state === "stopped") throw new AgentStateError(`agent ${this.name} cannot ${what}: it is stopped`);
    if (!this.streamReady) throw new AgentStateError(`agent ${this.name} cannot ${what} before start()`);
  }

  private assertNotStopped(what: string): void {
    if (this.state === "stopping" || this.state === "stopped") throw new AgentStateError(`agent ${this.name} cannot ${what}: it is ${this.state}`);
  }
}

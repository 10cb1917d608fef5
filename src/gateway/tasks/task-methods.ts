/**
 * The tasks methods of one client session, on both wires (PROTOCOL.md §17):
 * - 2025-11-25: a `tools/call` with a `task` param is answered with a CreateTaskResult at once;
 *   `tasks/get`, `tasks/result` (waits for the outcome), `tasks/list`, `tasks/cancel`, and
 *   `notifications/tasks/status` for the tasks this session created.
 * - 2026-07-28, the `io.modelcontextprotocol/tasks` extension (SEP-2663): a `tools/call` of a request
 *   declaring the extension goes up as it is when the tool's upstream keeps tasks of its own; a task
 *   it creates is recorded under an id of the gateway's, and `tasks/get`, `tasks/update` and
 *   `tasks/cancel` of that id go to the instance that created it. For other upstreams the gateway
 *   runs the task: the call becomes a task when it has not answered within a short grace period;
 *   `tasks/get` inlines the outcome, `tasks/cancel` acknowledges, `tasks/update` has nothing to
 *   update (gateway tasks never ask for input). `tasks/result` and `tasks/list` are gone.
 */
import {
  DmcpError,
  ErrorCode,
  errorForCode,
  fromJsonRpcError,
  JsonRpcErrorCode,
  META,
  metaOf,
  RequestError,
  StatelessErrorCode,
  TASKS_EXTENSION,
  UpstreamError,
} from "../../protocol/index.js";
import { isJsonObject } from "../../util/index.js";
import type { Call } from "../calls/call.js";
import { unknownTask, type GatewayTasks } from "./tasks.js";
import type { TaskRecord } from "./task-store.js";

/** The server capability of 2025-11-25: tasks for tools/call, listable and cancellable. */
export const TASKS_CAPABILITY = { list: {}, cancel: {}, requests: { tools: { call: {} } } };
/** A 2026 call answering within this time is answered directly rather than as a task. */
export const TASK_GRACE_MS = 150;
const RELATED_TASK = "io.modelcontextprotocol/related-task";
const STATELESS_METHODS = new Set(["tasks/get", "tasks/update", "tasks/cancel"]);
const REMOVED_IN_2026 = new Set(["tasks/result", "tasks/list"]);

/** What the tasks methods need of their client session and the gateway. */
export interface TaskSessionPeer {
  /** Throws FORBIDDEN when the call's caller may not make it. */
  authorize(call: Call): void;
  /** Sends a notification to the client (status changes of its tasks). */
  notify(method: string, params: Record<string, unknown>): void;
  /** Sends the call on its route (`call.instance` then names the executor instance that took it). */
  dispatch(call: Call): Promise<Record<string, unknown>>;
  /** Sends a task method (the call, with `params`) to the executor instance holding an upstream's task. */
  toTaskHolder(call: Call, holder: { service: string; instance: string }, params: Record<string, unknown>): Promise<Record<string, unknown>>;
}

export class SessionTasks {
  /** Tasks this session created, for their status notifications. */
  private readonly created = new Set<string>();
  private readonly stopListening: () => void;

  constructor(
    private readonly tasks: GatewayTasks,
    private readonly peer: TaskSessionPeer,
  ) {
    this.stopListening = tasks.onStatus((record) => {
      if (this.created.has(record.taskId)) this.peer.notify("notifications/tasks/status", legacyTask(record));
    });
  }

  close(): void {
    this.stopListening();
  }

  /** A 2025-11-25 tools/call asking for a task (a 2026 request's `task` param is a legacy hint and ignored). */
  static isLegacyTaskCall(call: Call): boolean {
    return call.method === "tools/call" && typeof call.params.task === "object" && call.params.task !== null && !call.stateless;
  }

  /** A 2025-11-25 task-augmented tools/call: the task is created and runs on. */
  async createLegacy(call: Call): Promise<Record<string, unknown>> {
    const hint = (call.params.task ?? {}) as { ttl?: unknown };
    const ttl = typeof hint.ttl === "number" && hint.ttl > 0 ? hint.ttl : undefined;
    const record = await this.tasks.create(call.identity, call.caller, call.params, ttl);
    this.created.add(record.taskId);
    return { task: legacyTask(record) };
  }

  /** tasks/get, tasks/result, tasks/list and tasks/cancel of 2025-11-25. */
  async legacy(call: Call): Promise<Record<string, unknown>> {
    const { method, params, identity } = call;
    // A task an upstream keeps speaks the extension's wire only.
    if (method !== "tasks/list" && (await this.tasks.get(identity, params.taskId)).upstream) throw unknownTask(params.taskId);
    switch (method) {
      case "tasks/get":
        return legacyTask(await this.tasks.get(identity, params.taskId));
      case "tasks/result":
        return legacyOutcome(await this.tasks.waitTerminal(identity, params.taskId, call.signal));
      case "tasks/list":
        return { tasks: (await this.tasks.list(identity)).filter((record) => !record.upstream).map(legacyTask) };
      default: {
        const { record, wasTerminal } = await this.tasks.cancel(identity, params.taskId);
        if (wasTerminal) throw invalidParams(`Cannot cancel task ${record.taskId}: it is already ${record.status}`, { taskId: record.taskId });
        return legacyTask(record);
      }
    }
  }

  /**
   * The 2026-07-28 tasks surface, or undefined when the request is none of its business (a tools/call
   * of a request that did not declare the extension runs synchronously).
   */
  stateless(call: Call): Promise<Record<string, unknown>> | undefined {
    const { method, params } = call;
    if (REMOVED_IN_2026.has(method)) {
      throw new RequestError(ErrorCode.UnknownTarget, `Method not found: ${method} (removed by the tasks extension)`, { jsonrpcCode: JsonRpcErrorCode.MethodNotFound });
    }
    const declared = declaresExtension(params);
    if (method === "tools/call") {
      if (!declared) return undefined;
      this.peer.authorize(call);
      return keepsOwnTasks(call) ? this.passThrough(call) : this.callAsTask(call);
    }
    if (!STATELESS_METHODS.has(method)) return undefined;
    if (!declared) throw extensionRequired(method);
    return this.statelessMethod(call);
  }

  /**
   * The upstream keeps its own tasks: the call goes up as it is (the client's capabilities with it);
   * input_required rounds and direct results come back as they are, a task is recorded for later methods.
   */
  private async passThrough(call: Call): Promise<Record<string, unknown>> {
    const result = await this.peer.dispatch(call);
    if (result.resultType !== "task") return result;
    const { instance } = call;
    if (typeof result.taskId !== "string" || instance === undefined) {
      const missing = typeof result.taskId !== "string" ? "no task id" : "no executor instance to reach it through";
      throw new UpstreamError(ErrorCode.UpstreamError, `the upstream answered with a task but ${missing}`, { jsonrpcCode: JsonRpcErrorCode.InternalError });
    }
    const record = await this.tasks.recordUpstream(call, { service: call.route.service, instance }, result);
    return { ...result, taskId: record.taskId };
  }

  /** tasks/get, tasks/update or tasks/cancel of a task an upstream keeps, re-authorized, under the upstream's id. */
  private async upstreamMethod(record: TaskRecord, call: Call): Promise<Record<string, unknown>> {
    const upstream = record.upstream!;
    // The policy may have changed since the task was created.
    this.peer.authorize(call.derive("tools/call", record.request.params));
    try {
      const result = await this.peer.toTaskHolder(call, upstream, { ...call.params, taskId: upstream.taskId });
      return result.taskId === upstream.taskId ? { ...result, taskId: record.taskId } : result;
    } catch (err) {
      throw inGatewayTerms(err, upstream.taskId, record.taskId);
    }
  }

  private async callAsTask(call: Call): Promise<Record<string, unknown>> {
    // The gateway runs the task: the upstream gets a plain synchronous call.
    const outcome = await this.tasks.callOrCreate(call.identity, call.caller, withoutExtension(call.params), TASK_GRACE_MS);
    if ("result" in outcome) return outcome.result;
    return { resultType: "task", ...statelessTask(outcome.task) };
  }

  private async statelessMethod(call: Call): Promise<Record<string, unknown>> {
    const { method, params, identity } = call;
    const owned = await this.tasks.get(identity, params.taskId);
    if (owned.upstream) return this.upstreamMethod(owned, call);
    if (method === "tasks/get") return detailedTask(owned);
    if (method === "tasks/cancel") {
      await this.tasks.cancel(identity, params.taskId);
      return {};
    }
    throw invalidParams(`Task ${owned.taskId} is not waiting for input (gateway tasks never ask for any)`, { taskId: owned.taskId });
  }
}

/** A Task on the wire: the revisions differ only in the names of the two durations. */
function wireTask(record: TaskRecord, names: { ttl: string; pollInterval: string }): Record<string, unknown> {
  return {
    taskId: record.taskId,
    status: record.status,
    ...(record.statusMessage ? { statusMessage: record.statusMessage } : {}),
    createdAt: record.createdAt,
    lastUpdatedAt: record.lastUpdatedAt,
    [names.ttl]: record.ttlMs,
    [names.pollInterval]: record.pollIntervalMs,
  };
}

/** The Task of 2025-11-25. */
export function legacyTask(record: TaskRecord): Record<string, unknown> {
  return wireTask(record, { ttl: "ttl", pollInterval: "pollInterval" });
}

/** tasks/result of 2025-11-25: the call's result, or its error as the JSON-RPC error. */
function legacyOutcome(record: TaskRecord): Record<string, unknown> {
  const related = { [RELATED_TASK]: { taskId: record.taskId } };
  if (record.status === "completed" && record.result) {
    const meta = (record.result._meta ?? {}) as Record<string, unknown>;
    return { ...record.result, _meta: { ...meta, ...related } };
  }
  const error = record.error ?? { code: JsonRpcErrorCode.Cancelled, message: record.statusMessage ?? `the task was ${record.status}` };
  throw fromJsonRpcError({ ...error, data: { ...(isJsonObject(error.data) ? error.data : {}), taskId: record.taskId } });
}

/** The Task of the 2026-07-28 extension. */
function statelessTask(record: TaskRecord): Record<string, unknown> {
  return wireTask(record, { ttl: "ttlMs", pollInterval: "pollIntervalMs" });
}

/** tasks/get of the extension: the task with its outcome inlined. */
function detailedTask(record: TaskRecord): Record<string, unknown> {
  return {
    ...statelessTask(record),
    ...(record.status === "completed" && record.result ? { result: record.result } : {}),
    ...(record.status === "failed" && record.error ? { error: record.error } : {}),
  };
}

/** A tools/call whose upstream keeps tasks of its own (an unknown tool does not: sending it names the problem). */
function keepsOwnTasks(call: Call): boolean {
  try {
    return call.route.keepsTasks;
  } catch {
    return false;
  }
}

function declaresExtension(params: Record<string, unknown>): boolean {
  const capabilities = metaOf(params)?.[META.clientCapabilities] as { extensions?: Record<string, unknown> } | undefined;
  return capabilities?.extensions?.[TASKS_EXTENSION] !== undefined;
}

/** The params without the tasks extension in their client capabilities, so an upstream never makes a task of its own. */
function withoutExtension(params: Record<string, unknown>): Record<string, unknown> {
  const meta = metaOf(params) ?? {};
  const capabilities = meta[META.clientCapabilities] as { extensions?: Record<string, unknown> };
  const { [TASKS_EXTENSION]: _dropped, ...extensions } = capabilities.extensions ?? {};
  return { ...params, _meta: { ...meta, [META.clientCapabilities]: { ...capabilities, extensions } } };
}

function extensionRequired(method: string): DmcpError {
  return new RequestError(ErrorCode.InvalidParams, `${method} needs the ${TASKS_EXTENSION} extension in the request's client capabilities`, {
    jsonrpcCode: StatelessErrorCode.MissingRequiredClientCapability,
    data: { requiredCapabilities: { extensions: { [TASKS_EXTENSION]: {} } } },
  });
}

/** An upstream's error about its task, naming the task by the gateway's id (the client never sees the upstream's). */
function inGatewayTerms(err: unknown, upstreamId: string, gatewayId: string): unknown {
  if (!(err instanceof DmcpError)) return err;
  const rename = (text: string) => text.split(upstreamId).join(gatewayId);
  const data = isJsonObject(err.data) ? (JSON.parse(rename(JSON.stringify(err.data))) as unknown) : err.data;
  return errorForCode(err.code, rename(err.message), { jsonrpcCode: err.jsonrpcCode, data, cause: err });
}

function invalidParams(message: string, data: Record<string, unknown>): DmcpError {
  return new RequestError(ErrorCode.InvalidParams, message, { jsonrpcCode: JsonRpcErrorCode.InvalidParams, data });
}

/** tools/list with every tool offered as a task (`execution.taskSupport`), unless its server says otherwise. */
export function withTaskSupport(tools: Record<string, unknown>[]): Record<string, unknown>[] {
  return tools.map((tool) => {
    const execution = (tool.execution ?? {}) as Record<string, unknown>;
    return execution.taskSupport ? tool : { ...tool, execution: { ...execution, taskSupport: "optional" } };
  });
}

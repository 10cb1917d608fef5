/**
 * MCP Tasks run by the gateway (PROTOCOL.md §17): the gateway makes a task of any tools/call, runs the
 * call itself over the bus and keeps the task's status and outcome in the `dmcp_tasks` KV bucket. The
 * runner renews a lease on the record while the call runs; a replica that finds a working task whose
 * lease lapsed (its gateway died) adopts it: a durable call is sent again under the same correlation
 * id (the work queue and the result store make that one execution), a direct call is marked failed.
 */
import { randomUUID } from "node:crypto";
import { MAX_TASK_TTL_MS, type Bus } from "../../bus/index.js";
import { BusError, CallError, type DmcpError, ErrorCode, isDmcpError, JsonRpcErrorCode, RequestError, toJsonRpcError, type Caller } from "../../protocol/index.js";
import type { Logger } from "../../util/index.js";
import type { Identity } from "../access/policy.js";
import type { Call, CallRequest } from "../calls/call.js";
import { TaskStore, TERMINAL, type TaskRecord, type TaskStatus } from "./task-store.js";

/** What the task runner needs of the gateway core: a task's call is a Call of its own, sent like any other. */
export interface TaskHost {
  call(request: CallRequest): Call;
  dispatch(call: Call): Promise<Record<string, unknown>>;
}

export const DEFAULT_TASK_TTL_MS = 60 * 60_000;
export const TASK_POLL_INTERVAL_MS = 500;
/** A runner renews its lease this often; a lease lapses after LEASE_MS without renewal. */
const LEASE_RENEW_MS = 2_000;
const LEASE_MS = 10_000;

export class GatewayTasks {
  private store: Promise<TaskStore> | undefined;
  /** Calls this gateway runs, by task id. */
  private readonly running = new Map<string, AbortController>();
  private readonly listeners = new Set<(record: TaskRecord) => void>();
  private stopping = false;

  constructor(private readonly options: { bus: Bus; id: string; logger: Logger; host: TaskHost }) {}

  /** Stops renewing leases; calls still running are left for another replica (or this one, restarted) to adopt. */
  stop(): void {
    this.stopping = true;
  }

  /** Told of each status change of the tasks this gateway runs or cancels. */
  onStatus(listener: (record: TaskRecord) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Starts `params` (a tools/call) as a task of `identity` and returns its record (status `working`). */
  async create(identity: Identity, caller: Caller | undefined, params: Record<string, unknown>, ttlMs?: number): Promise<TaskRecord> {
    const controller = new AbortController();
    const { record, call } = this.newTask(identity, caller, params, controller.signal, ttlMs);
    await (await this.tasks()).create(record);
    this.follow(record, this.options.host.dispatch(call), controller);
    return record;
  }

  /**
   * Runs the call; when it has not answered within `graceMs`, makes it a task and resolves the task's
   * record instead of the result (the 2026-07-28 extension lets a server answer fast calls directly).
   */
  async callOrCreate(
    identity: Identity,
    caller: Caller | undefined,
    params: Record<string, unknown>,
    graceMs: number,
  ): Promise<{ result: Record<string, unknown> } | { task: TaskRecord }> {
    const controller = new AbortController();
    const task = this.newTask(identity, caller, params, controller.signal);
    const { record } = task;
    const call = this.options.host.dispatch(task.call);
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<"grace">((resolve) => (timer = setTimeout(() => resolve("grace"), graceMs)));
    const first = await Promise.race([
      call.then(
        (result) => ({ result }),
        () => "failed" as const,
      ),
      grace,
    ]).finally(() => clearTimeout(timer));
    if (first === "failed") await call; // throws the call's error, as a synchronous call would
    if (typeof first === "object") return first;
    try {
      await (await this.tasks()).create(record);
    } catch (err) {
      controller.abort(new CallError(ErrorCode.Cancelled, "the task could not be stored", { cause: err }));
      throw err;
    }
    this.follow(record, call, controller);
    return { task: record };
  }

  /**
   * Records a task an upstream created (its CreateTaskResult `created`) for `call` under a new id of
   * the gateway's, so that later task methods of its identity reach `holder` and nobody reaches it by
   * the upstream's id.
   */
  async recordUpstream(call: Call, holder: { service: string; instance: string }, created: Record<string, unknown>): Promise<TaskRecord> {
    const ttlMs = typeof created.ttlMs === "number" ? created.ttlMs : undefined;
    const { task: _task, ...callParams } = call.params;
    const base = this.newRecord(randomUUID(), call.identity, call.caller, callParams, call.delivery, ttlMs);
    const record: TaskRecord = {
      ...base,
      upstream: { ...holder, taskId: String(created.taskId) },
      // Nothing for another gateway to adopt: the upstream runs the task.
      runner: { gateway: this.options.id, leaseUntil: new Date(Date.parse(base.createdAt) + base.ttlMs).toISOString() },
    };
    await (await this.tasks()).create(record);
    return record;
  }

  /** The task, if `identity` owns it; a working task whose runner died is adopted first. */
  async get(identity: Identity, taskId: unknown): Promise<TaskRecord> {
    const record = typeof taskId === "string" ? await (await this.tasks()).get(taskId) : undefined;
    if (!record || !owns(identity, record)) throw unknownTask(taskId);
    return this.adoptIfOrphaned(record);
  }

  /** Waits until the task is terminal (tasks/result of 2025-11-25). */
  async waitTerminal(identity: Identity, taskId: unknown, signal: AbortSignal): Promise<TaskRecord> {
    for (;;) {
      const record = await this.get(identity, taskId);
      if (TERMINAL.has(record.status)) return record;
      await this.nextChange(record, signal);
    }
  }

  async list(identity: Identity): Promise<TaskRecord[]> {
    const records = (await (await this.tasks()).all()).filter((record) => owns(identity, record));
    return records.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** Cancels the task unless it is terminal already; resolves the record as it is afterwards. */
  async cancel(identity: Identity, taskId: unknown): Promise<{ record: TaskRecord; wasTerminal: boolean }> {
    const record = await this.get(identity, taskId);
    if (TERMINAL.has(record.status)) return { record, wasTerminal: true };
    const after = await this.settle(record.taskId, "cancelled", { statusMessage: "cancelled by the client" });
    // A call run by another replica stops at that replica's next lease renewal.
    this.running.get(record.taskId)?.abort(new CallError(ErrorCode.Cancelled, "the task was cancelled"));
    return { record: after ?? record, wasTerminal: !after };
  }

  /** A task of `params` (a tools/call; its `task` hint dropped) and the Call that runs it, under the task's correlation id. */
  private newTask(identity: Identity, caller: Caller | undefined, params: Record<string, unknown>, signal: AbortSignal, ttlMs?: number): { record: TaskRecord; call: Call } {
    const taskId = randomUUID();
    const { task: _task, ...callParams } = params;
    const call = this.callOf({ method: "tools/call", params: callParams, correlationId: correlationIdOf(taskId), caller }, signal);
    return { record: this.newRecord(taskId, identity, caller, callParams, call.delivery, ttlMs), call };
  }

  private newRecord(
    taskId: string,
    identity: Identity,
    caller: Caller | undefined,
    callParams: Record<string, unknown>,
    delivery: "durable" | "direct",
    ttlMs: number | undefined,
  ): TaskRecord {
    const now = new Date().toISOString();
    const { token: _token, ...storedCaller } = caller ?? ({} as Caller);
    return {
      v: 1,
      taskId,
      owner: { kind: identity.kind, subject: identity.subject },
      status: "working",
      createdAt: now,
      lastUpdatedAt: now,
      ttlMs: Math.min(Math.max(Math.trunc(ttlMs ?? DEFAULT_TASK_TTL_MS), 1_000), MAX_TASK_TTL_MS),
      pollIntervalMs: TASK_POLL_INTERVAL_MS,
      request: {
        method: "tools/call",
        params: callParams,
        delivery,
        correlationId: correlationIdOf(taskId),
        ...(caller ? { caller: storedCaller as Caller } : {}),
      },
      runner: { gateway: this.options.id, leaseUntil: leaseFromNow() },
    };
  }

  /** Runs the call of an adopted task again, under its correlation id. */
  private rerun(record: TaskRecord): void {
    const controller = new AbortController();
    const call = this.callOf(record.request, controller.signal);
    this.follow(record, this.options.host.dispatch(call), controller);
  }

  private callOf(request: { method: string; params: Record<string, unknown>; correlationId: string; caller?: Caller | undefined }, signal: AbortSignal): Call {
    const { method, params, correlationId, caller } = request;
    return this.options.host.call({ method, params, correlationId, caller, signal, transport: "task" });
  }

  /** Keeps the lease while `call` runs and records its outcome. */
  private follow(record: TaskRecord, call: Promise<Record<string, unknown>>, controller: AbortController): void {
    const { taskId } = record;
    this.running.set(taskId, controller);
    const lease = setInterval(() => void this.renew(taskId, controller), LEASE_RENEW_MS);
    call
      .then(
        (result) => this.settle(taskId, "completed", { result }),
        (err: unknown) => {
          // Shutting down: the call is left to whoever adopts the task. Cancelled: the status says so already.
          if (this.stopping || isDmcpError(err, ErrorCode.Cancelled)) return undefined;
          return this.settle(taskId, "failed", { error: toJsonRpcError(err), statusMessage: err instanceof Error ? err.message : String(err) });
        },
      )
      .catch((err: unknown) => this.options.logger.warn({ err, taskId }, "could not record the outcome of a task"))
      .finally(() => {
        clearInterval(lease);
        this.running.delete(taskId);
      });
  }

  private async renew(taskId: string, controller: AbortController): Promise<void> {
    if (this.stopping) return;
    try {
      const record = await (await this.tasks()).update(taskId, (current) =>
        TERMINAL.has(current.status) ? undefined : { ...current, runner: { gateway: this.options.id, leaseUntil: leaseFromNow() } },
      );
      if (!record || record.status === "cancelled") controller.abort(new CallError(ErrorCode.Cancelled, "the task was cancelled"));
    } catch (err) {
      this.options.logger.debug({ err, taskId }, "could not renew a task's lease");
    }
  }

  /** Sets a terminal status unless the task has one already; resolves the new record, or undefined when it had. */
  private async settle(taskId: string, status: TaskStatus, fields: Partial<TaskRecord>): Promise<TaskRecord | undefined> {
    let changed = false;
    const record = await (await this.tasks()).update(taskId, (current) => {
      if (TERMINAL.has(current.status)) return undefined;
      changed = true;
      return { ...current, ...fields, status, lastUpdatedAt: new Date().toISOString() };
    });
    if (!changed || !record) return undefined;
    for (const listener of this.listeners) listener(record);
    return record;
  }

  private async adoptIfOrphaned(record: TaskRecord): Promise<TaskRecord> {
    if (!orphaned(record) || this.running.has(record.taskId) || this.stopping) return record;
    let claimed = false;
    const adopted = await (await this.tasks()).update(record.taskId, (current) => {
      if (!orphaned(current)) return undefined;
      claimed = true;
      return { ...current, runner: { gateway: this.options.id, leaseUntil: leaseFromNow() } };
    });
    if (!claimed || !adopted) return adopted ?? record;
    if (adopted.request.delivery === "durable") {
      this.options.logger.info({ taskId: adopted.taskId, from: record.runner.gateway }, "adopting a task whose gateway stopped");
      this.rerun(adopted);
      return adopted;
    }
    const lost = new CallError(ErrorCode.ExecutorLost, "the gateway running this task stopped before the call answered; calls of direct-delivery services are not resumed");
    return (await this.settle(adopted.taskId, "failed", { error: toJsonRpcError(lost), statusMessage: lost.message })) ?? adopted;
  }

  /** Resolves when a local status change may have happened, or after the task's poll interval. */
  private nextChange(record: TaskRecord, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        stopListening();
        signal.removeEventListener("abort", aborted);
      };
      const timer = setTimeout(() => {
        done();
        resolve();
      }, record.pollIntervalMs);
      const stopListening = this.onStatus((changed) => {
        if (changed.taskId !== record.taskId) return;
        done();
        resolve();
      });
      const aborted = () => {
        done();
        reject(new CallError(ErrorCode.Cancelled, "tasks/result was cancelled"));
      };
      if (signal.aborted) aborted();
      else signal.addEventListener("abort", aborted, { once: true });
    });
  }

  /** Opens the task store (creating and checking its bucket): the gateway does at start. */
  async prepare(): Promise<void> {
    await this.tasks();
  }

  private tasks(): Promise<TaskStore> {
    this.store ??= TaskStore.open(this.options.bus).catch((err: unknown) => {
      this.store = undefined;
      throw new BusError(ErrorCode.BusUnavailable, `the task store (JetStream KV) is unavailable: ${err instanceof Error ? err.message : String(err)}`, {
        cause: err,
      });
    });
    return this.store;
  }
}

function owns(identity: Identity, record: TaskRecord): boolean {
  return record.owner.kind === identity.kind && record.owner.subject === identity.subject;
}

function orphaned(record: TaskRecord): boolean {
  return record.upstream === undefined && !TERMINAL.has(record.status) && Date.parse(record.runner.leaseUntil) < Date.now();
}

function correlationIdOf(taskId: string): string {
  return `task-${taskId}`;
}

function leaseFromNow(): string {
  return new Date(Date.now() + LEASE_MS).toISOString();
}

/** Another identity's task is reported exactly like a task that does not exist. */
export function unknownTask(taskId: unknown): DmcpError {
  return new RequestError(ErrorCode.InvalidParams, `Unknown task: ${String(taskId)}`, { jsonrpcCode: JsonRpcErrorCode.InvalidParams, data: { taskId } });
}

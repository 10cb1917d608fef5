/**
 * Task records in a JetStream KV bucket (PROTOCOL.md §17): one JSON record per task, keyed by task id,
 * written with compare-and-set so that a terminal status is never overwritten. Any gateway replica
 * (or the same gateway after a restart) reads the same records.
 */
import { ensureTasksBucket, readBusJson, type Bus, type KvBucket } from "../../bus/index.js";
import type { Caller } from "../../protocol/index.js";
import { isJsonObject } from "../../util/index.js";

export const TASK_STATUSES = ["working", "input_required", "completed", "failed", "cancelled"] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];
export const TERMINAL: ReadonlySet<TaskStatus> = new Set(["completed", "failed", "cancelled"]);

/** A task as stored (version 1 of the record). */
export interface TaskRecord {
  v: 1;
  taskId: string;
  /** The identity that created the task: only it may read, list or cancel the task. */
  owner: { kind: string; subject: string };
  status: TaskStatus;
  statusMessage?: string;
  createdAt: string;
  lastUpdatedAt: string;
  /** How long after `createdAt` the task is kept. */
  ttlMs: number;
  pollIntervalMs: number;
  /** The call the task runs, enough for another gateway to resume it. */
  request: {
    method: "tools/call";
    params: Record<string, unknown>;
    /** `durable`: resumable by re-sending the request with the same correlation id. */
    delivery: "durable" | "direct";
    correlationId: string;
    caller?: Caller | undefined;
  };
  /**
   * Set when the upstream keeps the task itself (pass-through): the executor instance that created it
   * and the upstream's own task id. The record is then only a pointer: status and outcome live upstream.
   */
  upstream?: { service: string; instance: string; taskId: string };
  /** The gateway running the call, and until when it vouches for it (renewed while it runs). */
  runner: { gateway: string; leaseUntil: string };
  /** The tool's result (status `completed`, tool errors included: `isError`). */
  result?: Record<string, unknown>;
  /** A JSON-RPC error (status `failed`). */
  error?: { code: number; message: string; data?: unknown };
}

export class TaskStore {
  private constructor(
    private readonly kv: KvBucket,
    private readonly bus: Bus,
  ) {}

  /** Creates the bucket unless it exists, and checks it (the bus's ensureTasksBucket). */
  static async open(bus: Bus): Promise<TaskStore> {
    return new TaskStore(await ensureTasksBucket(bus), bus);
  }

  async create(record: TaskRecord): Promise<void> {
    await this.kv.create(record.taskId, encode(record));
  }

  /** The record, unless unknown or past its TTL. */
  async get(taskId: string): Promise<TaskRecord | undefined> {
    return (await this.read(taskId))?.record;
  }

  /**
   * Applies `change` to the current record (compare-and-set, retried on a concurrent write). `change`
   * returns undefined to leave the record as it is. Resolves the record as stored afterwards.
   */
  async update(taskId: string, change: (record: TaskRecord) => TaskRecord | undefined): Promise<TaskRecord | undefined> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const current = await this.read(taskId);
      if (!current) return undefined;
      const next = change(current.record);
      if (!next) return current.record;
      try {
        await this.kv.update(taskId, encode(next), current.revision);
        return next;
      } catch (err) {
        if (attempt === 9) throw err;
      }
    }
    return undefined;
  }

  /** Every live record (tasks/list filters them by owner). */
  async all(): Promise<TaskRecord[]> {
    const records: TaskRecord[] = [];
    for await (const key of await this.kv.keys()) {
      const record = await this.get(key);
      if (record) records.push(record);
    }
    return records;
  }

  private async read(taskId: string): Promise<{ record: TaskRecord; revision: number } | undefined> {
    if (!/^[A-Za-z0-9_-]{1,200}$/.test(taskId)) return undefined;
    const entry = await this.kv.get(taskId);
    if (!entry) return undefined;
    // Anyone allowed to write the bucket may write anything: a record that is not one is no task.
    const record = readBusJson(this.bus, "task-record", entry.value, taskRecordOf, "invalid_record");
    if (!record || Date.parse(record.createdAt) + record.ttlMs < Date.now()) return undefined;
    return { record, revision: entry.revision };
  }
}

function encode(record: TaskRecord): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(record));
}

/** The record `json` is, when it has every field a gateway reads of one (version 1), else undefined. */
function taskRecordOf(json: Record<string, unknown>): TaskRecord | undefined {
  const { v, taskId, owner, status, createdAt, lastUpdatedAt, ttlMs, pollIntervalMs, request, runner, upstream, result, error } = json;
  const valid =
    v === 1 &&
    typeof taskId === "string" &&
    TASK_STATUSES.includes(status as TaskStatus) &&
    isJsonObject(owner) &&
    typeof owner.kind === "string" &&
    typeof owner.subject === "string" &&
    typeof createdAt === "string" &&
    typeof lastUpdatedAt === "string" &&
    Number.isFinite(ttlMs) &&
    Number.isFinite(pollIntervalMs) &&
    isJsonObject(request) &&
    isJsonObject(request.params) &&
    typeof request.correlationId === "string" &&
    isJsonObject(runner) &&
    typeof runner.gateway === "string" &&
    typeof runner.leaseUntil === "string" &&
    (upstream === undefined || (isJsonObject(upstream) && typeof upstream.service === "string" && typeof upstream.instance === "string" && typeof upstream.taskId === "string")) &&
    (result === undefined || isJsonObject(result)) &&
    (error === undefined || (isJsonObject(error) && typeof error.code === "number" && typeof error.message === "string"));
  return valid ? (json as unknown as TaskRecord) : undefined;
}

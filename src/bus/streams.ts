/**
 * The JetStream streams (and KV buckets) of dMCP, as every process expects to find them. Gateways
 * (and `dmcp up`) create them; executors and agents never do: they wait for a gateway to have made
 * them. Whoever uses a stream first checks what it captures and keeps: a stream made by someone else
 * with other subjects could capture replies or requests meant for others (PROTOCOL.md §4).
 */
import { JetStreamApiCodes, JetStreamApiError, RetentionPolicy, type JetStreamManager, type StreamConfig, type StreamInfo } from "@nats-io/jetstream";
import { errors } from "@nats-io/transport-node";
import { abortableSleep, type Logger } from "../util/index.js";
import type { Bus } from "./connection.js";
import { jetStreamManagerOf, type StreamPlacement } from "./jetstream.js";

/** What a stream must be for dMCP to use it. */
export interface StreamSpec {
  name: string;
  subjects: string[];
  retention: RetentionPolicy;
  /** Direct get, which executors read the result store with (they may not read it by sequence). */
  allowDirect?: boolean;
}

/** The spec of a KV bucket's stream. */
export function kvStream(bucket: string, options: { allowDirect?: boolean } = {}): StreamSpec {
  return { name: `KV_${bucket}`, subjects: [`$KV.${bucket}.>`], retention: RetentionPolicy.Limits, ...options };
}

/** A stream that exists with settings dMCP does not expect: using it could expose or swallow messages. */
export class StreamConfigError extends Error {
  constructor(
    readonly stream: string,
    readonly differences: string[],
  ) {
    super(`the JetStream stream ${stream} is not what dMCP expects: ${differences.join("; ")}. ` + `Remove it (nats stream rm ${stream}) and let a gateway create it`);
    this.name = "StreamConfigError";
  }
}

/** Throws StreamConfigError when `config` differs from `spec` in what it captures, keeps or forwards. */
export function checkStream(spec: StreamSpec, config: StreamConfig): void {
  const differences: string[] = [];
  const subjects = [...(config.subjects ?? [])].sort();
  if (JSON.stringify(subjects) !== JSON.stringify([...spec.subjects].sort())) {
    differences.push(`its subjects are ${JSON.stringify(subjects)}, expected ${JSON.stringify(spec.subjects)}`);
  }
  if (config.retention !== spec.retention) differences.push(`its retention is ${config.retention}, expected ${spec.retention}`);
  if (spec.allowDirect && !config.allow_direct) differences.push("it does not allow direct get, expected allow_direct");
  // Messages from elsewhere, or copies sent elsewhere, are as bad as foreign subjects.
  for (const field of ["mirror", "sources", "republish", "subject_transform"] as const) {
    const value = config[field];
    if (value !== undefined && value !== null && !(Array.isArray(value) && value.length === 0)) differences.push(`it has ${field} ${JSON.stringify(value)}, expected none`);
  }
  if (differences.length > 0) throw new StreamConfigError(spec.name, differences);
}

/** The stream's info, or undefined when it does not exist. */
export async function streamInfo(jsm: JetStreamManager, name: string): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(name);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return undefined;
    throw err;
  }
}

/** How long a gateway whose create failed looks for the stream another process created meanwhile (20 × 250 ms). */
const CREATED_ELSEWHERE_TRIES = 20;
const CREATED_ELSEWHERE_POLL_MS = 250;

/**
 * The gateway's way: creates the stream with `create` (given the replicas it gets) unless it exists,
 * then checks it. Resolves its info. Throws StreamConfigError for a stream someone made with other
 * settings; an existing stream with fewer replicas than `placement` asks for is used as it is, with a
 * warning (changing replicas is the operator's decision).
 */
export async function ensureStream(jsm: JetStreamManager, spec: StreamSpec, create: (replicas: number) => Promise<unknown>, placement: StreamPlacement): Promise<StreamInfo> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await ensureStreamOnce(jsm, spec, create, placement);
    } catch (err) {
      // A cluster busy placing streams (several gateways starting at once on a fresh cluster, a
      // leader election) can leave a JetStream request unanswered: what is asked is safe to ask again.
      if (!isJetStreamUnreachable(err) || attempt >= BUSY_TRIES) throw err;
      placement.logger.warn({ stream: spec.name, attempt }, `JetStream did not answer in time about the stream ${spec.name}; asking again`);
      await new Promise((resolve) => setTimeout(resolve, BUSY_PAUSE_MS * attempt));
    }
  }
}

/** How often, and after how long a pause (times the attempt), ensureStream asks again when JetStream is busy. */
const BUSY_TRIES = 6;
const BUSY_PAUSE_MS = 500;

function isJetStreamBusy(err: unknown): boolean {
  if (err instanceof errors.TimeoutError) return true;
  // 10008: "JetStream system temporarily unavailable", as during a meta leader election.
  return err instanceof JetStreamApiError && err.code === 10008;
}

async function ensureStreamOnce(jsm: JetStreamManager, spec: StreamSpec, create: (replicas: number) => Promise<unknown>, placement: StreamPlacement): Promise<StreamInfo> {
  let info = await streamInfo(jsm, spec.name);
  if (info) {
    warnFewerReplicas(info, placement);
  } else {
    // Another gateway may create it at the same moment: what counts is that it exists afterwards.
    const failure = await create(placement.replicas).then(
      () => undefined,
      (err: unknown) => err,
    );
    info = await streamInfo(jsm, spec.name);
    // On a 2.9 cluster a stream just created (by this process or another) can take a moment to show:
    // two gateways started together, one of them exited saying it could not be created.
    for (let tries = 0; !info && tries < CREATED_ELSEWHERE_TRIES; tries++) {
      await new Promise((resolve) => setTimeout(resolve, CREATED_ELSEWHERE_POLL_MS));
      info = await streamInfo(jsm, spec.name);
    }
    if (!info) throw failure ?? new Error(`the JetStream stream ${spec.name} could not be created`);
  }
  checkStream(spec, info.config);
  return info;
}

function warnFewerReplicas(info: StreamInfo, placement: StreamPlacement): void {
  const replicas = info.config.num_replicas || 1;
  if (replicas >= placement.replicas) return;
  const stream = info.config.name;
  placement.logger.warn(
    { stream, replicas, wanted: placement.replicas },
    `the JetStream stream ${stream} has ${replicas} replica${replicas === 1 ? "" : "s"}, fewer than the ${placement.replicas} this process creates streams with; ` +
      `it is used as it is: raise it with \`nats stream edit ${stream} --replicas ${placement.replicas}\``,
  );
}

/** Whether every stream exists (each checked); throws StreamConfigError for one with other settings. */
export async function streamsExist(jsm: JetStreamManager, specs: StreamSpec[]): Promise<boolean> {
  let all = true;
  for (const spec of specs) {
    const info = await streamInfo(jsm, spec.name);
    if (info) checkStream(spec, info.config);
    else all = false;
  }
  return all;
}

const WAIT_POLL_MS = 1000;

export interface StreamWaitOptions {
  logger: Logger;
  /** Stops the wait (rejects with the signal's reason). */
  signal?: AbortSignal | undefined;
  /** Who waits, for the log line. */
  who: string;
}

/**
 * The executors' and agents' way: resolves once every stream exists, each checked. Logs once that it
 * waits for a gateway to create them. Rejects with StreamConfigError for a stream with other settings.
 */
export async function awaitStreams(bus: Bus, specs: StreamSpec[], options: StreamWaitOptions): Promise<void> {
  const jsm = await jetStreamManagerOf(bus);
  if (await streamsExist(jsm, specs)) return;
  logWaiting(specs, options);
  await pollStreams(jsm, specs, options);
}

/**
 * Runs `begin` now when every stream exists, else in the background once they do (again while
 * JetStream does not answer: beginOnceReachable). A stream with other settings throws at once when it
 * is there already, and goes to `onFatal` when it appears later.
 */
export async function whenStreamsExist(bus: Bus, specs: StreamSpec[], begin: () => Promise<void>, options: StreamWaitOptions & { onFatal: (err: Error) => void }): Promise<void> {
  const jsm = await jetStreamManagerOf(bus);
  if (await streamsExist(jsm, specs)) return beginOnceReachable(begin, options);
  logWaiting(specs, options);
  void pollStreams(jsm, specs, options)
    .then(() => beginOnceReachable(begin, options))
    .catch((err: unknown) => {
      if (!options.signal?.aborted) options.onFatal(err instanceof Error ? err : new Error(String(err)));
    });
}

/**
 * Runs `begin` (which must be safe to run again after it failed), again after a pause for as long as
 * it fails only because JetStream does not answer: on a fresh cluster the streams can exist before
 * every node answers JetStream requests.
 */
async function beginOnceReachable(begin: () => Promise<void>, options: StreamWaitOptions): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await begin();
    } catch (err) {
      if (!isJetStreamUnreachable(err) || options.signal?.aborted) throw err;
      options.logger.warn({ err, attempt }, `${options.who}: JetStream did not answer; trying again`);
      await abortableSleep(Math.min(WAIT_POLL_MS * attempt, MAX_BEGIN_PAUSE_MS), options.signal);
    }
  }
}

const MAX_BEGIN_PAUSE_MS = 5000;

/**
 * Whether the bus's server has JetStream for this connection's account (false when the server says it
 * is not enabled). Throws when it cannot tell (a slow server, a denial).
 */
export async function hasJetStream(bus: Bus): Promise<boolean> {
  try {
    await jetStreamManagerOf(bus);
    return true;
  } catch (err) {
    if ((err as Error).name === "JetStreamNotEnabled") return false;
    throw err;
  }
}

function logWaiting(specs: StreamSpec[], options: StreamWaitOptions): void {
  options.logger.warn(
    { streams: specs.map((spec) => spec.name) },
    `${options.who} waits for a gateway (dmcp gateway, dmcp up) to create the JetStream streams it uses; executors and agents do not create them`,
  );
}

/**
 * Asks every second until the streams exist. A question JetStream leaves unanswered (a server gone
 * for a moment, a fresh cluster still electing its leader: timeouts, "temporarily unavailable", no
 * responders, which nats.js reports as "jetstream is not enabled") is asked again: an executor
 * waiting for a gateway is not stopped by what a gateway also waits out. Its first question, before
 * the wait, still fails on a server without JetStream.
 */
async function pollStreams(jsm: JetStreamManager, specs: StreamSpec[], options: StreamWaitOptions): Promise<void> {
  for (;;) {
    await abortableSleep(WAIT_POLL_MS, options.signal);
    try {
      if (await streamsExist(jsm, specs)) return;
    } catch (err) {
      if (!isJetStreamUnreachable(err)) throw err;
      options.logger.debug({ err }, "JetStream did not answer about the streams; asking again");
    }
  }
}

function isJetStreamUnreachable(err: unknown): boolean {
  if (isJetStreamBusy(err) || (err as Error).name === "ConnectionError") return true;
  // nats.js names a request no server answered "not enabled"; an account refused JetStream is another error.
  return (err as Error).name === "JetStreamNotEnabled" && ((err as Error).cause as Error | undefined)?.name === "RequestError";
}

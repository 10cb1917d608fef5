/**
 * Prometheus metrics of one process. Each component records into the registry it is given (never a
 * global), so that tests and embedded uses can run several components side by side.
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from "prom-client";
import { PlainHistogram } from "./plain-histogram.js";

/** Seconds, from 1 ms to 2 minutes: tool calls range from cache hits to long-running work. */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/**
 * How often Node's event-loop delay is sampled for the `nodejs_eventloop_lag_*` metrics. prom-client's
 * 10 ms woke an idle process 100 times a second (3.4 ms of CPU a second of its own); a tenth of
 * that still samples a lag well within a scrape interval.
 */
const EVENT_LOOP_SAMPLE_MS = 100;

export function createMetricsRegistry(options: { defaultMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  return registry;
}

const sharedMetrics = new WeakMap<Registry, Map<string, unknown>>();

/**
 * One set of metric objects per registry and key: several components of one process (the executors
 * of `dmcp up`) record into the same series instead of registering a name twice.
 */
export function shared<T>(registry: Registry, key: string, create: () => T): T {
  let byKey = sharedMetrics.get(registry);
  if (!byKey) {
    byKey = new Map();
    sharedMetrics.set(registry, byKey);
  }
  if (!byKey.has(key)) byKey.set(key, create());
  return byKey.get(key) as T;
}

/** The outcome label of a call: `ok`, `tool_error` (a result with isError) or a dMCP error code in lower case. */
export function outcomeOf(result: Record<string, unknown> | undefined, error?: unknown): string {
  if (error !== undefined) {
    const code = (error as { code?: unknown })?.code;
    return typeof code === "string" ? code.toLowerCase() : "internal";
  }
  return result?.isError === true ? "tool_error" : "ok";
}

/** Metrics of the bus connection, shared by gateways and executors. */
export class BusMetrics {
  readonly disconnects: Counter;
  readonly reconnects: Counter;
  readonly dropped: Counter<"subject" | "reason">;

  constructor(registry: Registry) {
    this.disconnects = new Counter({ name: "dmcp_bus_disconnects_total", help: "Times the NATS connection was lost", registers: [registry] });
    this.reconnects = new Counter({ name: "dmcp_bus_reconnects_total", help: "Times the NATS connection was re-established", registers: [registry] });
    this.dropped = new Counter({
      name: "dmcp_bus_messages_dropped_total",
      help: "Invalid messages dropped unanswered, and bucket records skipped, by subject (cancel, heartbeat, registry, context, session, rate, recover, dead-letter, task-record, ...) and reason",
      labelNames: ["subject", "reason"],
      registers: [registry],
    });
  }
}

/**
 * One label set's series. Counts are kept here as plain numbers and handed to prom-client when it is
 * read (a scrape): prom-client hashes and checks a label object on every inc, dec and observe, even
 * of a series bound with labels(). Durations go to a histogram of plain counts (plain-histogram.ts).
 */
interface CallSeries {
  labels: Record<string, string>;
  service: string;
  /** Calls answered, and the duration histogram, by outcome. */
  outcomes: Map<string, { calls: number; duration: { observe(seconds: number): void } }>;
}

/** Call metrics as seen by one side (gateway or executor). */
export class CallMetrics {
  readonly calls: Counter<string>;
  readonly duration: PlainHistogram;
  readonly inflight: Gauge<string>;
  private readonly series = new Map<string, CallSeries>();
  /** Calls being handled now, by service. */
  private readonly running = new Map<string, number>();

  constructor(
    registry: Registry,
    prefix: "dmcp_gateway" | "dmcp_executor",
    private readonly labelNames: string[],
  ) {
    const { series, running } = this;
    this.calls = new Counter({
      name: `${prefix}_calls_total`,
      help: "Calls answered, by outcome",
      labelNames: [...labelNames, "outcome"],
      registers: [registry],
      collect() {
        this.reset();
        for (const { labels, outcomes } of series.values()) for (const [outcome, { calls }] of outcomes) this.inc({ ...labels, outcome }, calls);
      },
    });
    this.duration = new PlainHistogram(`${prefix}_call_duration_seconds`, "Time from receiving a call to answering it", DURATION_BUCKETS, registry);
    this.inflight = new Gauge({
      name: `${prefix}_calls_in_flight`,
      help: "Calls being handled now",
      labelNames: ["service"],
      registers: [registry],
      collect() {
        for (const [service, count] of running) this.set({ service }, count);
      },
    });
  }

  /** Times one call and records it under `labels` plus its outcome. */
  async observe<T extends Record<string, unknown>>(labels: Record<string, string>, work: () => Promise<T>): Promise<T> {
    const timing = this.start(labels);
    try {
      const result = await work();
      timing.end(outcomeOf(result));
      return result;
    } catch (err) {
      timing.end(outcomeOf(undefined, err));
      throw err;
    }
  }

  /** Starts timing one call under `labels`; `end` records it with its outcome (once). For a caller that awaits the work itself, without a closure around it. */
  start(labels: Record<string, string>): CallTiming {
    const series = this.seriesOf(labels);
    const { running } = this;
    running.set(series.service, (running.get(series.service) ?? 0) + 1);
    return new CallTiming(this, series);
  }

  /** A timed call ended with `outcome`, `seconds` after it started. */
  ended(series: CallSeries, outcome: string, seconds: number): void {
    const { running } = this;
    running.set(series.service, running.get(series.service)! - 1);
    const ended = this.outcomeSeries(series, outcome);
    ended.calls += 1;
    ended.duration.observe(seconds);
  }

  private seriesOf(labels: Record<string, string>): CallSeries {
    let key = "";
    for (const name of this.labelNames) key += `${labels[name] ?? ""}\u0000`;
    let series = this.series.get(key);
    if (!series) {
      const own: Record<string, string> = {};
      for (const name of this.labelNames) own[name] = labels[name] ?? "";
      series = { labels: own, service: labels.service ?? "", outcomes: new Map() };
      this.series.set(key, series);
    }
    return series;
  }

  private outcomeSeries(series: CallSeries, outcome: string): { calls: number; duration: { observe(seconds: number): void } } {
    let bound = series.outcomes.get(outcome);
    if (!bound) {
      const { labels } = series;
      bound = { calls: 0, duration: this.duration.series({ service: labels.service ?? "", method: labels.method ?? "", outcome }) };
      series.outcomes.set(outcome, bound);
    }
    return bound;
  }
}

/** One call being timed (CallMetrics.start). */
export class CallTiming {
  private readonly started = performance.now();
  private done = false;

  constructor(
    private readonly metrics: CallMetrics,
    private readonly series: CallSeries,
  ) {}

  /** Records the call with its outcome (`ok`, `tool_error` or an error code in lower case); a second end counts nothing. */
  end(outcome: string): void {
    if (this.done) return;
    this.done = true;
    this.metrics.ended(this.series, outcome, (performance.now() - this.started) / 1000);
  }
}

/**
 * A Prometheus histogram whose series count in plain numbers, read by the registry at a scrape.
 * prom-client's Histogram copies, checks and hashes the label object on every observation, even of
 * a series bound with labels(): a call's duration cost more there than all its other metrics. A
 * series here is taken once per label set and observes with a loop over the bucket bounds.
 * The exposition is prom-client's own (the registry formats what `get` returns): `_bucket` per
 * bound (cumulative, then `le="+Inf"`), `_sum` and `_count`.
 */
import type { Registry } from "prom-client";

/** The counts of one label set. */
export class HistogramSeries {
  /** Per bucket (not cumulative), the last one for values above every bound. */
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(
    readonly labels: Readonly<Record<string, string>>,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }

  observe(value: number): void {
    const { bounds } = this;
    let bucket = 0;
    while (bucket < bounds.length && value > bounds[bucket]!) bucket++;
    this.counts[bucket]! += 1;
    this.sum += value;
    this.count += 1;
  }
}

interface ExportedValue {
  labels: Record<string, string | number>;
  value: number;
  metricName: string;
}

export class PlainHistogram {
  readonly type = "histogram";
  readonly aggregator = "sum";
  private readonly all: HistogramSeries[] = [];

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
    registry: Registry,
  ) {
    // The registry takes any object with a name and get(): it formats the values itself.
    registry.registerMetric(this as unknown as Parameters<Registry["registerMetric"]>[0]);
  }

  /** A new series for `labels` (the caller keeps it: asking twice makes two). */
  series(labels: Record<string, string>): HistogramSeries {
    const series = new HistogramSeries({ ...labels }, this.bounds);
    this.all.push(series);
    return series;
  }

  get(): { name: string; help: string; type: string; aggregator: string; values: ExportedValue[] } {
    const values: ExportedValue[] = [];
    const bucketName = `${this.name}_bucket`;
    // A series shows from its first observation on (after a reset, from its next), as prom-client's do.
    for (const series of this.all) {
      if (series.count === 0) continue;
      let cumulative = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        cumulative += series.counts[i]!;
        values.push({ labels: { le: this.bounds[i]!, ...series.labels }, value: cumulative, metricName: bucketName });
      }
      values.push({ labels: { le: "+Inf", ...series.labels }, value: series.count, metricName: bucketName });
      values.push({ labels: { ...series.labels }, value: series.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...series.labels }, value: series.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    for (const series of this.all) {
      series.counts.fill(0);
      series.sum = 0;
      series.count = 0;
    }
  }
}

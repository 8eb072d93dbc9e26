/**
 * A small metric registry: counters, gauges and histograms with fixed buckets, each
 * family with a fixed list of label names and a cap on its number of series.
 *
 * The hot path holds on to `Series` objects (looked up once, e.g. per route at config
 * time or lazily into a small array) and only adds numbers to them; no string is built
 * per request. A label set refused by the cap gets a detached series whose values go
 * nowhere, and the refusal is counted in `turnpike_metrics_series_dropped_total`.
 *
 * `snapshot()` gives a JSON-safe copy that crosses IPC; `merge.ts` adds snapshots up
 * and `exposition.ts` renders them in the Prometheus text format.
 */

/** The kind of a metric family, as in the Prometheus `# TYPE` line. */
export type MetricType = "counter" | "gauge" | "histogram";

/** Default histogram buckets for durations, in seconds (upper bounds; +Inf is implicit). */
export const DURATION_BUCKETS_SECONDS: readonly number[] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Default cap on the number of series of one metric family. */
export const DEFAULT_MAX_SERIES = 1000;

/** Name of the counter of refused label sets. */
export const DROPPED_SERIES_METRIC = "turnpike_metrics_series_dropped_total";

/**
 * One series. Counters and gauges use `values[0]`; a histogram has one slot per bucket
 * (not cumulative; the last is +Inf), then the sum, then the count.
 */
export class Series {
  constructor(
    readonly labels: readonly string[],
    readonly values: Float64Array,
    /** The bucket bounds of a histogram; empty otherwise. */
    readonly buckets: readonly number[],
  ) {}

  /** Adds `amount` (≥ 0 for counters) to a counter or gauge. */
  add(amount: number): void {
    this.values[0]! += amount;
  }

  /** Sets a gauge. */
  set(value: number): void {
    this.values[0] = value;
  }

  /** Records one observation in a histogram (seconds for durations). */
  observe(value: number): void {
    const buckets = this.buckets;
    const n = buckets.length;
    let i = 0;
    while (i < n && value > buckets[i]!) i++;
    const values = this.values;
    values[i]!++;
    values[n + 1]! += value;
    values[n + 2]!++;
  }
}

/** A family's description, shared by live families and snapshots. */
export interface FamilyInfo {
  name: string;
  help: string;
  type: MetricType;
  labelNames: readonly string[];
  /** Histogram bucket upper bounds in ascending order (no +Inf); empty for others. */
  buckets: readonly number[];
}

/** A JSON-safe copy of one family: its series as `[labelValues, values]` pairs. */
export interface FamilySnapshot extends FamilyInfo {
  series: [string[], number[]][];
}

/** A JSON-safe copy of a whole registry (what a worker sends over IPC). */
export type RegistrySnapshot = FamilySnapshot[];

/** One metric family with its series. */
export class Family implements FamilyInfo {
  readonly #series = new Map<string, Series>();
  readonly #slots: number;

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: MetricType,
    readonly labelNames: readonly string[],
    readonly buckets: readonly number[],
    readonly registry: Registry,
  ) {
    this.#slots = type === "histogram" ? buckets.length + 3 : 1;
  }

  /** Number of series that exist. */
  get size(): number {
    return this.#series.size;
  }

  /**
   * The series for these label values (in `labelNames` order), created on first use.
   * Not for the per-request path: look series up once and keep them.
   */
  series(...labelValues: string[]): Series {
    if (labelValues.length !== this.labelNames.length) {
      throw new Error(`${this.name} takes labels ${this.labelNames.join(", ")}, got ${labelValues.length} values`);
    }
    const key = labelValues.join("\u0000");
    let series = this.#series.get(key);
    if (series) return series;
    series = new Series(labelValues, new Float64Array(this.#slots), this.buckets);
    if (this.#series.size >= this.registry.maxSeriesPerMetric) {
      this.registry.seriesDropped(this.name);
      return series; // detached: counts nowhere
    }
    this.#series.set(key, series);
    return series;
  }

  snapshot(): FamilySnapshot {
    const series: [string[], number[]][] = [];
    for (const s of this.#series.values()) series.push([[...s.labels], Array.from(s.values)]);
    return { name: this.name, help: this.help, type: this.type, labelNames: [...this.labelNames], buckets: [...this.buckets], series };
  }
}

/** The metric families of one process. */
export class Registry {
  readonly #families = new Map<string, Family>();
  readonly #dropped: Family;
  maxSeriesPerMetric: number;

  constructor(maxSeriesPerMetric = DEFAULT_MAX_SERIES) {
    this.maxSeriesPerMetric = maxSeriesPerMetric;
    this.#dropped = this.#family(DROPPED_SERIES_METRIC, "Label sets refused because their metric reached max_series_per_metric.", "counter", ["metric"], []);
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Family {
    return this.#family(name, help, "counter", labelNames, []);
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Family {
    return this.#family(name, help, "gauge", labelNames, []);
  }

  histogram(name: string, help: string, labelNames: readonly string[] = [], buckets: readonly number[] = DURATION_BUCKETS_SECONDS): Family {
    for (let i = 1; i < buckets.length; i++) {
      if (!(buckets[i]! > buckets[i - 1]!)) throw new Error(`${name}: buckets must ascend`);
    }
    return this.#family(name, help, "histogram", labelNames, buckets);
  }

  /** Counts one refused label set of `metric`. The dropped-series family itself is never capped. */
  seriesDropped(metric: string): void {
    const cap = this.maxSeriesPerMetric;
    this.maxSeriesPerMetric = Number.MAX_SAFE_INTEGER;
    try {
      this.#dropped.series(metric).add(1);
    } finally {
      this.maxSeriesPerMetric = cap;
    }
  }

  snapshot(): RegistrySnapshot {
    return [...this.#families.values()].map((family) => family.snapshot());
  }

  #family(name: string, help: string, type: MetricType, labelNames: readonly string[], buckets: readonly number[]): Family {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name)) throw new Error(`invalid metric name ${name}`);
    for (const label of labelNames) {
      if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(label) || label.startsWith("__") || (type === "histogram" && label === "le")) {
        throw new Error(`${name}: invalid label name ${label}`);
      }
    }
    if (this.#families.has(name)) throw new Error(`metric ${name} is registered twice`);
    const family = new Family(name, help, type, labelNames, buckets, this);
    this.#families.set(name, family);
    return family;
  }
}

/**
 * `observability.metrics`: whether the node exposes `GET /metrics` on the admin
 * listener, and the cap on series per metric.
 */
import { DEFAULT_MAX_SERIES } from "./registry.ts";

/** JSON Schema of `observability.metrics`. */
export const metricsConfigSchema = {
  type: "object",
  additionalProperties: false,
  description: "Prometheus metrics on the admin listener (GET /metrics), merged over all worker processes.",
  properties: {
    enabled: { type: "boolean", default: true, description: "Count requests and serve GET /metrics." },
    max_series_per_metric: {
      type: "integer",
      minimum: 1,
      maximum: 1_000_000,
      default: DEFAULT_MAX_SERIES,
      description: "Label sets beyond this many per metric are dropped and counted in turnpike_metrics_series_dropped_total.",
    },
  },
};

/** `observability.metrics` as written. */
export interface MetricsConfig {
  enabled?: boolean;
  max_series_per_metric?: number;
}

/** `observability.metrics` with defaults applied. */
export function readMetricsConfig(observability: { metrics?: unknown } | undefined): { enabled: boolean; maxSeriesPerMetric: number } {
  const config = (observability?.metrics ?? {}) as MetricsConfig;
  return { enabled: config.enabled ?? true, maxSeriesPerMetric: config.max_series_per_metric ?? DEFAULT_MAX_SERIES };
}

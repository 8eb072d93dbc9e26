/**
 * The `observability` section of the config. Each telemetry part adds its own key
 * (schema and type) here; the section is validated with the rest of the file and handed
 * to the parts unchanged through `RuntimeGraph.observability`.
 */
import { metricsConfigSchema, type MetricsConfig } from "./metrics/config.ts";
import { tracingSchema, type TracingConfig } from "./tracing/config.ts";

/** JSON Schema of the `observability` section. */
export const observabilitySchema = {
  type: "object",
  additionalProperties: false,
  description: "Metrics, logs and tracing.",
  properties: {
    metrics: metricsConfigSchema,
    tracing: tracingSchema,
  } as Record<string, unknown>,
};

/** The `observability` section as written (after validation). */
export interface ObservabilityConfig {
  metrics?: MetricsConfig;
  tracing?: TracingConfig;
  [part: string]: unknown;
}

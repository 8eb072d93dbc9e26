/**
 * The `observability` section of the config. Each telemetry part adds its own key
 * (schema and type) here; the section is validated with the rest of the file and handed
 * to the parts unchanged through `RuntimeGraph.observability`.
 */
import {
  accessLogSchema,
  auditLogSchema,
  errorLogSchema,
  redactionSchema,
  type AccessLogConfig,
  type AuditLogConfig,
  type ErrorLogConfig,
  type RedactionConfig,
} from "./logs-config.ts";
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
    access_log: accessLogSchema,
    error_log: errorLogSchema,
    audit_log: auditLogSchema,
    redaction: redactionSchema,
  } as Record<string, unknown>,
};

/** The `observability` section as written (after validation). */
export interface ObservabilityConfig {
  metrics?: MetricsConfig;
  tracing?: TracingConfig;
  access_log?: AccessLogConfig;
  error_log?: ErrorLogConfig;
  audit_log?: AuditLogConfig;
  redaction?: RedactionConfig;
  [part: string]: unknown;
}

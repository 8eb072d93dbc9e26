/**
 * `observability.tracing`: W3C trace context and OTLP/HTTP JSON export of one span per
 * request. Off unless `enabled: true`.
 */
import { durationSchema, parseDuration } from "../../core/units.ts";

/** JSON Schema of `observability.tracing`. */
export const tracingSchema = {
  type: "object",
  additionalProperties: false,
  description: "W3C trace context and OpenTelemetry (OTLP/HTTP JSON) span export.",
  properties: {
    enabled: { type: "boolean", description: "Default false: no span, trace headers pass through untouched." },
    endpoint: {
      type: "string",
      pattern: "^https?://[^/?#]+(/[^?#]*)?$",
      description: "an http:// or https:// URL, the OTLP/HTTP base (spans go to {endpoint}/v1/traces); default http://localhost:4318",
    },
    service_name: { type: "string", minLength: 1, description: 'Resource attribute service.name; default "turnpike".' },
    sample: { type: "number", minimum: 0, maximum: 1, description: "Share of new traces recorded (0..1); default 1. A client's sampled flag wins." },
    headers: {
      type: "object",
      additionalProperties: { type: "string" },
      description: "Extra headers on every export request (e.g. authorization).",
    },
    batch: {
      type: "object",
      additionalProperties: false,
      properties: {
        max_spans: { type: "integer", minimum: 1, maximum: 100_000, description: "Spans per export request; default 512." },
        interval: { ...durationSchema, description: "Longest wait before queued spans are sent; default 1s." },
      },
    },
    queue: { type: "integer", minimum: 1, maximum: 1_000_000, description: "Spans held per worker; when full, new spans are dropped (and counted). Default 2048." },
    timeout: { ...durationSchema, description: "Limit of one export request; default 5s." },
  },
};

/** `observability.tracing` as written. */
export interface TracingConfig {
  enabled?: boolean;
  endpoint?: string;
  service_name?: string;
  sample?: number;
  headers?: Record<string, string>;
  batch?: { max_spans?: number; interval?: number | string };
  queue?: number;
  timeout?: number | string;
}

/** `observability.tracing` with defaults applied, in the units the code uses. */
export interface TracingSettings {
  /** Full URL spans are POSTed to. */
  url: string;
  serviceName: string;
  /** Share of new traces recorded, 0..1. */
  sample: number;
  headers: Record<string, string>;
  maxSpans: number;
  /** Milliseconds between exports of a partly filled batch (at least 1). */
  intervalMs: number;
  queue: number;
  /** Milliseconds one export may take (at least 1). */
  timeoutMs: number;
}

/** The longest a timer can wait (2^31 - 1 ms); longer durations are cut to it. */
const LONGEST_TIMER_MS = 2_147_483_647;

/** Settings of a validated section, or null when tracing is off. */
export function tracingSettings(config: TracingConfig | undefined): TracingSettings | null {
  if (!config?.enabled) return null;
  const endpoint = (config.endpoint ?? "http://localhost:4318").replace(/\/+$/, "");
  return {
    url: endpoint.endsWith("/v1/traces") ? endpoint : `${endpoint}/v1/traces`,
    serviceName: config.service_name ?? "turnpike",
    sample: config.sample ?? 1,
    headers: config.headers ?? {},
    maxSpans: config.batch?.max_spans ?? 512,
    intervalMs: timerMs(config.batch?.interval ?? "1s"),
    queue: config.queue ?? 2048,
    timeoutMs: timerMs(config.timeout ?? "5s"),
  };
}

function timerMs(value: number | string): number {
  return Math.min(Math.max(parseDuration(value), 1), LONGEST_TIMER_MS);
}

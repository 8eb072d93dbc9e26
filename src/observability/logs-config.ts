/**
 * Config of the log outputs in the `observability` section: `access_log`, `error_log`,
 * `audit_log` and `redaction` (schemas and types; defaults are applied by their users).
 */
import { durationSchema, sizeSchema } from "../core/units.ts";

/** Every field an access log line can carry, in the order they are written. */
export const ACCESS_LOG_FIELDS = [
  "time",
  "request_id",
  "route",
  "consumer",
  "client_ip",
  "method",
  "host",
  "path",
  "query",
  "status",
  "bytes_in",
  "bytes_out",
  "upstream",
  "upstream_latency_ms",
  "latency_ms",
  "retries",
  "decisions",
  "user_agent",
  "request_headers",
] as const;

/** A field name of the access log. */
export type AccessLogField = (typeof ACCESS_LOG_FIELDS)[number];

/** Fields written when `fields` is not given (no query, host, user agent or headers). */
export const DEFAULT_ACCESS_LOG_FIELDS: readonly AccessLogField[] = ACCESS_LOG_FIELDS.filter(
  (field) => field !== "query" && field !== "host" && field !== "user_agent" && field !== "request_headers",
);

const headerName = { type: "string", pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", description: "an HTTP header name" };
const logPath = (special: string) => ({
  type: "string",
  minLength: 1,
  description: `A file path (appended to; relative paths are relative to the working directory) or \`${special}\`.`,
});

/** JSON Schema of `observability.access_log`. */
export const accessLogSchema = {
  type: "object",
  additionalProperties: false,
  description: "One JSON line per answered request.",
  properties: {
    enabled: { type: "boolean", description: "Default true once the section is present." },
    path: { ...logPath("stdout"), description: "A file path (all workers append to it) or `stdout`; default stdout." },
    fields: {
      type: "array",
      uniqueItems: true,
      items: { enum: [...ACCESS_LOG_FIELDS] },
      description: `Fields to write, in a fixed order; default: ${DEFAULT_ACCESS_LOG_FIELDS.join(", ")}.`,
    },
    sample: { type: "number", minimum: 0, maximum: 1, description: "Share of requests logged (0..1, default 1); status 500 and above is always logged." },
    request_headers: {
      type: "array",
      uniqueItems: true,
      items: headerName,
      description: "Request headers written in the `request_headers` field (redacted ones as [redacted]).",
    },
    buffer: {
      type: "object",
      additionalProperties: false,
      properties: {
        size: { ...sizeSchema, description: "A batch is written once it holds this much; default 64KiB." },
        flush_interval: { ...durationSchema, description: "A line waits at most this long before it is written; default 100ms." },
        max_pending: { ...sizeSchema, description: "Lines beyond this much waiting on a slow disk are dropped; default 4MiB." },
      },
    },
  },
};

/** JSON Schema of `observability.error_log`. */
export const errorLogSchema = {
  type: "object",
  additionalProperties: false,
  description: "Where the gateway's own log lines (errors, warnings, events) go.",
  properties: {
    path: { ...logPath("stderr"), description: "A file path or `stderr` (default)." },
    level: { enum: ["debug", "info", "warn", "error"], description: "Lowest level written; default TURNPIKE_LOG_LEVEL, else info." },
  },
};

/** JSON Schema of `observability.audit_log`. */
export const auditLogSchema = {
  type: "object",
  additionalProperties: false,
  description: "One JSON line per config reload (who, result, generations, config hashes).",
  properties: {
    enabled: { type: "boolean", description: "Default true." },
    path: { ...logPath("stderr"), description: "A file path or `stderr` (default)." },
  },
};

/** JSON Schema of `observability.redaction`. */
export const redactionSchema = {
  type: "object",
  additionalProperties: false,
  description: "Values that never appear in any log line, in addition to the built-in ones.",
  properties: {
    headers: { type: "array", uniqueItems: true, items: headerName, description: "Header names whose values are redacted (Authorization, Proxy-Authorization, Cookie and Set-Cookie always are)." },
    query_params: {
      type: "array",
      uniqueItems: true,
      items: { type: "string", minLength: 1 },
      description: "Query parameter names whose values are redacted, added to the built-in list (api_key, token, password, ...).",
    },
  },
};

/** `observability.access_log` as written. */
export interface AccessLogConfig {
  enabled?: boolean;
  path?: string;
  fields?: AccessLogField[];
  sample?: number;
  request_headers?: string[];
  buffer?: { size?: number | string; flush_interval?: number | string; max_pending?: number | string };
}

/** `observability.error_log` as written. */
export interface ErrorLogConfig {
  path?: string;
  level?: "debug" | "info" | "warn" | "error";
}

/** `observability.audit_log` as written. */
export interface AuditLogConfig {
  enabled?: boolean;
  path?: string;
}

/** `observability.redaction` as written. */
export interface RedactionConfig {
  headers?: string[];
  query_params?: string[];
}

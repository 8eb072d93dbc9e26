/**
 * The OTLP/HTTP JSON encoding of finished request spans
 * (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding): ids as hex
 * strings, times as decimal strings of unix nanoseconds, enums as integers.
 *
 * A request only records raw values (a `FinishedSpan`); attributes are built here, per
 * batch, off the request path.
 */

/** One finished request span as recorded by the tracing part. */
export interface FinishedSpan {
  traceId: string;
  spanId: string;
  /** Empty when the span starts the trace. */
  parentSpanId: string;
  traceState: string | null;
  method: string;
  path: string;
  /** Route name, or null when no route matched. */
  route: string | null;
  status: number;
  scheme: string;
  serverAddress: string;
  clientAddress: string;
  requestId: string;
  /** Origin of the upstream target called, or null. */
  upstream: string | null;
  /** Milliseconds from sending the upstream request to its response headers; -1 if none arrived. */
  upstreamMs: number;
  /** `performance.now()` at start and end (ms). */
  startedAt: number;
  endedAt: number;
}

/** What every span of a process shares: the resource. */
export interface SpanResource {
  serviceName: string;
  serviceVersion: string;
  pid: number;
}

/** OTLP enum values. */
const SPAN_KIND_SERVER = 2;
const STATUS_CODE_ERROR = 2;

/** An OTLP KeyValue with a string value; `key` is a constant of this file (no escaping needed). */
const str = (key: string, value: string): string => `{"key":"${key}","value":{"stringValue":${quote(value)}}}`;
/** An OTLP KeyValue with an int64 value (a decimal string, as protobuf's JSON mapping writes it). */
const int = (key: string, value: number): string => `{"key":"${key}","value":{"intValue":"${Math.trunc(value)}"}}`;

/**
 * Converts `performance.now()` readings to unix nanoseconds: the wall clock is read once
 * and later times add monotonic deltas, so spans keep their order and durations even if
 * the system clock steps.
 */
export class SpanClock {
  readonly #originMs: number;
  readonly #originPerf: number;

  constructor(now = Date.now(), perfNow = performance.now()) {
    this.#originMs = Math.floor(now);
    this.#originPerf = perfNow;
  }

  /** Unix nanoseconds of a `performance.now()` reading, as a decimal string. */
  unixNanos(perf: number): string {
    // Unix nanoseconds exceed 2^53: whole milliseconds and the nanoseconds below them
    // are computed apart (the delta in ns stays exact for about 100 days).
    const deltaNs = Math.round((perf - this.#originPerf) * 1e6);
    const deltaMs = Math.floor(deltaNs / 1e6);
    const belowMs = deltaNs - deltaMs * 1e6;
    return `${this.#originMs + deltaMs}${String(belowMs).padStart(6, "0")}`;
  }
}

/**
 * The JSON body of one export request. Written by hand rather than through
 * `JSON.stringify` of an object tree: about three times faster per span, and a span's
 * text is what a busy gateway makes most of. Every value that may come from a client
 * goes through `JSON.stringify` on its own.
 */
export function encodeSpans(resource: SpanResource, scopeVersion: string, spans: readonly FinishedSpan[], clock: SpanClock): string {
  const head =
    `{"resourceSpans":[{"resource":{"attributes":[${str("service.name", resource.serviceName)},` +
    `${str("service.version", resource.serviceVersion)},${int("process.pid", resource.pid)}]},` +
    `"scopeSpans":[{"scope":{"name":"turnpike","version":${JSON.stringify(scopeVersion)}},"spans":[`;
  let body = head;
  for (let i = 0; i < spans.length; i++) body += (i > 0 ? "," : "") + encodeSpan(spans[i]!, clock);
  return body + "]}]}]}";
}

function encodeSpan(span: FinishedSpan, clock: SpanClock): string {
  const error = span.status >= 500;
  const name = span.route !== null ? `${span.method} ${span.route}` : span.method;
  // Attribute names follow the OpenTelemetry HTTP server semantic conventions.
  let attributes =
    str("http.request.method", span.method) +
    "," + str("url.path", span.path) +
    "," + str("url.scheme", span.scheme) +
    "," + int("http.response.status_code", span.status) +
    "," + str("server.address", span.serverAddress) +
    "," + str("client.address", span.clientAddress) +
    "," + str("turnpike.request_id", span.requestId);
  if (span.route !== null) attributes += "," + str("http.route", span.route);
  if (span.upstream !== null) attributes += "," + str("turnpike.upstream", span.upstream);
  if (span.upstreamMs >= 0) attributes += `,{"key":"turnpike.upstream.duration_ms","value":{"doubleValue":${round3(span.upstreamMs)}}}`;
  if (error) attributes += "," + str("error.type", String(span.status));
  return (
    `{"traceId":"${span.traceId}","spanId":"${span.spanId}"` +
    (span.parentSpanId !== "" ? `,"parentSpanId":"${span.parentSpanId}"` : "") +
    (span.traceState !== null ? `,"traceState":${quote(span.traceState)}` : "") +
    `,"name":${quote(name)},"kind":${SPAN_KIND_SERVER}` +
    `,"startTimeUnixNano":"${clock.unixNanos(span.startedAt)}","endTimeUnixNano":"${clock.unixNanos(span.endedAt)}"` +
    `,"attributes":[${attributes}],"status":${error ? `{"code":${STATUS_CODE_ERROR}}` : "{}"}}`
  );
}

/** Characters that JSON strings must escape; most values have none and skip `JSON.stringify`. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\u2028\u2029\ud800-\udfff]/;

/** A JSON string literal of `value`. */
function quote(value: string): string {
  return NEEDS_ESCAPE.test(value) ? JSON.stringify(value) : `"${value}"`;
}

function round3(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

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

type AnyValue = { stringValue: string } | { intValue: string } | { doubleValue: number };
type KeyValue = { key: string; value: AnyValue };

const str = (key: string, value: string): KeyValue => ({ key, value: { stringValue: value } });
const int = (key: string, value: number): KeyValue => ({ key, value: { intValue: String(Math.trunc(value)) } });

/**
 * Converts `performance.now()` readings to unix nanoseconds: the wall clock is read once
 * and later times add monotonic deltas, so spans keep their order and durations even if
 * the system clock steps.
 */
export class SpanClock {
  readonly #originNanos: bigint;
  readonly #originPerf: number;

  constructor(now = Date.now(), perfNow = performance.now()) {
    this.#originNanos = BigInt(now) * 1_000_000n;
    this.#originPerf = perfNow;
  }

  /** Unix nanoseconds of a `performance.now()` reading, as a decimal string. */
  unixNanos(perf: number): string {
    return String(this.#originNanos + BigInt(Math.round((perf - this.#originPerf) * 1e6)));
  }
}

/** The JSON body of one export request. */
export function encodeSpans(resource: SpanResource, scopeVersion: string, spans: readonly FinishedSpan[], clock: SpanClock): string {
  return JSON.stringify({
    resourceSpans: [
      {
        resource: {
          attributes: [
            str("service.name", resource.serviceName),
            str("service.version", resource.serviceVersion),
            int("process.pid", resource.pid),
          ],
        },
        scopeSpans: [{ scope: { name: "turnpike", version: scopeVersion }, spans: spans.map((span) => encodeSpan(span, clock)) }],
      },
    ],
  });
}

function encodeSpan(span: FinishedSpan, clock: SpanClock): Record<string, unknown> {
  // Attribute names follow the OpenTelemetry HTTP server semantic conventions.
  const attributes: KeyValue[] = [
    str("http.request.method", span.method),
    str("url.path", span.path),
    str("url.scheme", span.scheme),
    int("http.response.status_code", span.status),
    str("server.address", span.serverAddress),
    str("client.address", span.clientAddress),
    str("turnpike.request_id", span.requestId),
  ];
  if (span.route !== null) attributes.push(str("http.route", span.route));
  if (span.upstream !== null) attributes.push(str("turnpike.upstream", span.upstream));
  if (span.upstreamMs >= 0) attributes.push({ key: "turnpike.upstream.duration_ms", value: { doubleValue: round3(span.upstreamMs) } });
  const error = span.status >= 500;
  if (error) attributes.push(str("error.type", String(span.status)));
  const encoded: Record<string, unknown> = {
    traceId: span.traceId,
    spanId: span.spanId,
    name: span.route !== null ? `${span.method} ${span.route}` : span.method,
    kind: SPAN_KIND_SERVER,
    startTimeUnixNano: clock.unixNanos(span.startedAt),
    endTimeUnixNano: clock.unixNanos(span.endedAt),
    attributes,
    status: error ? { code: STATUS_CODE_ERROR } : {},
  };
  if (span.parentSpanId !== "") encoded.parentSpanId = span.parentSpanId;
  if (span.traceState !== null) encoded.traceState = span.traceState;
  return encoded;
}

function round3(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

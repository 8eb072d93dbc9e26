/**
 * The tracing part of a worker's telemetry: joins the client's W3C trace (or starts
 * one), tells the upstream about the gateway's span, and records one SERVER span per
 * request for the OTLP exporter.
 *
 * Disabled, it costs one branch per hook. Enabled, a request costs a header parse, a
 * span id from a random pool, one upstream header and, when sampled, one small object
 * queued for export.
 */
import type { RuntimeGraph } from "../../config/graph.ts";
import type { Exchange } from "../../core/exchange.ts";
import { VERSION } from "../../version.ts";
import type { Logger } from "../logger.ts";
import type { RequestOutcome, TelemetryPart } from "../telemetry.ts";
import { tracingSettings, type TracingSettings } from "./config.ts";
import { BatchSpanExporter } from "./exporter.ts";
import {
  boundTracestate,
  formatTraceparent,
  IdGenerator,
  parseTraceparent,
  sampledByRatio,
} from "./trace-context.ts";

/** Key of the request's span in `exchange.state`. */
const STATE_KEY = "turnpike.tracing";

/** The trace context of one request, from `start` to `end`. */
interface RequestSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  traceState: string | null;
  sampled: boolean;
}

/** W3C trace context and one span per request, exported over OTLP/HTTP JSON. */
export class Tracing implements TelemetryPart {
  readonly name = "tracing";
  readonly #log: Logger;
  readonly #ids = new IdGenerator();
  #settings: TracingSettings | null = null;
  #settingsKey = "";
  #exporter: BatchSpanExporter | null = null;

  constructor(log: Logger) {
    this.#log = log;
  }

  configure(graph: RuntimeGraph): void {
    const settings = tracingSettings(graph.observability.tracing);
    const key = settings ? JSON.stringify(settings) : "";
    if (key === this.#settingsKey) return;
    const previous = this.#exporter;
    this.#settings = settings;
    this.#settingsKey = key;
    this.#exporter = settings
      ? new BatchSpanExporter(settings, { serviceName: settings.serviceName, serviceVersion: VERSION, pid: process.pid }, VERSION, this.#log)
      : null;
    // Spans of the old settings still go where those settings said.
    if (previous) void previous.close();
  }

  start(exchange: Exchange): void {
    if (this.#settings === null) return;
    const span = this.#begin(exchange.request.headers);
    exchange.state.set(STATE_KEY, span);
    const headers = exchange.upstreamHeaders;
    headers.set("traceparent", formatTraceparent(span.traceId, span.spanId, span.sampled));
    if (span.traceState !== null) headers.set("tracestate", span.traceState);
    else headers.delete("tracestate");
  }

  end(outcome: RequestOutcome): void {
    const exporter = this.#exporter;
    if (exporter === null) return;
    const exchange = outcome.exchange;
    // A request refused before routing never reached `start`: its span begins here.
    const span = (exchange?.state.get(STATE_KEY) as RequestSpan | undefined) ?? this.#begin(outcome.request.headers);
    if (!span.sampled) return;
    const request = outcome.request;
    exporter.offer({
      traceId: span.traceId,
      spanId: span.spanId,
      parentSpanId: span.parentSpanId,
      traceState: span.traceState,
      method: request.method,
      path: exchange ? exchange.url.pathname : pathOf(request.url),
      route: exchange?.route?.name ?? null,
      status: outcome.response.status,
      scheme: exchange ? exchange.scheme : request.url.startsWith("https:") ? "https" : "http",
      serverAddress: withoutBrackets(exchange ? exchange.url.hostname : hostOf(request.url)),
      clientAddress: outcome.clientIp,
      requestId: outcome.requestId,
      upstream: exchange?.upstreamTarget ?? null,
      upstreamMs: exchange && exchange.upstreamHeadersAt > 0 ? exchange.upstreamHeadersAt - exchange.upstreamStartedAt : -1,
      startedAt: outcome.startedAt,
      endedAt: performance.now(),
    });
  }

  async close(): Promise<void> {
    const exporter = this.#exporter;
    this.#exporter = null;
    this.#settings = null;
    this.#settingsKey = "";
    await exporter?.close();
  }

  /** The request's span: a child of a valid client parent, or the root of a new trace. */
  #begin(headers: Headers): RequestSpan {
    const parent = parseTraceparent(headers.get("traceparent"));
    const spanId = this.#ids.spanId();
    if (parent) {
      return {
        traceId: parent.traceId,
        spanId,
        parentSpanId: parent.parentSpanId,
        traceState: boundTracestate(headers.get("tracestate")),
        sampled: parent.sampled,
      };
    }
    const traceId = this.#ids.traceId();
    return { traceId, spanId, parentSpanId: "", traceState: null, sampled: sampledByRatio(traceId, this.#settings!.sample) };
  }
}

/** Path of an absolute request URL without parsing it (it may be malformed). */
function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return "/";
  const query = url.indexOf("?", start);
  return query < 0 ? url.slice(start) : url.slice(start, query);
}

/** An IPv6 host as an address: `[::1]` → `::1`. */
function withoutBrackets(host: string): string {
  return host.charCodeAt(0) === 0x5b ? host.slice(1, host.indexOf("]")) : host;
}

/** Host (without port) of an absolute request URL, without parsing it. */
function hostOf(url: string): string {
  const from = url.indexOf("//") + 2;
  let to = url.indexOf("/", from);
  if (to < 0) to = url.length;
  const authority = url.slice(from, to);
  if (authority.startsWith("[")) return authority.slice(0, authority.indexOf("]") + 1);
  const colon = authority.lastIndexOf(":");
  return colon < 0 ? authority : authority.slice(0, colon);
}

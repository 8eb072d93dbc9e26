/**
 * The metrics part of a worker's telemetry: counts every answered request in the
 * worker's own registry. The supervisor asks for `snapshot()` on each scrape and adds
 * the workers up (see node-metrics.ts).
 *
 * Extension point: features that bring their own metrics (upstream health and circuit
 * breaker state, rate-limit and authentication rejections) register their families on
 * `registry` when they are wired into the worker, look their series up at config time,
 * and are merged and exported like these; nothing else needs to change.
 *
 * Hot path: per request one WeakMap lookup of the route's series (filled on a route's
 * first request of a config generation), a switch on the method, array indexing for the
 * status class, two header reads for Content-Length, and additions. No string is built.
 */
import type { RuntimeGraph } from "../../config/graph.ts";
import type { Exchange } from "../../core/exchange.ts";
import type { CompiledRoute } from "../../router/types.ts";
import type { RequestOutcome, TelemetryPart } from "../telemetry.ts";
import { readMetricsConfig } from "./config.ts";
import { AuthMetrics } from "./auth-metrics.ts";
import { RateLimitMetrics } from "./rate-limit-metrics.ts";
import { Registry, type Family, type RegistrySnapshot, type Series } from "./registry.ts";

/** Method classes, the values of the `method` label; anything else is `other`. */
export const METHOD_CLASSES = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"] as const;
/** Status classes, the values of the `status_class` label. */
export const STATUS_CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx"] as const;
/** The `route` label of requests that matched no route (or were refused before routing). */
export const NO_ROUTE = "none";

/** What a worker reports of itself besides its registry. */
export interface ProcessSample {
  pid: number;
  /** Resident set size in bytes. */
  residentBytes: number;
  /** User plus system CPU time in seconds. */
  cpuSeconds: number;
}

/** A worker's metrics as sent to the supervisor. */
export interface WorkerMetricsSnapshot {
  families: RegistrySnapshot;
  process: ProcessSample;
}

/** The series of one route, looked up once per route and config generation. */
interface RouteSeries {
  name: string;
  /** `turnpike_http_requests_total`, indexed by method class × 5 + status class; filled on first use. */
  requests: (Series | undefined)[];
  duration: Series;
  upstreamDuration: Series;
  requestBytes: Series;
  responseBytes: Series;
  /** `turnpike_upstream_retries_total` of the route's upstream; made on first use. */
  retries: Series | null;
  /** `turnpike_upstream_requests_total` by target origin: [response, error]; filled on first use. */
  upstream: Map<string, [Series, Series]>;
  upstreamName: string;
}

/** Samples this process's memory and CPU. */
export function sampleProcess(): ProcessSample {
  const cpu = process.cpuUsage();
  return { pid: process.pid, residentBytes: process.memoryUsage.rss(), cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

/** The request metrics of one worker. */
export class RequestMetrics implements TelemetryPart {
  readonly name = "metrics";
  readonly registry = new Registry();
  #enabled = true;
  readonly #requests: Family;
  readonly #duration: Family;
  readonly #upstreamDuration: Family;
  readonly #requestBytes: Family;
  readonly #responseBytes: Family;
  readonly #upstreamRequests: Family;
  readonly #upstreamRetries: Family;
  readonly #inFlight: Series;
  readonly #rateLimits: RateLimitMetrics;
  readonly #auth: AuthMetrics;
  /** Route series by route object (old generations' routes keep theirs while in flight). */
  #byRoute = new WeakMap<CompiledRoute, RouteSeries>();
  #byName = new Map<string, RouteSeries>();
  #noRoute: RouteSeries | null = null;

  /** `finalSnapshot` is called once when the worker drains (it sends the last snapshot). */
  constructor(private readonly finalSnapshot: ((snapshot: WorkerMetricsSnapshot) => void | Promise<void>) | null = null) {
    const r = this.registry;
    this.#requests = r.counter("turnpike_http_requests_total", "Requests answered, by route, method class and status class.", ["route", "method", "status_class"]);
    this.#duration = r.histogram("turnpike_http_request_duration_seconds", "Time from receiving a request to handing its response headers to the client, in seconds.", ["route"]);
    this.#upstreamDuration = r.histogram("turnpike_upstream_duration_seconds", "Time from starting the upstream call to its response headers, in seconds.", ["route"]);
    this.#requestBytes = r.counter("turnpike_http_request_bytes_total", "Request body bytes declared by Content-Length (bodies streamed without one are not counted).", ["route"]);
    this.#responseBytes = r.counter("turnpike_http_response_bytes_total", "Response body bytes declared by Content-Length (bodies streamed without one are not counted).", ["route"]);
    this.#upstreamRequests = r.counter(
      "turnpike_upstream_requests_total",
      "Upstream calls by upstream and target; outcome is response (headers arrived) or error (no response: refused, reset, timeout).",
      ["upstream", "target", "outcome"],
    );
    this.#upstreamRetries = r.counter("turnpike_upstream_retries_total", "Retries made to the targets of an upstream (calls after the first of a request).", ["upstream"]);
    this.#rateLimits = new RateLimitMetrics(r);
    this.#auth = new AuthMetrics(r);
    this.#inFlight = r.gauge("turnpike_http_requests_in_flight", "Requests being handled (from routing until the response headers are ready).").series();
  }

  configure(graph: RuntimeGraph): void {
    const config = readMetricsConfig(graph.observability);
    this.#enabled = config.enabled;
    this.registry.maxSeriesPerMetric = config.maxSeriesPerMetric;
    // Look series up again: a raised cap may now admit label sets refused before.
    this.#byRoute = new WeakMap();
    this.#byName = new Map();
    this.#noRoute = null;
  }

  start(_exchange: Exchange): void {
    if (this.#enabled) this.#inFlight.values[0]!++;
  }

  end(outcome: RequestOutcome): void {
    if (!this.#enabled) return;
    const exchange = outcome.exchange;
    if (exchange) this.#inFlight.values[0]!--;
    const route = exchange?.route;
    const series = route ? this.#routeSeries(route) : (this.#noRoute ??= this.#seriesFor(NO_ROUTE, NO_ROUTE));
    const status = outcome.response.status;
    let statusClass = ((status / 100) | 0) - 1;
    if (statusClass < 0) statusClass = 0;
    else if (statusClass > 4) statusClass = 4;
    const slot = methodClass(outcome.request.method) * 5 + statusClass;
    const counter = (series.requests[slot] ??= this.#requests.series(series.name, METHOD_CLASSES[(slot / 5) | 0]!, STATUS_CLASSES[statusClass]!));
    counter.values[0]!++;
    series.duration.observe((performance.now() - outcome.startedAt) / 1000);
    const retries = exchange?.retries;
    if (retries) (series.retries ??= this.#upstreamRetries.series(series.upstreamName)).values[0]! += retries;
    const target = exchange?.upstreamTarget;
    if (target) {
      let pair = series.upstream.get(target);
      if (!pair) {
        // A split route's variants call different upstreams: label by the one called.
        const upstreamName = route?.upstream.name ?? series.upstreamName;
        pair = [this.#upstreamRequests.series(upstreamName, target, "response"), this.#upstreamRequests.series(upstreamName, target, "error")];
        series.upstream.set(target, pair);
      }
      if (exchange.upstreamHeadersAt > 0) {
        pair[0].values[0]!++;
        series.upstreamDuration.observe((exchange.upstreamHeadersAt - exchange.upstreamStartedAt) / 1000);
      } else {
        pair[1].values[0]!++;
      }
    }
    const decisions = exchange?.decisions;
    if (decisions) this.#rateLimits.count(series.name, decisions);
    const answeredBy = exchange?.answeredBy;
    if (answeredBy) this.#auth.count(series.name, exchange!, answeredBy, status);
    const requestLength = outcome.request.headers.get("content-length");
    if (requestLength !== null) addLength(series.requestBytes, requestLength);
    const responseLength = outcome.response.headers.get("content-length");
    if (responseLength !== null) addLength(series.responseBytes, responseLength);
  }

  /** This worker's metrics now (JSON-safe). */
  snapshot(): WorkerMetricsSnapshot {
    return { families: this.#enabled ? this.registry.snapshot() : [], process: sampleProcess() };
  }

  async close(): Promise<void> {
    await this.finalSnapshot?.(this.snapshot());
  }

  #routeSeries(route: CompiledRoute): RouteSeries {
    let series = this.#byRoute.get(route);
    if (!series) {
      series = this.#byName.get(route.name) ?? this.#seriesFor(route.name, route.upstream.name);
      this.#byName.set(route.name, series);
      this.#byRoute.set(route, series);
    }
    return series;
  }

  #seriesFor(name: string, upstreamName: string): RouteSeries {
    return {
      name,
      requests: new Array(METHOD_CLASSES.length * STATUS_CLASSES.length),
      duration: this.#duration.series(name),
      upstreamDuration: this.#upstreamDuration.series(name),
      requestBytes: this.#requestBytes.series(name),
      responseBytes: this.#responseBytes.series(name),
      upstream: new Map(),
      retries: null,
      upstreamName,
    };
  }
}

/** Index of a method in METHOD_CLASSES. */
function methodClass(method: string): number {
  switch (method) {
    case "GET":
      return 0;
    case "HEAD":
      return 1;
    case "POST":
      return 2;
    case "PUT":
      return 3;
    case "PATCH":
      return 4;
    case "DELETE":
      return 5;
    case "OPTIONS":
      return 6;
    default:
      return 7;
  }
}

function addLength(series: Series, header: string): void {
  const length = Number(header);
  if (length > 0 && Number.isSafeInteger(length)) series.values[0]! += length;
}

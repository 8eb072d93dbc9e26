/**
 * The access log: one JSON line per answered request, written in batches to a file
 * shared by all workers (or stdout). A telemetry part of the worker.
 *
 * The line is built by string concatenation from a field list fixed at configure time;
 * a request costs a few header lookups, one `toISOString` and one string append.
 * Credentials never reach the line: no header is written unless listed in
 * `request_headers` (redacted ones as `[redacted]`), and query values of API-key-like
 * names are redacted when the query is written at all.
 */
import type { RuntimeGraph } from "../config/graph.ts";
import { parseDuration, parseSize } from "../core/units.ts";
import { BufferedLogFile, type LogBufferOptions } from "./log-file.ts";
import type { Logger } from "./logger.ts";
import { ACCESS_LOG_FIELDS, DEFAULT_ACCESS_LOG_FIELDS, type AccessLogConfig, type AccessLogField, type RedactionConfig } from "./logs-config.ts";
import { compileRedaction, REDACTED, redactQuery } from "./redaction.ts";
import type { RequestOutcome, TelemetryPart } from "./telemetry.ts";

const DEFAULT_BUFFER: LogBufferOptions = { batchBytes: 64 * 1024, flushIntervalMs: 100, maxPendingBytes: 4 * 1024 * 1024 };

/** One config generation of the access log, ready for the hot path. */
interface AccessLogSettings {
  /** Field name → written. */
  fields: Readonly<Record<AccessLogField, boolean>>;
  sample: number;
  /** Lower-case header names to write, each with whether its value is redacted. */
  requestHeaders: readonly { name: string; redacted: boolean }[];
  redactedQueryParams: ReadonlySet<string>;
  times: IsoTimeCache;
}

/** The access log part of a worker's telemetry. */
export class AccessLog implements TelemetryPart {
  readonly name = "access-log";
  #settings: AccessLogSettings | null = null;
  #file: BufferedLogFile | null = null;
  #random: () => number;

  constructor(readonly log: Logger, random: () => number = Math.random) {
    this.#random = random;
  }

  configure(graph: RuntimeGraph): void {
    const config = graph.observability.access_log as AccessLogConfig | undefined;
    if (!config || config.enabled === false) {
      this.#settings = null;
      this.#file?.close();
      this.#file = null;
      return;
    }
    const path = config.path ?? "stdout";
    const buffer: LogBufferOptions = {
      batchBytes: config.buffer?.size !== undefined ? Math.max(1, parseSize(config.buffer.size)) : DEFAULT_BUFFER.batchBytes,
      flushIntervalMs: config.buffer?.flush_interval !== undefined ? parseDuration(config.buffer.flush_interval) : DEFAULT_BUFFER.flushIntervalMs,
      maxPendingBytes: config.buffer?.max_pending !== undefined ? parseSize(config.buffer.max_pending) : DEFAULT_BUFFER.maxPendingBytes,
    };
    const file = this.#file;
    if (!file || file.path !== path || !sameBuffer(file.options, buffer)) {
      file?.close();
      this.#file = new BufferedLogFile(path, buffer, this.log, "access log");
    }
    const configured = graph.observability.redaction as RedactionConfig | undefined;
    // Names that policies read secrets from (e.g. a custom API key header) are redacted too.
    const redaction = compileRedaction({
      headers: [...(configured?.headers ?? []), ...(graph.secretNames?.headers ?? [])],
      query_params: [...(configured?.query_params ?? []), ...(graph.secretNames?.queryParams ?? [])],
    });
    const wanted = new Set<AccessLogField>(config.fields ?? DEFAULT_ACCESS_LOG_FIELDS);
    // Listing headers to log says enough when the field list is the default one.
    if (!config.fields && config.request_headers?.length) wanted.add("request_headers");
    const fields = Object.fromEntries(ACCESS_LOG_FIELDS.map((field) => [field, wanted.has(field)]));
    this.#settings = {
      fields: fields as Record<AccessLogField, boolean>,
      sample: config.sample ?? 1,
      requestHeaders: (config.request_headers ?? []).map((name) => {
        const lower = name.toLowerCase();
        return { name: lower, redacted: redaction.headers.has(lower) };
      }),
      redactedQueryParams: redaction.queryParams,
      times: new IsoTimeCache(),
    };
  }

  end(outcome: RequestOutcome): void {
    const settings = this.#settings;
    if (settings === null) return;
    if (settings.sample < 1 && outcome.response.status < 500 && this.#random() >= settings.sample) return;
    this.#file!.append(formatAccessLine(settings, outcome, performance.now()));
  }

  /** Opens the file again (after it was renamed by log rotation). */
  reopen(): void {
    this.#file?.reopen();
  }

  close(): void {
    this.#file?.close();
    this.#file = null;
    this.#settings = null;
  }
}

function sameBuffer(a: LogBufferOptions, b: LogBufferOptions): boolean {
  return a.batchBytes === b.batchBytes && a.flushIntervalMs === b.flushIntervalMs && a.maxPendingBytes === b.maxPendingBytes;
}

/** One access log line (with its newline) for a finished request; `now` is `performance.now()`. */
function formatAccessLine(settings: AccessLogSettings, outcome: RequestOutcome, now: number): string {
  const f = settings.fields;
  const { request, exchange, response } = outcome;
  let line = "";
  // Request ids, route names, addresses and methods are limited to characters JSON
  // needs no escape for (the handler, the config schema and HTTP parsing see to it).
  if (f.time) line += `,"time":"${settings.times.text(Date.now() - (now - outcome.startedAt))}"`;
  if (f.request_id) line += `,"request_id":"${outcome.requestId}"`;
  if (f.route) line += exchange?.route ? `,"route":"${exchange.route.name}"` : `,"route":null`;
  if (f.consumer) line += exchange?.consumer ? `,"consumer":${JSON.stringify(exchange.consumer.name)}` : `,"consumer":null`;
  if (f.client_ip) line += `,"client_ip":"${outcome.clientIp}"`;
  if (f.method) line += `,"method":"${request.method}"`;
  if (f.host) line += `,"host":${jsonOrNull(request.headers.get("host"))}`;
  if (f.path || f.query) {
    let path: string;
    let search: string;
    let pathIsPlain = false;
    if (exchange) {
      // A parsed URL's path has quotes, controls and non-ASCII percent-encoded.
      path = exchange.url.pathname;
      search = exchange.url.search;
      pathIsPlain = path.indexOf("\\") < 0;
    } else {
      // Refused before the URL was parsed: cut the raw target.
      const url = request.url;
      const start = url.indexOf("/", url.indexOf("//") + 2);
      const question = url.indexOf("?", start);
      path = start < 0 ? "/" : question < 0 ? url.slice(start) : url.slice(start, question);
      search = question < 0 ? "" : url.slice(question);
    }
    if (f.path) line += `,"path":${pathIsPlain ? `"${path}"` : JSON.stringify(path)}`;
    if (f.query) line += `,"query":${search.length > 1 ? JSON.stringify(redactQuery(search, settings.redactedQueryParams)) : "null"}`;
  }
  if (f.status) line += `,"status":${response.status}`;
  if (f.bytes_in) line += `,"bytes_in":${declaredLength(request.headers.get("content-length"))}`;
  if (f.bytes_out) line += `,"bytes_out":${declaredLength(response.headers.get("content-length"))}`;
  if (f.upstream) line += exchange?.upstreamTarget ? `,"upstream":${JSON.stringify(exchange.upstreamTarget)}` : `,"upstream":null`;
  if (f.upstream_latency_ms) {
    const took = exchange && exchange.upstreamStartedAt > 0 && exchange.upstreamHeadersAt > 0 ? exchange.upstreamHeadersAt - exchange.upstreamStartedAt : -1;
    line += `,"upstream_latency_ms":${took >= 0 ? milliseconds(took) : "null"}`;
  }
  if (f.latency_ms) line += `,"latency_ms":${milliseconds(now - outcome.startedAt)}`;
  if (f.retries) line += `,"retries":${exchange?.retries ?? 0}`;
  if (f.decisions) line += exchange?.decisions ? `,"decisions":${JSON.stringify(exchange.decisions)}` : `,"decisions":[]`;
  if (f.user_agent) line += `,"user_agent":${jsonOrNull(request.headers.get("user-agent"))}`;
  if (f.request_headers && settings.requestHeaders.length > 0) {
    let headers = "";
    for (const { name, redacted } of settings.requestHeaders) {
      const value = request.headers.get(name);
      if (value !== null) headers += `,${JSON.stringify(name)}:${redacted ? `"${REDACTED}"` : JSON.stringify(value)}`;
    }
    line += `,"request_headers":{${headers.slice(1)}}`;
  }
  return `{${line.slice(1)}}\n`;
}

/** ISO 8601 texts of epoch milliseconds; requests within one millisecond share the text. */
class IsoTimeCache {
  #ms = -1;
  #text = "";

  text(epochMs: number): string {
    const ms = Math.floor(epochMs);
    if (ms !== this.#ms) {
      this.#ms = ms;
      this.#text = new Date(ms).toISOString();
    }
    return this.#text;
  }
}

function jsonOrNull(value: string | null): string {
  return value === null ? "null" : JSON.stringify(value);
}

/** A Content-Length value as a JSON number, `null` when absent or not a plain number. */
function declaredLength(value: string | null): string {
  if (value === null || value.length === 0 || value.length > 15) return "null";
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 48 || c > 57) return "null";
  }
  return String(Number(value));
}

/** Milliseconds with microsecond precision. */
function milliseconds(value: number): string {
  return String(Math.round(value * 1000) / 1000);
}

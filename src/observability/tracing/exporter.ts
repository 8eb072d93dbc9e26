/**
 * Batches finished spans and POSTs them to an OTLP/HTTP JSON endpoint, off the request
 * path. The queue is bounded: when it is full a new span is dropped and counted. One
 * export runs at a time, each bounded by a timeout, so an unreachable or slow collector
 * costs dropped spans, never memory or request latency. Drops and failures (including
 * spans a collector reports as rejected) are logged at most once per interval.
 */
import type { Logger } from "../logger.ts";
import type { TracingSettings } from "./config.ts";
import { encodeSpans, SpanClock, type FinishedSpan, type SpanResource } from "./otlp.ts";

/** Sends queued spans in batches; `offer` is the only call on the request path. */
export class BatchSpanExporter {
  readonly #settings: TracingSettings;
  readonly #resource: SpanResource;
  readonly #version: string;
  readonly #log: Logger;
  readonly #clock = new SpanClock();
  readonly #headers: Record<string, string>;
  #queue: FinishedSpan[] = [];
  #inFlight: Promise<void> | null = null;
  readonly #timer: ReturnType<typeof setInterval>;
  #closed = false;
  /** Counted since the last log line. */
  #droppedQueueFull = 0;
  #droppedExportFailed = 0;
  #lastError = "";

  constructor(settings: TracingSettings, resource: SpanResource, version: string, log: Logger) {
    this.#settings = settings;
    this.#resource = resource;
    this.#version = version;
    this.#log = log;
    this.#headers = { ...settings.headers, "content-type": "application/json" };
    this.#timer = setInterval(() => this.#tick(), settings.intervalMs);
    this.#timer.unref?.();
  }

  /** Queues a span; drops it when the queue is full. Never blocks, never throws. */
  offer(span: FinishedSpan): void {
    if (this.#queue.length >= this.#settings.queue || this.#closed) {
      this.#droppedQueueFull++;
      return;
    }
    this.#queue.push(span);
    if (this.#queue.length >= this.#settings.maxSpans && this.#inFlight === null) this.#startExport();
  }

  /** Spans waiting to be sent (for tests and status). */
  get queued(): number {
    return this.#queue.length;
  }

  /**
   * Stops the timer and sends what is queued, batch after batch, until the queue is
   * empty or the time of one export timeout (at least) is used up.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    const deadline = performance.now() + this.#settings.timeoutMs;
    if (this.#inFlight) await this.#inFlight;
    while (this.#queue.length > 0 && performance.now() < deadline) {
      this.#startExport();
      await this.#inFlight;
    }
    this.#droppedExportFailed += this.#queue.length;
    this.#queue = [];
    this.#logDrops();
  }

  #tick(): void {
    this.#logDrops();
    if (this.#queue.length > 0 && this.#inFlight === null) this.#startExport();
  }

  #startExport(): void {
    const batch = this.#queue.length <= this.#settings.maxSpans ? this.#queue : this.#queue.slice(0, this.#settings.maxSpans);
    this.#queue = batch === this.#queue ? [] : this.#queue.slice(batch.length);
    this.#inFlight = this.#send(batch).finally(() => {
      this.#inFlight = null;
      // A queue that filled up while the export ran goes next, without waiting a tick.
      if (!this.#closed && this.#queue.length >= this.#settings.maxSpans) this.#startExport();
    });
  }

  async #send(batch: FinishedSpan[]): Promise<void> {
    try {
      const body = encodeSpans(this.#resource, this.#version, batch, this.#clock);
      const response = await fetch(this.#settings.url, {
        method: "POST",
        headers: this.#headers,
        body,
        signal: AbortSignal.timeout(this.#settings.timeoutMs),
      });
      // Read the answer so the connection can be reused; it may report rejected spans.
      const answer = await response.text();
      if (!response.ok) this.#failed(batch.length, `collector answered ${response.status}`);
      else {
        const rejected = rejectedSpans(answer);
        if (rejected > 0) this.#failed(Math.min(rejected, batch.length), `collector rejected ${rejected} spans`);
      }
    } catch (error) {
      const name = (error as { name?: string }).name;
      const reason = name === "TimeoutError" ? `no answer within ${this.#settings.timeoutMs} ms` : describe(error);
      this.#failed(batch.length, reason);
    }
  }

  #failed(spans: number, reason: string): void {
    this.#droppedExportFailed += spans;
    this.#lastError = reason;
  }

  #logDrops(): void {
    if (this.#droppedQueueFull === 0 && this.#droppedExportFailed === 0) return;
    this.#log.warn("spans dropped", {
      queue_full: this.#droppedQueueFull,
      export_failed: this.#droppedExportFailed,
      last_error: this.#lastError || undefined,
      endpoint: this.#settings.url,
    });
    this.#droppedQueueFull = 0;
    this.#droppedExportFailed = 0;
    this.#lastError = "";
  }
}

/**
 * Spans the collector refused in a successful answer (OTLP "partial success":
 * `{"partialSuccess":{"rejectedSpans":"3","errorMessage":"..."}}`); 0 otherwise.
 */
export function rejectedSpans(answer: string): number {
  if (!answer.includes("rejectedSpans")) return 0;
  try {
    const count = Number((JSON.parse(answer) as { partialSuccess?: { rejectedSpans?: unknown } }).partialSuccess?.rejectedSpans ?? 0);
    return Number.isFinite(count) && count > 0 ? count : 0;
  } catch {
    return 0;
  }
}

function describe(error: unknown): string {
  const code = (error as { code?: string }).code;
  if (code) return code;
  return error instanceof Error ? error.message : String(error);
}

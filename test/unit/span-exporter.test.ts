/**
 * The batch span exporter against a collector run in the test: batches by size and on
 * close, a bounded queue whose drops are logged once per interval, export timeouts and
 * spans a collector reports as rejected.
 */
import { afterEach, expect, test } from "bun:test";
import type { Logger } from "../../src/observability/logger.ts";
import { tracingSettings } from "../../src/observability/tracing/config.ts";
import { BatchSpanExporter, rejectedSpans } from "../../src/observability/tracing/exporter.ts";
import type { FinishedSpan } from "../../src/observability/tracing/otlp.ts";

interface Warning {
  msg: string;
  fields: { queue_full: number; export_failed: number; last_error?: string };
}

/** A logger that keeps warnings. */
function recordingLogger(warnings: Warning[]): Logger {
  const logger: Logger = {
    debug() {},
    info() {},
    warn: (msg, fields) => void warnings.push({ msg, fields: fields as Warning["fields"] }),
    error() {},
    child: () => logger,
  };
  return logger;
}

const servers: { stop(force: boolean): void }[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.stop(true);
});

/** A collector answering with `answer`, or never when `answer` is null. */
function collector(answer: string | null) {
  const posts: { headers: Headers; spans: number }[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      const body = (await request.json()) as { resourceSpans: { scopeSpans: { spans: unknown[] }[] }[] };
      posts.push({ headers: request.headers, spans: body.resourceSpans[0]!.scopeSpans[0]!.spans.length });
      return answer === null ? new Promise<Response>(() => {}) : new Response(answer, { headers: { "content-type": "application/json" } });
    },
  });
  servers.push(server);
  return { url: `http://127.0.0.1:${server.port}`, posts };
}

function span(i: number): FinishedSpan {
  return {
    traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
    spanId: (i + 1).toString(16).padStart(16, "0"),
    parentSpanId: "",
    traceState: null,
    method: "GET",
    path: `/p/${i}`,
    route: "r",
    status: 200,
    scheme: "http",
    serverAddress: "127.0.0.1",
    clientAddress: "127.0.0.1",
    requestId: `rid-${i}`,
    upstream: null,
    upstreamMs: -1,
    startedAt: performance.now(),
    endedAt: performance.now(),
  };
}

const RESOURCE = { serviceName: "t", serviceVersion: "0.0.0", pid: 1 };

async function until(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error("condition not met in time");
    await Bun.sleep(10);
  }
}

test("full batches leave at once, the rest on close; extra headers go along", async () => {
  const target = collector("{}");
  const warnings: Warning[] = [];
  const settings = tracingSettings({ enabled: true, endpoint: target.url, headers: { authorization: "Bearer t" }, batch: { max_spans: 3, interval: "1h" }, queue: 10 })!;
  const exporter = new BatchSpanExporter(settings, RESOURCE, "0.0.0", recordingLogger(warnings));
  for (let i = 0; i < 7; i++) exporter.offer(span(i));
  await until(() => target.posts.length === 2);
  expect(target.posts.map((p) => p.spans)).toEqual([3, 3]);
  expect(exporter.queued).toBe(1);
  await exporter.close();
  expect(target.posts.map((p) => p.spans)).toEqual([3, 3, 1]);
  expect(target.posts[0]!.headers.get("content-type")).toBe("application/json");
  expect(target.posts[0]!.headers.get("authorization")).toBe("Bearer t");
  expect(warnings).toEqual([]);
});

test("a full queue drops new spans and a hanging export times out; one warning per interval", async () => {
  const target = collector(null);
  const warnings: Warning[] = [];
  const settings = tracingSettings({ enabled: true, endpoint: target.url, timeout: "150ms", batch: { max_spans: 100, interval: "50ms" }, queue: 5 })!;
  const exporter = new BatchSpanExporter(settings, RESOURCE, "0.0.0", recordingLogger(warnings));
  const startedAt = performance.now();
  for (let i = 0; i < 20; i++) exporter.offer(span(i));
  expect(exporter.queued).toBe(5);
  await until(() => warnings.some((w) => w.fields.export_failed > 0));
  await exporter.close();
  const elapsed = performance.now() - startedAt;
  expect(warnings.every((w) => w.msg === "spans dropped")).toBe(true);
  expect(warnings.length).toBeLessThanOrEqual(Math.ceil(elapsed / 50) + 1);
  expect(warnings.reduce((n, w) => n + w.fields.queue_full, 0)).toBe(15);
  expect(warnings.reduce((n, w) => n + w.fields.export_failed, 0)).toBe(5);
  expect(warnings.some((w) => w.fields.last_error === "no answer within 150 ms")).toBe(true);
});

test("spans a collector reports as rejected are counted as dropped", async () => {
  const target = collector('{"partialSuccess":{"rejectedSpans":"2","errorMessage":"too old"}}');
  const warnings: Warning[] = [];
  const settings = tracingSettings({ enabled: true, endpoint: target.url, batch: { max_spans: 4, interval: "1h" } })!;
  const exporter = new BatchSpanExporter(settings, RESOURCE, "0.0.0", recordingLogger(warnings));
  for (let i = 0; i < 4; i++) exporter.offer(span(i));
  await exporter.close();
  expect(target.posts.map((p) => p.spans)).toEqual([4]);
  expect(warnings).toHaveLength(1);
  expect(warnings[0]!.fields).toMatchObject({ queue_full: 0, export_failed: 2, last_error: "collector rejected 2 spans" });
});

test("rejectedSpans reads OTLP partial success answers", () => {
  expect(rejectedSpans("{}")).toBe(0);
  expect(rejectedSpans("")).toBe(0);
  expect(rejectedSpans('{"partialSuccess":{}}')).toBe(0);
  expect(rejectedSpans('{"partialSuccess":{"rejectedSpans":"7"}}')).toBe(7);
  expect(rejectedSpans('{"partialSuccess":{"rejectedSpans":3}}')).toBe(3);
  expect(rejectedSpans("rejectedSpans but not json")).toBe(0);
});

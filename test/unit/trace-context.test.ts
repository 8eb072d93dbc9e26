/**
 * W3C trace context: which `traceparent` values are accepted, how `tracestate` is
 * bounded, the ids the gateway makes, ratio sampling, and the OTLP JSON of a span.
 */
import { describe, expect, test } from "bun:test";
import { tracingSettings } from "../../src/observability/tracing/config.ts";
import { encodeSpans, SpanClock, type FinishedSpan } from "../../src/observability/tracing/otlp.ts";
import {
  boundTracestate,
  formatTraceparent,
  IdGenerator,
  parseTraceparent,
  sampledByRatio,
} from "../../src/observability/tracing/trace-context.ts";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT = "00f067aa0ba902b7";

describe("parseTraceparent", () => {
  test("a valid version-00 header gives trace id, parent id and the sampled flag", () => {
    expect(parseTraceparent(`00-${TRACE}-${PARENT}-01`)).toEqual({ traceId: TRACE, parentSpanId: PARENT, sampled: true });
    expect(parseTraceparent(`00-${TRACE}-${PARENT}-00`)).toEqual({ traceId: TRACE, parentSpanId: PARENT, sampled: false });
    // Other flag bits do not hide the sampled bit.
    expect(parseTraceparent(`00-${TRACE}-${PARENT}-03`)?.sampled).toBe(true);
    expect(parseTraceparent(`00-${TRACE}-${PARENT}-02`)?.sampled).toBe(false);
  });

  test.each([
    ["missing", null],
    ["empty", ""],
    ["all-zero trace id", `00-${"0".repeat(32)}-${PARENT}-01`],
    ["all-zero parent id", `00-${TRACE}-${"0".repeat(16)}-01`],
    ["upper-case hex", `00-${TRACE.toUpperCase()}-${PARENT}-01`],
    ["short trace id", `00-${TRACE.slice(1)}-${PARENT}-01`],
    ["long parent id", `00-${TRACE}-${PARENT}0-01`],
    ["non-hex flags", `00-${TRACE}-${PARENT}-0x`],
    ["version ff", `ff-${TRACE}-${PARENT}-01`],
    ["non-hex version", `0g-${TRACE}-${PARENT}-01`],
    ["version 00 with a suffix", `00-${TRACE}-${PARENT}-01-extra`],
    ["wrong separators", `00_${TRACE}_${PARENT}_01`],
    ["two headers joined", `00-${TRACE}-${PARENT}-01, 00-${TRACE}-${PARENT}-01`],
    ["spaces around", ` 00-${TRACE}-${PARENT}-01`],
  ])("%s is invalid", (_, value) => {
    expect(parseTraceparent(value)).toBeNull();
  });

  test("a future version is read as version 00 when its start has that shape", () => {
    expect(parseTraceparent(`01-${TRACE}-${PARENT}-01`)).toEqual({ traceId: TRACE, parentSpanId: PARENT, sampled: true });
    expect(parseTraceparent(`cc-${TRACE}-${PARENT}-01-what-the-future-holds`)?.traceId).toBe(TRACE);
    expect(parseTraceparent(`cc-${TRACE}-${PARENT}-01x`)).toBeNull();
  });

  test("formatTraceparent writes what parseTraceparent reads", () => {
    const header = formatTraceparent(TRACE, PARENT, false);
    expect(header).toBe(`00-${TRACE}-${PARENT}-00`);
    expect(parseTraceparent(header)).toEqual({ traceId: TRACE, parentSpanId: PARENT, sampled: false });
  });
});

describe("boundTracestate", () => {
  test("up to 512 characters pass unchanged; empty is none", () => {
    const value = `congo=t61rcWkgMzE,rojo=00f067aa0ba902b7,${"k=" + "v".repeat(470)}`;
    expect(value.length).toBeLessThanOrEqual(512);
    expect(boundTracestate(value)).toBe(value);
    expect(boundTracestate("")).toBeNull();
    expect(boundTracestate(null)).toBeNull();
  });

  test("a longer one loses members over 128 characters first, then members from the end", () => {
    const long = `big=${"x".repeat(200)}`;
    const small = Array.from({ length: 40 }, (_, i) => `k${i}=${"v".repeat(10)}`);
    const bounded = boundTracestate([small[0], long, ...small.slice(1)].join(","))!;
    expect(bounded.length).toBeLessThanOrEqual(512);
    expect(bounded).not.toContain("big=");
    expect(bounded.startsWith("k0=vvvvvvvvvv,k1=")).toBe(true);
    expect(bounded.split(",").every((member) => /^k\d+=v{10}$/.test(member))).toBe(true);
    expect(boundTracestate(`a=${"x".repeat(600)}`)).toBeNull();
  });
});

describe("ids and sampling", () => {
  test("ids are lower-case hex of the right length and differ", () => {
    const ids = new IdGenerator();
    const spans = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const span = ids.spanId();
      expect(span).toMatch(/^[0-9a-f]{16}$/);
      spans.add(span);
    }
    expect(spans.size).toBe(1000);
    const trace = ids.traceId();
    expect(trace).toMatch(/^[0-9a-f]{32}$/);
    expect(parseTraceparent(formatTraceparent(trace, ids.spanId(), true))?.traceId).toBe(trace);
  });

  test("ratio sampling reads the end of the trace id: 0 never, 1 always, 0.5 half", () => {
    const low = "f".repeat(24) + "00000001";
    const high = "0".repeat(24) + "ffffffff";
    expect(sampledByRatio(low, 0)).toBe(false);
    expect(sampledByRatio(high, 1)).toBe(true);
    expect(sampledByRatio(low, 0.5)).toBe(true);
    expect(sampledByRatio(high, 0.5)).toBe(false);
    expect(sampledByRatio("0".repeat(24) + "7fffffff", 0.5)).toBe(true);
    expect(sampledByRatio("0".repeat(24) + "80000000", 0.5)).toBe(false);
  });
});

describe("settings and OTLP JSON", () => {
  test("defaults apply when only enabled is set; the endpoint gets /v1/traces once", () => {
    expect(tracingSettings(undefined)).toBeNull();
    expect(tracingSettings({ endpoint: "http://c:4318" })).toBeNull();
    expect(tracingSettings({ enabled: true })).toEqual({
      url: "http://localhost:4318/v1/traces",
      serviceName: "turnpike",
      sample: 1,
      headers: {},
      maxSpans: 512,
      intervalMs: 1000,
      queue: 2048,
      timeoutMs: 5000,
    });
    expect(tracingSettings({ enabled: true, endpoint: "http://c:4318/" })!.url).toBe("http://c:4318/v1/traces");
    expect(tracingSettings({ enabled: true, endpoint: "http://c:4318/v1/traces" })!.url).toBe("http://c:4318/v1/traces");
    expect(tracingSettings({ enabled: true, batch: { interval: 0 }, timeout: "0s" })).toMatchObject({ intervalMs: 1, timeoutMs: 1 });
  });

  test("a span is encoded with hex ids, string nanos, SERVER kind and an ERROR status for 5xx", () => {
    const clock = new SpanClock(1_700_000_000_123, 1000);
    const span: FinishedSpan = {
      traceId: TRACE,
      spanId: "1111111111111111",
      parentSpanId: PARENT,
      traceState: "rojo=1",
      method: "GET",
      path: "/users/7",
      route: "users",
      status: 503,
      scheme: "http",
      serverAddress: "api.example",
      clientAddress: "10.0.0.9",
      requestId: "rid-1",
      upstream: "http://10.0.0.5:3000",
      upstreamMs: 1.25,
      startedAt: 1000.5,
      endedAt: 1002.000001,
    };
    const body = JSON.parse(encodeSpans({ serviceName: "edge", serviceVersion: "1.2.3", pid: 42 }, "1.2.3", [span, { ...span, route: null, status: 404, parentSpanId: "", traceState: null, upstream: null, upstreamMs: -1 }], clock));
    const resource = body.resourceSpans[0].resource.attributes;
    expect(resource).toEqual([
      { key: "service.name", value: { stringValue: "edge" } },
      { key: "service.version", value: { stringValue: "1.2.3" } },
      { key: "process.pid", value: { intValue: "42" } },
    ]);
    const [first, second] = body.resourceSpans[0].scopeSpans[0].spans;
    expect(first).toMatchObject({
      traceId: TRACE,
      spanId: "1111111111111111",
      parentSpanId: PARENT,
      traceState: "rojo=1",
      name: "GET users",
      kind: 2,
      startTimeUnixNano: "1700000000123500000",
      endTimeUnixNano: "1700000000125000001",
      status: { code: 2 },
    });
    const attributes = Object.fromEntries(first.attributes.map((a: { key: string; value: Record<string, unknown> }) => [a.key, Object.values(a.value)[0]]));
    expect(attributes).toEqual({
      "http.request.method": "GET",
      "url.path": "/users/7",
      "url.scheme": "http",
      "http.response.status_code": "503",
      "server.address": "api.example",
      "client.address": "10.0.0.9",
      "turnpike.request_id": "rid-1",
      "http.route": "users",
      "turnpike.upstream": "http://10.0.0.5:3000",
      "turnpike.upstream.duration_ms": 1.25,
      "error.type": "503",
    });
    // A request that started before the clock was made (a reload) still gets exact nanos.
    expect(clock.unixNanos(999.9995)).toBe("1700000000122999500");
    expect(clock.unixNanos(1000)).toBe("1700000000123000000");
    expect(second.name).toBe("GET");
    expect(second.status).toEqual({});
    expect(second.parentSpanId).toBeUndefined();
    expect(second.traceState).toBeUndefined();
  });
});

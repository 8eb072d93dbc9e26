/**
 * Tracing through the binary: W3C trace context toward the upstream and one span per
 * request exported over OTLP/HTTP JSON to a small collector run by the test. Also what
 * must not happen: a collector that is down or hangs slowing or failing requests.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { basics, BINARY, freePort, startGateway, type Gateway, type Ports } from "./helpers/gateway.ts";
import { startUpstream, type TestUpstream } from "./helpers/upstream.ts";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT = "00f067aa0ba902b7";
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/;

interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  traceState?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  status: { code?: number };
  attributes: Record<string, unknown>;
  resource: Record<string, unknown>;
}

/** A stand-in OTLP/HTTP collector: records every POST /v1/traces, or never answers. */
interface Collector {
  url: string;
  /** Requests received: content type and parsed body. */
  posts: { contentType: string | null; authorization: string | null; body: any }[];
  spans(): ExportedSpan[];
  stop(): void;
}

function startCollector(mode: "record" | "hang" = "record"): Collector {
  const posts: Collector["posts"] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    async fetch(request) {
      if (mode === "hang") return new Promise<Response>(() => {});
      const url = new URL(request.url);
      if (request.method !== "POST" || url.pathname !== "/v1/traces") return new Response("not found", { status: 404 });
      posts.push({ contentType: request.headers.get("content-type"), authorization: request.headers.get("authorization"), body: await request.json() });
      return Response.json({});
    },
  });
  const flatten = (list: { key: string; value: Record<string, unknown> }[]) =>
    Object.fromEntries(list.map((kv) => [kv.key, Object.values(kv.value)[0]]));
  return {
    url: `http://127.0.0.1:${server.port}`,
    posts,
    spans: () =>
      posts.flatMap((post) =>
        post.body.resourceSpans.flatMap((rs: any) =>
          rs.scopeSpans.flatMap((ss: any) =>
            ss.spans.map((span: any) => ({ ...span, attributes: flatten(span.attributes), resource: flatten(rs.resource.attributes) })),
          ),
        ),
      ),
    stop: () => server.stop(true),
  };
}

/** Waits (bounded) until the collector holds a span of `traceId`. */
async function spanOf(collector: Collector, traceId: string, timeoutMs = 10_000): Promise<ExportedSpan> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const span = collector.spans().find((s) => s.traceId === traceId);
    if (span) return span;
    await Bun.sleep(20);
  }
  throw new Error(`no span of trace ${traceId} within ${timeoutMs} ms; got ${collector.spans().length} spans`);
}

/** The traceparent the upstream saw on its last request, split into its parts. */
function lastTraceparent(upstream: TestUpstream): { traceId: string; parentId: string; flags: string } {
  const header = upstream.seen.at(-1)!.headers.get("traceparent") ?? "";
  const match = TRACEPARENT.exec(header);
  if (!match) throw new Error(`upstream saw traceparent ${JSON.stringify(header)}`);
  return { traceId: match[1]!, parentId: match[2]!, flags: match[3]! };
}

function config(upstream: TestUpstream, tracing: string) {
  return (ports: Ports) => `${basics(ports)}
upstreams:
  backend:
    targets: [${upstream.url}]
  failing:
    type: mock
    mock: { status: 503, body: "down" }
routes:
  - name: api
    match: { paths: ["/api/*"] }
    upstream: backend
  - name: boom
    match: { paths: [/boom] }
    upstream: failing
observability:
  tracing:
${tracing}
`;
}

describe("with a collector that answers", () => {
  let collector: Collector;
  let upstream: TestUpstream;
  let gateway: Gateway;

  beforeAll(async () => {
    collector = startCollector();
    upstream = startUpstream();
    gateway = await startGateway(
      config(upstream, `    enabled: true
    endpoint: ${collector.url}
    service_name: edge-test
    headers: { authorization: "Bearer collector-token" }
    batch: { interval: 50ms }`),
      { workers: 1 },
    );
  });
  afterAll(async () => {
    expect(await gateway.stop()).toBe(0);
    upstream.stop();
    collector.stop();
  });

  test("a sampled client trace continues: the upstream's parent is the exported span", async () => {
    const before = Date.now();
    const response = await fetch(`${gateway.url}/api/items?q=1`, {
      headers: { traceparent: `00-${TRACE}-${PARENT}-01`, tracestate: "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE" },
    });
    expect(response.status).toBe(200);
    const seen = lastTraceparent(upstream);
    expect(seen.traceId).toBe(TRACE);
    expect(seen.parentId).not.toBe(PARENT);
    expect(seen.flags).toBe("01");
    expect(upstream.seen.at(-1)!.headers.get("tracestate")).toBe("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");

    const span = await spanOf(collector, TRACE);
    expect(span.spanId).toBe(seen.parentId);
    expect(span.parentSpanId).toBe(PARENT);
    expect(span.traceState).toBe("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    expect(span.name).toBe("GET api");
    expect(span.kind).toBe(2);
    expect(span.status.code ?? 0).toBe(0);
    expect(span.attributes).toMatchObject({
      "http.request.method": "GET",
      "url.path": "/api/items",
      "http.route": "api",
      "http.response.status_code": "200",
      "server.address": "127.0.0.1",
      "turnpike.request_id": response.headers.get("x-request-id"),
      "turnpike.upstream": upstream.url,
    });
    expect(String(span.attributes["client.address"])).toContain("127.0.0.1");
    expect(span.attributes["turnpike.upstream.duration_ms"]).toBeGreaterThan(0);
    expect(span.resource["service.name"]).toBe("edge-test");
    expect(span.resource["service.version"]).toMatch(/^\d+\.\d+\.\d+/);
    expect(Number(span.resource["process.pid"])).toBeGreaterThan(0);

    const start = BigInt(span.startTimeUnixNano);
    const end = BigInt(span.endTimeUnixNano);
    expect(end).toBeGreaterThanOrEqual(start);
    // The gateway and the test share the machine's clock: the span lies around the request.
    expect(start).toBeGreaterThan(BigInt(before - 1000) * 1_000_000n);
    expect(end).toBeLessThan(BigInt(Date.now() + 1000) * 1_000_000n);

    const post = collector.posts.find((p) => JSON.stringify(p.body).includes(TRACE))!;
    expect(post.contentType).toBe("application/json");
    expect(post.authorization).toBe("Bearer collector-token");
  });

  test("without a traceparent a new sampled trace starts and reaches the upstream", async () => {
    expect((await fetch(`${gateway.url}/api/new`)).status).toBe(200);
    const seen = lastTraceparent(upstream);
    expect(seen.flags).toBe("01");
    const span = await spanOf(collector, seen.traceId);
    expect(span.spanId).toBe(seen.parentId);
    expect(span.parentSpanId ?? "").toBe("");
  });

  test("an invalid traceparent is replaced by a new trace and its tracestate is dropped", async () => {
    for (const bad of [`00-${"0".repeat(32)}-${PARENT}-01`, `00-${TRACE.toUpperCase()}-${PARENT}-01`, "garbage", `00-${TRACE}-${PARENT}-01-x`]) {
      const response = await fetch(`${gateway.url}/api/bad`, { headers: { traceparent: bad, tracestate: "rojo=1" } });
      expect(response.status).toBe(200);
      const seen = lastTraceparent(upstream);
      expect(seen.traceId).not.toBe(TRACE);
      expect(seen.traceId).not.toBe("0".repeat(32));
      expect(upstream.seen.at(-1)!.headers.get("tracestate")).toBeNull();
      const span = await spanOf(collector, seen.traceId);
      expect(span.parentSpanId ?? "").toBe("");
    }
  });

  test("an unsampled parent is propagated but no span is exported", async () => {
    const unsampledTrace = "11111111111111111111111111111111";
    await fetch(`${gateway.url}/api/quiet`, { headers: { traceparent: `00-${unsampledTrace}-${PARENT}-00`, tracestate: "a=1" } });
    const seen = lastTraceparent(upstream);
    expect(seen.traceId).toBe(unsampledTrace);
    expect(seen.flags).toBe("00");
    expect(seen.parentId).not.toBe(PARENT);
    expect(upstream.seen.at(-1)!.headers.get("tracestate")).toBe("a=1");
    // Spans leave one worker in order: once a later span arrived, an earlier one would have.
    const markerTrace = "22222222222222222222222222222222";
    await fetch(`${gateway.url}/api/marker`, { headers: { traceparent: `00-${markerTrace}-${PARENT}-01` } });
    await spanOf(collector, markerTrace);
    expect(collector.spans().some((s) => s.traceId === unsampledTrace)).toBe(false);
  });

  test("a 5xx span has ERROR status; a request with no route is named by its method", async () => {
    const failing = "33333333333333333333333333333333";
    expect((await fetch(`${gateway.url}/boom`, { headers: { traceparent: `00-${failing}-${PARENT}-01` } })).status).toBe(503);
    const nowhere = "44444444444444444444444444444444";
    expect((await fetch(`${gateway.url}/nowhere`, { method: "DELETE", headers: { traceparent: `00-${nowhere}-${PARENT}-01` } })).status).toBe(404);

    const boom = await spanOf(collector, failing);
    expect(boom.name).toBe("GET boom");
    expect(boom.status.code).toBe(2);
    expect(boom.attributes["http.response.status_code"]).toBe("503");
    expect(boom.attributes["error.type"]).toBe("503");
    const missing = await spanOf(collector, nowhere);
    expect(missing.name).toBe("DELETE");
    expect(missing.status.code ?? 0).toBe(0);
    expect(missing.attributes["http.route"]).toBeUndefined();
    expect(missing.attributes["url.path"]).toBe("/nowhere");
  });

  test("a request refused before routing (414) still gets a span", async () => {
    const refused = "66666666666666666666666666666666";
    const response = await fetch(`${gateway.url}/api/${"x".repeat(9000)}`, { headers: { traceparent: `00-${refused}-${PARENT}-01` } });
    expect(response.status).toBe(414);
    const span = await spanOf(collector, refused);
    expect(span.name).toBe("GET");
    expect(span.parentSpanId).toBe(PARENT);
    expect(span.attributes["http.response.status_code"]).toBe("414");
    expect(span.attributes["turnpike.request_id"]).toBe(response.headers.get("x-request-id"));
  });
});

test("sample: 0 records no new trace but still follows a sampled parent", async () => {
  const collector = startCollector();
  const upstream = startUpstream();
  const gateway = await startGateway(
    config(upstream, `    enabled: true
    endpoint: ${collector.url}
    sample: 0
    batch: { interval: 50ms }`),
    { workers: 1 },
  );
  try {
    for (let i = 0; i < 20; i++) {
      expect((await fetch(`${gateway.url}/api/unsampled`)).status).toBe(200);
      expect(lastTraceparent(upstream).flags).toBe("00");
    }
    const sampledTrace = "55555555555555555555555555555555";
    await fetch(`${gateway.url}/api/sampled`, { headers: { traceparent: `00-${sampledTrace}-${PARENT}-01` } });
    await spanOf(collector, sampledTrace);
    expect(collector.spans().map((s) => s.traceId)).toEqual([sampledTrace]);
  } finally {
    expect(await gateway.stop()).toBe(0);
    upstream.stop();
    collector.stop();
  }
});

test("disabled, trace headers pass untouched; a reload turns tracing on and moves it to a new collector", async () => {
  const first = startCollector();
  const second = startCollector();
  const upstream = startUpstream();
  const plain = config(upstream, "    enabled: false");
  const gateway = await startGateway(plain, { workers: 1 });
  const withEndpoint = (collector: Collector) =>
    config(upstream, `    enabled: true
    endpoint: ${collector.url}
    batch: { interval: 50ms }`)(gateway.ports);
  try {
    const upper = `00-${TRACE.toUpperCase()}-${PARENT}-01`;
    await fetch(`${gateway.url}/api/off`, { headers: { traceparent: upper, tracestate: "x=1" } });
    expect(upstream.seen.at(-1)!.headers.get("traceparent")).toBe(upper);
    expect(upstream.seen.at(-1)!.headers.get("tracestate")).toBe("x=1");

    gateway.writeConfig(withEndpoint(first));
    expect(await gateway.reload()).toBe("reloaded");
    const one = "77777777777777777777777777777777";
    await fetch(`${gateway.url}/api/on`, { headers: { traceparent: `00-${one}-${PARENT}-01` } });
    expect(lastTraceparent(upstream).traceId).toBe(one);
    await spanOf(first, one);

    gateway.writeConfig(withEndpoint(second));
    expect(await gateway.reload()).toBe("reloaded");
    const two = "88888888888888888888888888888888";
    await fetch(`${gateway.url}/api/moved`, { headers: { traceparent: `00-${two}-${PARENT}-01` } });
    await spanOf(second, two);
    expect(first.spans().some((s) => s.traceId === two)).toBe(false);
    expect(second.spans().some((s) => s.traceId === one)).toBe(false);
  } finally {
    expect(await gateway.stop()).toBe(0);
    upstream.stop();
    first.stop();
    second.stop();
  }
});

test("spans still queued are sent when the gateway stops (SIGTERM)", async () => {
  const collector = startCollector();
  const upstream = startUpstream();
  const gateway = await startGateway(
    config(upstream, `    enabled: true
    endpoint: ${collector.url}
    batch: { interval: 1h, max_spans: 512 }`),
    { workers: 2 },
  );
  try {
    for (let i = 0; i < 6; i++) expect((await fetch(`${gateway.url}/api/${i}`)).status).toBe(200);
    await Bun.sleep(100);
    // Neither the interval nor a full batch has come: nothing is sent yet.
    expect(collector.spans()).toHaveLength(0);
    expect(await gateway.stop()).toBe(0);
    expect(collector.spans().map((s) => s.attributes["url.path"]).sort()).toEqual(["/api/0", "/api/1", "/api/2", "/api/3", "/api/4", "/api/5"]);
  } finally {
    upstream.stop();
    collector.stop();
  }
});

test("a wrong tracing section is a config error naming each key", () => {
  const dir = mkdtempSync(join(tmpdir(), "turnpike-tracing-"));
  const file = join(dir, "turnpike.yaml");
  writeFileSync(
    file,
    `listeners:
  - port: 8080
upstreams:
  a:
    targets: [http://127.0.0.1:1]
routes:
  - name: r
    upstream: a
observability:
  tracing:
    enabled: true
    sample: 1.5
    endpoint: collector:4318
    batch: { interval: soon }
    colour: blue
`,
  );
  const run = Bun.spawnSync([BINARY, "validate", file], { stdio: ["ignore", "pipe", "pipe"] });
  expect(run.exitCode).toBe(1);
  const errors = run.stderr.toString() + run.stdout.toString();
  expect(errors).toContain("observability.tracing.sample: must be <= 1 (line 12");
  expect(errors).toContain('observability.tracing.endpoint: "collector:4318" is not valid: an http:// or https:// URL');
  expect(errors).toContain("observability.tracing.batch.interval: must be a duration");
  expect(errors).toContain("observability.tracing.colour: unknown key");
  expect(errors).toContain("4 error(s).");
});

describe("a collector that is down or hangs costs spans, never requests", () => {
  for (const kind of ["unreachable", "hanging"] as const) {
    test(`${kind} collector`, async () => {
      const hanging = kind === "hanging" ? startCollector("hang") : null;
      const endpoint = hanging ? hanging.url : `http://127.0.0.1:${freePort()}`;
      const upstream = startUpstream();
      const gateway = await startGateway(
        config(upstream, `    enabled: true
    endpoint: ${endpoint}
    timeout: 300ms
    queue: 16
    batch: { interval: 100ms, max_spans: 8 }`),
        { workers: 1 },
      );
      try {
        const pids = ((await (await fetch(`${gateway.adminUrl}/status`)).json()) as { workers: { pid: number }[] }).workers.map((w) => w.pid);
        const startedAt = performance.now();
        let slowest = 0;
        for (let i = 0; i < 300; i++) {
          const sent = performance.now();
          const response = await fetch(`${gateway.url}/api/${i}`);
          expect(response.status).toBe(200);
          await response.text();
          slowest = Math.max(slowest, performance.now() - sent);
        }
        const elapsed = performance.now() - startedAt;
        // A request never waits for an export (each export may take 300 ms here).
        expect(slowest).toBeLessThan(250);
        await Bun.sleep(450);
        expect((await fetch(`${gateway.adminUrl}/readyz`)).status).toBe(200);
        const after = ((await (await fetch(`${gateway.adminUrl}/status`)).json()) as { workers: { pid: number }[] }).workers.map((w) => w.pid);
        expect(after).toEqual(pids);

        const drops = gateway
          .logs()
          .split("\n")
          .filter((line) => line.includes('"msg":"spans dropped"'))
          .map((line) => JSON.parse(line) as { queue_full: number; export_failed: number; last_error?: string });
        expect(drops.length).toBeGreaterThan(0);
        // At most one line per interval (100 ms), not one per span.
        expect(drops.length).toBeLessThanOrEqual(Math.ceil((elapsed + 450) / 100) + 2);
        const total = drops.reduce((n, d) => n + d.queue_full + d.export_failed, 0);
        expect(total).toBeGreaterThan(0);
        expect(total).toBeLessThanOrEqual(300);
        if (hanging) expect(drops.some((d) => d.last_error?.includes("no answer within 300 ms"))).toBe(true);
        else expect(drops.some((d) => d.export_failed > 0)).toBe(true);

        // Stopping waits for at most one export timeout, not for the collector.
        const stopping = performance.now();
        expect(await gateway.stop()).toBe(0);
        expect(performance.now() - stopping).toBeLessThan(5_000);
      } finally {
        if (gateway.process.exitCode === null) gateway.process.kill("SIGKILL");
        upstream.stop();
        hanging?.stop();
      }
    });
  }
});

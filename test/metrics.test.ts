/**
 * Prometheus metrics through the binary: `GET /metrics` on the admin listener adds up
 * every worker process exactly, keeps totals across reloads, rolling restarts and killed
 * workers, caps series, and always parses (strict exposition check, no promtool here).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { basics, freePort, startGateway, type Gateway, type Ports } from "./helpers/gateway.ts";
import { waitFor } from "./helpers/load.ts";
import { parseExposition, type Exposition } from "./helpers/prometheus.ts";
import { startUpstream, type TestUpstream } from "./helpers/upstream.ts";

const BODY = JSON.stringify({ ok: true, padding: "x".repeat(100) });

async function scrape(gateway: Gateway): Promise<Exposition> {
  const response = await fetch(`${gateway.adminUrl}/metrics`);
  const text = await response.text();
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toStartWith("text/plain; version=0.0.4");
  return parseExposition(text);
}

/** Sends `count` GETs, alternating keep-alive and new connections, `parallel` at a time. */
async function send(url: string, count: number, parallel = 8, init: RequestInit = {}): Promise<number[]> {
  const statuses: number[] = [];
  let next = 0;
  const loop = async () => {
    while (next < count) {
      const i = next++;
      const headers = new Headers(init.headers);
      if (i % 2 === 1) headers.set("connection", "close");
      const response = await fetch(url, { ...init, headers });
      await response.arrayBuffer();
      statuses.push(response.status);
    }
  };
  await Promise.all(Array.from({ length: parallel }, loop));
  return statuses;
}

describe("merged over workers", () => {
  let upstream: TestUpstream;
  let gateway: Gateway;
  /** Nothing listens here: calls to it fail without a response. */
  const deadPort = freePort();
  const config = (extraRoute: string) => (ports: Ports) => `${basics(ports)}
upstreams:
  backend:
    targets: [{ url: "${upstream.url}" }]
  dead:
    targets: [{ url: "http://127.0.0.1:${deadPort}" }]
  broken:
    type: mock
    mock: { status: 503, json: { down: true } }
routes:
  - name: api
    match: { paths: ["/api/*"] }
    upstream: backend
  - name: broken
    match: { paths: [/broken] }
    upstream: broken
  - name: dead
    match: { paths: [/dead] }
    upstream: dead
${extraRoute}`;
  const requestsOf = (parsed: Exposition) => parsed.sum("turnpike_http_requests_total");

  beforeAll(async () => {
    upstream = startUpstream(() => new Response(BODY, { headers: { "content-type": "application/json" } }));
    gateway = await startGateway(config(""), { workers: 3 });
  });
  afterAll(async () => {
    expect(await gateway.stop()).toBe(0);
    upstream.stop();
  });

  test("the embedded store is available: one gauge of 1 for the node (not one per worker), and in GET /status", async () => {
    const parsed = await scrape(gateway);
    const samples = parsed.find("turnpike_store_available");
    expect(samples).toEqual([{ name: "turnpike_store_available", labels: { type: "embedded" }, value: 1 }]);
    expect(parsed.families.get("turnpike_store_available")!.type).toBe("gauge");
    const status = (await (await fetch(`${gateway.adminUrl}/status`)).json()) as { store: unknown };
    expect(status.store).toEqual({ type: "embedded", available: true });
  });

  test("N requests spread over the workers count exactly N, with routes, methods and status classes", async () => {
    const before = await scrape(gateway);
    expect(before.sum("turnpike_workers_scraped")).toBe(3);
    expect(before.sum("turnpike_workers")).toBe(3);
    const n = 600;
    const statuses = await send(`${gateway.url}/api/items`, n, 12);
    expect(statuses.filter((s) => s === 200).length).toBe(n);
    await send(`${gateway.url}/broken`, 7, 2);
    await send(`${gateway.url}/nowhere`, 5, 2);
    await send(`${gateway.url}/api/x`, 3, 1, { method: "POST", body: "hello", headers: { "content-type": "text/plain" } });
    await send(`${gateway.url}/api/x`, 2, 1, { method: "PURGE" });
    const deadStatuses = await send(`${gateway.url}/dead`, 4, 1);
    expect(deadStatuses.every((s) => s >= 500)).toBe(true);

    const parsed = await scrape(gateway);
    expect(parsed.sum("turnpike_http_requests_total", { route: "api", method: "GET", status_class: "2xx" })).toBe(n);
    expect(parsed.sum("turnpike_http_requests_total", { route: "broken", method: "GET", status_class: "5xx" })).toBe(7);
    expect(parsed.sum("turnpike_http_requests_total", { route: "none", method: "GET", status_class: "4xx" })).toBe(5);
    expect(parsed.sum("turnpike_http_requests_total", { route: "api", method: "POST", status_class: "2xx" })).toBe(3);
    expect(parsed.sum("turnpike_http_requests_total", { route: "api", method: "other", status_class: "2xx" })).toBe(2);
    expect(parsed.sum("turnpike_http_requests_total", { route: "dead", status_class: "5xx" })).toBe(4);
    expect(requestsOf(parsed)).toBe(n + 21);
    // Upstream calls by upstream and target.
    expect(parsed.sum("turnpike_upstream_requests_total", { upstream: "backend", target: upstream.url, outcome: "response" })).toBe(n + 5);
    expect(parsed.sum("turnpike_upstream_requests_total", { upstream: "backend", outcome: "error" })).toBe(0);
    expect(parsed.sum("turnpike_upstream_requests_total", { upstream: "dead", target: `http://127.0.0.1:${deadPort}`, outcome: "error" })).toBe(4);
    expect(parsed.sum("turnpike_upstream_duration_seconds_count", { route: "dead" })).toBe(0);

    // Histograms agree with the counters; the parser already checked buckets against _count.
    expect(parsed.sum("turnpike_http_request_duration_seconds_count", { route: "api" })).toBe(n + 5);
    expect(parsed.sum("turnpike_upstream_duration_seconds_count", { route: "api" })).toBe(n + 5);
    expect(parsed.sum("turnpike_upstream_duration_seconds_count", { route: "broken" })).toBe(0);
    expect(parsed.sum("turnpike_http_request_duration_seconds_sum", { route: "api" })).toBeGreaterThan(0);
    expect(parsed.families.get("turnpike_http_request_duration_seconds")!.type).toBe("histogram");
    // Bytes from Content-Length.
    expect(parsed.sum("turnpike_http_response_bytes_total", { route: "api" })).toBe((n + 5) * BODY.length);
    expect(parsed.sum("turnpike_http_request_bytes_total", { route: "api" })).toBe(3 * "hello".length);
    expect(parsed.sum("turnpike_http_requests_in_flight")).toBe(0);
    // Every worker and the supervisor report memory and CPU.
    const roles = parsed.find("turnpike_process_resident_memory_bytes").map((s) => s.labels.role);
    expect(roles.filter((r) => r === "worker").length).toBe(3);
    expect(roles.filter((r) => r === "supervisor").length).toBe(1);
    expect(parsed.find("turnpike_process_cpu_seconds_total").every((s) => s.value > 0)).toBe(true);
    expect(parsed.find("turnpike_build_info")).toHaveLength(1);

    // GET /status gives the same node-wide counts.
    const status = (await (await fetch(`${gateway.adminUrl}/status`)).json()) as { requests: Record<string, number> };
    expect(status.requests.total).toBe(requestsOf(parsed));
    expect(status.requests["5xx"]).toBe(7 + 4);
    expect(status.requests["4xx"]).toBe(5);
  });

  test("scrapes during an in-place reload and a rolling restart succeed and never go backwards", async () => {
    let last = requestsOf(await scrape(gateway));
    let scrapes = 0;
    let stop = false;
    const scraper = (async () => {
      while (!stop) {
        const current = requestsOf(await scrape(gateway));
        expect(current).toBeGreaterThanOrEqual(last);
        last = current;
        scrapes++;
        await Bun.sleep(5);
      }
    })();
    const traffic = send(`${gateway.url}/api/during`, 300, 4);
    const generationBefore = (await scrape(gateway)).sum("turnpike_config_generation");
    // In place: a new route.
    gateway.writeConfig(config("  - name: extra\n    match: { paths: [/extra] }\n    upstream: broken\n")(gateway.ports));
    expect(await gateway.reload()).toBe("reloaded");
    // Rolling restart: a second listener means a new generation of workers.
    gateway.writeConfig(
      config("  - name: extra\n    match: { paths: [/extra] }\n    upstream: broken\n")(gateway.ports).replace(
        "admin:",
        `  - address: 127.0.0.1\n    port: ${gateway.ports.port2}\nadmin:`,
      ),
    );
    expect(await gateway.reload()).toBe("reloaded");
    const statuses = await traffic;
    stop = true;
    await scraper;
    expect(scrapes).toBeGreaterThan(0);
    expect(statuses.every((s) => s === 200)).toBe(true);

    // Old workers drained and sent their final snapshot: nothing was lost.
    const total = await waitFor("retired workers folded in", async () => {
      const parsed = await scrape(gateway);
      const oldWorkersGone = parsed.sum("turnpike_workers_scraped") === 3 && parsed.find("turnpike_process_resident_memory_bytes", { role: "worker" }).length === 3;
      return oldWorkersGone ? parsed : null;
    }, 10_000, 50);
    expect(total.sum("turnpike_config_generation")).toBe(generationBefore + 2);
    expect(total.sum("turnpike_config_reloads_total", { result: "success" })).toBe(2);
    expect(total.sum("turnpike_http_requests_total", { route: "api" })).toBe(600 + 5 + 300);
  });

  test("a scrape right after a worker is killed succeeds and keeps the total", async () => {
    const before = await scrape(gateway);
    const pids = ((await (await fetch(`${gateway.adminUrl}/status`)).json()) as { workers: { pid: number }[] }).workers.map((w) => w.pid);
    process.kill(pids[0]!, "SIGKILL");
    const after = await scrape(gateway);
    expect(requestsOf(after)).toBe(requestsOf(before));
    const replaced = await waitFor("worker replaced", async () => {
      const parsed = await scrape(gateway);
      return parsed.sum("turnpike_worker_restarts_total") === 1 && parsed.sum("turnpike_workers_scraped") === 3 ? parsed : null;
    }, 10_000, 50);
    expect(requestsOf(replaced)).toBe(requestsOf(before));
    // The replacement counts again.
    await send(`${gateway.url}/api/more`, 30, 3);
    expect(requestsOf(await scrape(gateway))).toBe(requestsOf(before) + 30);
  });
});

describe("series cap and switch", () => {
  let gateway: Gateway;
  const config = (metrics: string) => (ports: Ports) => `${basics(ports)}
observability:
  metrics: ${metrics}
upstreams:
  ok:
    type: mock
    mock: { status: 200, json: "ok" }
routes:
  - name: one
    match: { paths: [/one] }
    upstream: ok
  - name: two
    match: { paths: [/two] }
    upstream: ok
  - name: three
    match: { paths: [/three] }
    upstream: ok
`;

  beforeAll(async () => {
    // The cap is per worker process; one worker makes the kept series predictable.
    gateway = await startGateway(config("{ max_series_per_metric: 2 }"), { workers: 1 });
  });
  afterAll(async () => {
    expect(await gateway.stop()).toBe(0);
  });

  test("label sets beyond max_series_per_metric are dropped and counted", async () => {
    for (const path of ["/one", "/two", "/three", "/three"]) expect((await fetch(`${gateway.url}${path}`)).status).toBe(200);
    const parsed = await scrape(gateway);
    expect(parsed.find("turnpike_http_requests_total").map((s) => s.labels.route)).toEqual(["one", "two"]);
    expect(parsed.sum("turnpike_metrics_series_dropped_total", { metric: "turnpike_http_requests_total" })).toBe(1);
    expect(parsed.sum("turnpike_metrics_series_dropped_total", { metric: "turnpike_http_request_duration_seconds" })).toBe(1);
  });

  test("metrics can be switched off by a reload", async () => {
    gateway.writeConfig(config("{ enabled: false }")(gateway.ports));
    expect(await gateway.reload()).toBe("reloaded");
    const response = await fetch(`${gateway.adminUrl}/metrics`);
    expect(response.status).toBe(404);
    await response.text();
  });
});

describe("auth rejections", () => {
  let gateway: Gateway;

  beforeAll(async () => {
    const keyHash = `sha256:${new Bun.CryptoHasher("sha256").update("metrics-key-1").digest("hex")}`;
    gateway = await startGateway(
      (ports) => `${basics(ports)}
consumers:
  - name: app
    credentials:
      - type: api_key
        key_hash: ${keyHash}
upstreams:
  ok:
    type: mock
    mock: { status: 200, json: "ok" }
routes:
  - name: private
    match: { paths: [/private] }
    upstream: ok
    policies:
      - type: api-key
        config: { header: apikey }
  - name: partners
    match: { paths: [/partners] }
    upstream: ok
    policies:
      - type: ip-restriction
        config: { allow: [203.0.113.0/24] }
`,
      { workers: 2 },
    );
  });
  afterAll(async () => {
    expect(await gateway.stop()).toBe(0);
  });

  test("refusals count by route, the policy that answered and reason, over both workers; accepted requests do not", async () => {
    expect(await send(`${gateway.url}/private`, 4)).toEqual([401, 401, 401, 401]);
    expect(await send(`${gateway.url}/private`, 6, 3, { headers: { apikey: "wrong-key" } })).toEqual(Array(6).fill(401));
    expect(await send(`${gateway.url}/private`, 5, 2, { headers: { apikey: "metrics-key-1" } })).toEqual(Array(5).fill(200));
    expect(await send(`${gateway.url}/partners`, 3, 2)).toEqual([403, 403, 403]);
    const parsed = await scrape(gateway);
    const samples = parsed
      .find("turnpike_auth_rejections_total")
      .map((s) => `${s.labels.route} ${s.labels.policy} ${s.labels.reason} ${s.value}`)
      .sort();
    expect(samples).toEqual(["partners ip-restriction forbidden 3", "private api-key invalid 6", "private api-key missing 4"]);
  });
});

/**
 * Rate limits through the built binary with several worker processes sharing one
 * embedded store: exact admission under a concurrent burst, the 429 answer and its
 * headers, quotas that survive a restart, the rejection metric, and config errors.
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { basics, BINARY, startGateway, type Gateway, type Ports } from "./helpers/gateway.ts";
import { expectProblem } from "./helpers/problem.ts";
import { parseExposition } from "./helpers/prometheus.ts";
import { startUpstream } from "./helpers/upstream.ts";

// These tests start several gateways with several workers each.
setDefaultTimeout(60_000);

const running: Gateway[] = [];
afterEach(() => {
  for (const gateway of running.splice(0)) if (gateway.process.exitCode === null) gateway.process.kill("SIGKILL");
});

async function start(template: (ports: Ports) => string, workers: number): Promise<Gateway> {
  const gateway = await startGateway(template, { workers });
  running.push(gateway);
  return gateway;
}

function limited(policy: string, extra = "") {
  return (ports: Ports) => `${basics(ports)}${extra}
upstreams:
  backend: { type: mock, mock: { status: 200, body: ok } }
routes:
  - name: limited
    match: { paths: [/limited] }
    upstream: backend
    policies:
      - type: rate-limit
        config:
${policy}
`;
}

/** Sends `count` requests at once over separate connections, so the kernel spreads them over workers. */
async function burst(url: string, count: number, headers: Record<string, string> = {}): Promise<number[]> {
  const responses = await Promise.all(
    Array.from({ length: count }, () => fetch(url, { headers: { ...headers, connection: "close" } }).then(async (r) => (await r.arrayBuffer(), r.status))),
  );
  return responses;
}

describe("rate limits across worker processes", () => {
  test("a concurrent burst of 3N requests against a limit of N admits exactly N (3 workers, each algorithm)", async () => {
    const n = 20;
    const gateway = await start(
      (ports) => `${basics(ports)}
upstreams:
  backend: { type: mock, mock: { status: 200, body: ok } }
routes:
${["fixed_window", "sliding_window", "sliding_log", "token_bucket"]
  .map(
    (algorithm) => `  - name: ${algorithm}
    match: { paths: [/${algorithm}] }
    upstream: backend
    policies:
      - type: rate-limit
        config:
          key: route
          limits: [{ requests: ${n}, window: 24h, algorithm: ${algorithm} }]
`,
  )
  .join("")}
  - name: quota
    match: { paths: [/quota] }
    upstream: backend
    policies:
      - type: rate-limit
        config:
          key: route
          limits: [{ requests: ${n}, period: month }]
store:
  embedded: { state_dir: ${mkdtempSync(join(tmpdir(), "turnpike-state-"))} }
`,
      3,
    );
    for (const path of ["fixed_window", "sliding_window", "sliding_log", "token_bucket", "quota"]) {
      const statuses = await burst(`${gateway.url}/${path}`, 3 * n);
      expect({ path, admitted: statuses.filter((s) => s === 200).length, refused: statuses.filter((s) => s === 429).length }).toEqual({
        path,
        admitted: n,
        refused: 2 * n,
      });
    }
    // Each refusal is counted once in the node's metrics, by route and reason.
    const metrics = parseExposition(await (await fetch(`${gateway.adminUrl}/metrics`)).text());
    const rejections = metrics.families.get("turnpike_rate_limit_rejections_total");
    const total = (route: string) => rejections?.samples.find((s) => s.labels.route === route && s.labels.reason === "limit")?.value;
    expect(total("fixed_window")).toBe(2 * n);
    expect(total("quota")).toBe(2 * n);
  });

  test("429 is problem+json with Retry-After; every answer carries RateLimit-Policy and RateLimit; legacy headers on request", async () => {
    const gateway = await start(
      limited(`          key: [client_ip, header:x-tenant]
          headers: both
          limits:
            - { requests: 3, window: 1h }
            - { name: hourly, requests: 100, window: 1h, algorithm: sliding_window }`),
      2,
    );
    const seen: Response[] = [];
    for (let i = 0; i < 4; i++) seen.push(await fetch(`${gateway.url}/limited`, { headers: { "x-tenant": "a" } }));
    expect(seen.map((r) => r.status)).toEqual([200, 200, 200, 429]);
    for (const response of seen) expect(response.headers.get("ratelimit-policy")).toBe('"3-per-1h";q=3;w=3600, "hourly";q=100;w=3600');
    expect(seen[0]!.headers.get("ratelimit")).toMatch(/^"3-per-1h";r=2;t=\d+, "hourly";r=99;t=\d+$/);
    expect(seen[2]!.headers.get("ratelimit")).toMatch(/^"3-per-1h";r=0;t=\d+, "hourly";r=97;t=\d+$/);
    expect(seen[0]!.headers.get("x-ratelimit-limit")).toBe("3");
    expect(seen[0]!.headers.get("x-ratelimit-remaining")).toBe("2");
    const refused = seen[3]!;
    const retryAfter = Number(refused.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(3600);
    // Retry-After and the refusing limit's reset name the same moment.
    expect(refused.headers.get("ratelimit")).toBe(`"3-per-1h";r=0;t=${retryAfter}`);
    const body = await expectProblem(refused, 429);
    expect(body.type).toBe("urn:turnpike:problem:rate-limited");
    // Another tenant from the same address has its own counter.
    expect((await fetch(`${gateway.url}/limited`, { headers: { "x-tenant": "b" } })).status).toBe(200);
  });

  test("a daily quota keeps its count across a restart of the gateway", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), "turnpike-quota-"));
    const template = limited(
      `          key: header:x-customer
          limits: [{ requests: 5, period: day, time_zone: Europe/Berlin }]`,
      `store:\n  embedded: { state_dir: ${stateDir} }\n`,
    );
    const first = await start(template, 2);
    const before = await burst(`${first.url}/limited`, 3, { "x-customer": "acme" });
    expect(before).toEqual([200, 200, 200]);
    expect(await first.stop()).toBe(0);

    const second = await start(template, 2);
    const after: number[] = [];
    for (let i = 0; i < 4; i++) after.push((await fetch(`${second.url}/limited`, { headers: { "x-customer": "acme" } })).status);
    expect(after).toEqual([200, 200, 429, 429]);
    const last = await fetch(`${second.url}/limited`, { headers: { "x-customer": "acme" } });
    expect(last.headers.get("ratelimit")).toMatch(/^"5-per-day";r=0;t=\d+$/);
    expect(second.logs()).toContain("durable counters restored");
  });
});

describe("concurrency limits and leaky buckets through the binary", () => {
  test("a concurrency limit per customer refuses what exceeds it while requests are in flight, and frees slots as they end (2 workers)", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const upstream = startUpstream(async () => {
      await gate;
      return new Response("slow");
    });
    try {
      const gateway = await start(
        (ports) => `${basics(ports)}
upstreams:
  slow: { targets: [${upstream.url}] }
routes:
  - name: slow
    match: { paths: [/slow] }
    upstream: slow
    policies:
      - type: rate-limit
        config:
          key: header:x-customer
          limits: [{ requests: 2, algorithm: concurrency }]
`,
        2,
      );
      const held = [0, 1].map(() => fetch(`${gateway.url}/slow`, { headers: { "x-customer": "acme", connection: "close" } }));
      for (let i = 0; i < 200 && upstream.seen.length < 2; i++) await Bun.sleep(25);
      expect(upstream.seen).toHaveLength(2);
      const refused = await fetch(`${gateway.url}/slow`, { headers: { "x-customer": "acme", connection: "close" } });
      expect(refused.headers.get("retry-after")).toBe("1");
      expect(refused.headers.get("ratelimit")).toBe('"2-concurrent";r=0');
      await expectProblem(refused, 429);
      // Another customer has its own slots.
      const other = fetch(`${gateway.url}/slow`, { headers: { "x-customer": "other", connection: "close" } });
      for (let i = 0; i < 200 && upstream.seen.length < 3; i++) await Bun.sleep(25);
      expect(upstream.seen).toHaveLength(3);
      release();
      expect((await Promise.all([...held, other])).map((r) => r.status)).toEqual([200, 200, 200]);
      // Slots were given back when the responses were handed over.
      await Bun.sleep(200);
      const again = await fetch(`${gateway.url}/slow`, { headers: { "x-customer": "acme" } });
      expect(again.status).toBe(200);
      expect(again.headers.get("ratelimit")).toBe('"2-concurrent";r=1');
    } finally {
      release();
      upstream.stop();
    }
  });

  test("a leaky bucket holds requests until their turn and refuses those that would wait longer than max_wait", async () => {
    const gateway = await start(limited(`          key: route
          limits: [{ requests: 1, window: 5s, algorithm: leaky_bucket, max_wait: 6s }]`), 2);
    const started = performance.now();
    const statuses = await burst(`${gateway.url}/limited`, 3);
    const elapsed = performance.now() - started;
    // Departures 5 s apart: the first at once, the second held 5 s, the third would wait
    // about 10 s (more than max_wait, as long as the three arrive within 4 s of each other).
    expect(statuses.sort()).toEqual([200, 200, 429]);
    expect(elapsed).toBeGreaterThanOrEqual(4900);
  });
});

describe("rate-limit config errors name the path and line", () => {
  function validate(limitsYaml: string, key = "client_ip"): string {
    const dir = mkdtempSync(join(tmpdir(), "turnpike-rl-config-"));
    const file = join(dir, "bad.yaml");
    writeFileSync(
      file,
      `listeners: [{ port: 8080 }]
upstreams:
  backend: { type: mock }
routes:
  - name: r
    match: { paths: [/] }
    upstream: backend
    policies:
      - type: rate-limit
        config:
          key: ${key}
          limits:
${limitsYaml}`,
    );
    const run = Bun.spawnSync([BINARY, "validate", file], { stdio: ["ignore", "pipe", "pipe"] });
    expect(run.exitCode).toBe(1);
    return run.stdout.toString() + run.stderr.toString();
  }
  const at = "routes[0].policies[0].config";

  test("zero and negative limits and unknown periods (schema)", () => {
    const output = validate(`            - { requests: 0, window: 1s }
            - { requests: -5, window: 1m }
            - { requests: 10, period: week }
`);
    expect(output).toContain(`${at}.limits[0].requests: must be >= 1 (line 13`);
    expect(output).toContain(`${at}.limits[1].requests: must be >= 1 (line 14`);
    expect(output).toContain(`${at}.limits[2].period: must be one of: "day", "month" (line 15`);
  });

  test("zero windows, unknown key sources, missing windows, unknown time zones, too large exact logs", () => {
    const output = validate(
      `            - { requests: 10, window: 0s }
            - { requests: 10 }
            - { requests: 10, period: day, time_zone: Mars/Olympus }
            - { requests: 500, window: 1s, algorithm: sliding_log }
            - { requests: 5, window: 1s, burst: 10 }
`,
      "[client_ip, cookie:session]",
    );
    expect(output).toContain(`${at}.key[1]: unknown key source "cookie:session" (expected one of: route, consumer, client_ip, header:<name>, claim:<name>) (line 11`);
    expect(output).toContain(`${at}.limits[0].window: must be longer than 0 (line 13`);
    expect(output).toContain(`${at}.limits[1]: a fixed_window limit needs a window (line 14`);
    expect(output).toContain(`${at}.limits[2].time_zone: unknown time zone "Mars/Olympus" (an IANA name such as Europe/Berlin) (line 15`);
    expect(output).toContain(`${at}.limits[3].requests: a sliding_log allows at most 100 requests (use sliding_window for more) (line 16`);
    expect(output).toContain(`${at}.limits[4].burst: only a token_bucket has a burst (line 17`);
  });
});

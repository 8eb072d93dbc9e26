/**
 * Faulty upstreams through the built binary: refused connections, resets mid-body, 500s,
 * hangs and slow answers. Every case ends in a correct 502/503/504 or a successful retry;
 * retries stay within their budget; circuit breakers, ejections and least-connections
 * counts are node-wide (seen by both workers of `--workers 2`).
 */
import { afterAll, describe, expect, test as bunTest } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { basics, freePort, startGateway, type Gateway } from "./helpers/gateway.ts";
import { startRawUpstream } from "./helpers/raw-upstream.ts";
import { startUpstream, type TestUpstream } from "./helpers/upstream.ts";
import { waitFor } from "./helpers/wait.ts";

/** Tests here start gateways and faulty upstreams: generous bounds for a loaded machine. */
const test = (name: string, body: () => Promise<void>) => bunTest(name, body, 60_000);

const running: { stop(): unknown }[] = [];
afterAll(async () => {
  for (const thing of running.reverse()) await thing.stop();
});

function upstream(handler?: (request: Request) => Response | Promise<Response>): TestUpstream {
  const started = startUpstream(handler);
  running.push(started);
  return started;
}

/** Starts the binary with upstream `api` (the given block) behind route `/*`, and an access log. */
async function start(upstreamBlock: string, workers = 1, routeExtra = ""): Promise<Gateway> {
  const gateway = await startGateway(
    (ports) => `${basics(ports)}
upstreams:
  api:
${upstreamBlock}
routes:
  - name: all
    match: { paths: ["/*"] }
    upstream: api
${routeExtra}
observability:
  access_log: { enabled: true, path: access.log }
`,
    { workers },
  );
  running.push(gateway);
  return gateway;
}

async function get(gateway: Gateway, path = "/", init: RequestInit = {}): Promise<{ status: number; body: string; headers: Headers }> {
  const response = await fetch(gateway.url + path, { ...init, headers: { connection: "close", ...(init.headers as Record<string, string>) } });
  return { status: response.status, body: await response.text(), headers: response.headers };
}

/** The access log lines so far, once at least `count` are written. */
async function accessLines(gateway: Gateway, count: number): Promise<{ status: number; retries: number; upstream: string | null }[]> {
  const path = join(gateway.dir, "access.log");
  return waitFor(`${count} access log lines`, () => {
    if (!existsSync(path)) return undefined;
    const lines = readFileSync(path, "utf8").trimEnd().split("\n").filter(Boolean).map((line) => JSON.parse(line));
    return lines.length >= count ? lines : undefined;
  });
}

const problemType = async (response: { body: string }) => (JSON.parse(response.body) as { type: string }).type;

describe("retries", () => {
  test("a refused connection is retried on another target; the access log counts the retry", async () => {
    const ok = upstream(() => new Response("ok"));
    const gateway = await start(`    balancer: round_robin
    targets: ["127.0.0.1:${freePort()}", ${ok.url}]
    retries: { attempts: 2, backoff: 1ms, max_backoff: 5ms, budget_min_per_second: 100 }
`);
    const results = [];
    for (let i = 0; i < 6; i++) results.push(await get(gateway));
    expect(results.map((r) => `${r.status} ${r.body}`)).toEqual(Array(6).fill("200 ok"));
    const lines = await accessLines(gateway, 6);
    const retried = lines.filter((line) => line.retries === 1);
    expect(retried.length).toBeGreaterThanOrEqual(3);
    expect(lines.every((line) => line.retries <= 1 && line.upstream === ok.url)).toBe(true);
    const metrics = await (await fetch(`${gateway.adminUrl}/metrics`)).text();
    expect(metrics).toContain(`turnpike_upstream_retries_total{upstream="api"} ${retried.length}`);
    await gateway.stop();
  });

  test("a POST is not retried (it may have had an effect), unless its body was kept within buffer_body", async () => {
    const seen: string[] = [];
    const ok = upstream(async (request) => {
      seen.push(await request.text());
      return new Response("stored");
    });
    const closed = freePort();
    const plain = await start(`    balancer: round_robin
    targets: ["127.0.0.1:${closed}", ${ok.url}]
    retries: { attempts: 2, backoff: 1ms, max_backoff: 5ms }
`);
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await get(plain, "/", { method: "POST", body: "payload" })).status);
    expect(statuses.sort()).toEqual([200, 200, 502, 502]);
    await plain.stop();

    const buffered = await start(`    balancer: round_robin
    targets: ["127.0.0.1:${closed}", ${ok.url}]
    retries: { attempts: 2, methods: [GET, POST], buffer_body: 1KiB, backoff: 1ms, max_backoff: 5ms, budget_min_per_second: 100 }
`);
    seen.length = 0;
    for (let i = 0; i < 4; i++) {
      const response = await get(buffered, "/", { method: "POST", body: `payload-${i}` });
      expect(`${response.status} ${response.body}`).toBe("200 stored");
    }
    expect(seen).toEqual(["payload-0", "payload-1", "payload-2", "payload-3"]);
    // An empty body is kept too (and sent as none).
    for (let i = 0; i < 2; i++) expect((await get(buffered, "/", { method: "POST", body: "" })).status).toBe(200);
    // A body above the cap streams once and is not retried.
    const big = "x".repeat(4096);
    const bigStatuses = [];
    for (let i = 0; i < 2; i++) bigStatuses.push((await get(buffered, "/", { method: "POST", body: big })).status);
    expect(bigStatuses.sort()).toEqual([200, 502]);
    await buffered.stop();
  });

  test("configured statuses are retried on another target; others pass through", async () => {
    const busy = upstream(() => new Response("busy", { status: 503 }));
    const broken = upstream(() => new Response("broken", { status: 500 }));
    const ok = upstream(() => new Response("ok"));
    const gateway = await start(`    balancer: round_robin
    targets: [${busy.url}, ${ok.url}]
    retries: { attempts: 1, backoff: 1ms, max_backoff: 2ms, budget_min_per_second: 100 }
`);
    for (let i = 0; i < 4; i++) expect((await get(gateway)).body).toBe("ok");
    await gateway.stop();
    const passthrough = await start(`    targets: [${broken.url}]
    retries: { attempts: 2, backoff: 1ms, max_backoff: 2ms }
`);
    const response = await get(passthrough);
    expect(`${response.status} ${response.body}`).toBe("500 broken");
    expect(broken.seen.length).toBe(1);
    await passthrough.stop();
  });

  test("the retry budget keeps retries to its share of requests", async () => {
    const ok = upstream(() => new Response("ok"));
    const gateway = await start(`    balancer: round_robin
    targets: ["127.0.0.1:${freePort()}", ${ok.url}]
    retries: { attempts: 3, backoff: 1ms, max_backoff: 2ms, budget_ratio: 0.1, budget_min_per_second: 0 }
`);
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push((await get(gateway)).status);
    const lines = await accessLines(gateway, 20);
    const retries = lines.reduce((sum, line) => sum + line.retries, 0);
    expect(retries).toBeLessThanOrEqual(2);
    expect(retries).toBeGreaterThanOrEqual(1);
    expect(statuses.filter((s) => s === 502).length).toBeGreaterThanOrEqual(5);
    expect(statuses.every((s) => s === 200 || s === 502)).toBe(true);
    await gateway.stop();
  });
});

describe("faults end in a correct status or a successful retry", () => {
  test("reset mid-body: 502 alone, the other target's answer with retries", async () => {
    const resetting = startRawUpstream((_request, reply) => {
      reply.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nContent-Type: text/plain\r\n\r\nonly a part");
      reply.end();
    });
    running.push(resetting);
    const alone = await start(`    targets: [${resetting.url}]\n`);
    const response = await get(alone);
    expect(response.status).toBe(502);
    expect(await problemType(response)).toBe("urn:turnpike:problem:upstream-unreachable");
    await alone.stop();

    const ok = upstream(() => new Response("whole"));
    const withRetries = await start(`    balancer: round_robin
    targets: [${resetting.url}, ${ok.url}]
    retries: { attempts: 1, backoff: 1ms, max_backoff: 2ms, budget_min_per_second: 100 }
`);
    for (let i = 0; i < 4; i++) expect(await get(withRetries).then((r) => `${r.status} ${r.body}`)).toBe("200 whole");
    await withRetries.stop();
  });

  test("a hanging target: 504 after response_headers, or a retry elsewhere when timeouts are retried", async () => {
    const hanging = startRawUpstream(() => {});
    running.push(hanging);
    const ok = upstream(() => new Response("ok"));
    const alone = await start(`    targets: [${hanging.url}]
    timeouts: { response_headers: 300ms }
`);
    const response = await get(alone);
    expect(response.status).toBe(504);
    expect(await problemType(response)).toBe("urn:turnpike:problem:upstream-timeout");
    await alone.stop();

    const withRetries = await start(`    balancer: round_robin
    targets: [${hanging.url}, ${ok.url}]
    timeouts: { response_headers: 300ms }
    retries: { attempts: 1, on: [connect_failure, reset, timeout], backoff: 1ms, max_backoff: 2ms, budget_min_per_second: 100 }
`);
    for (let i = 0; i < 2; i++) expect(await get(withRetries).then((r) => `${r.status} ${r.body}`)).toBe("200 ok");
    await withRetries.stop();
  });

  test("a slow target within the timeouts answers normally", async () => {
    const slow = upstream(async () => {
      await Bun.sleep(300);
      return new Response("late but fine");
    });
    const gateway = await start(`    targets: [${slow.url}]
    timeouts: { response_headers: 5s }
    circuit_breaker: { failures: 1 }
    health_check:
      passive: { consecutive_failures: 1 }
`);
    for (let i = 0; i < 2; i++) expect(await get(gateway).then((r) => `${r.status} ${r.body}`)).toBe("200 late but fine");
    await gateway.stop();
  });
});

describe("node-wide state with two workers", () => {
  test("a circuit breaker opens on failures from both workers; then both answer 503 with Retry-After without calling the target", async () => {
    const failing = upstream(() => new Response("oops", { status: 500 }));
    const gateway = await start(
      `    targets: [${failing.url}]
    circuit_breaker: { failures: 3, window: 60s, open_for: 30s }
`,
      2,
    );
    for (let i = 0; i < 3; i++) expect((await get(gateway)).status).toBe(500);
    expect(failing.seen.length).toBe(3);
    for (let i = 0; i < 12; i++) {
      const response = await get(gateway);
      expect(response.status).toBe(503);
      expect(response.headers.get("content-type")).toBe("application/problem+json");
      expect(await problemType(response)).toBe("urn:turnpike:problem:circuit-open");
      const retryAfter = Number(response.headers.get("retry-after"));
      expect(retryAfter).toBeGreaterThan(0);
      expect(retryAfter).toBeLessThanOrEqual(30);
    }
    // Not one request reached the target once the circuit opened, whichever worker took it.
    expect(failing.seen.length).toBe(3);
    const view = (await (await fetch(`${gateway.adminUrl}/upstreams`)).json()) as { upstreams: { api: { targets: { circuit: string }[] } } };
    expect(view.upstreams.api.targets[0]!.circuit).toBe("open");
    expect(gateway.logs().split('"msg":"circuit opened"').length - 1).toBe(1);
    const metrics = await (await fetch(`${gateway.adminUrl}/metrics`)).text();
    expect(metrics).toContain(`turnpike_upstream_circuit_state{upstream="api",target="${failing.url}"} 1`);
    await gateway.stop();
  });

  test("an upstream-wide circuit counts the failures of all its targets and refuses for all of them", async () => {
    const first = upstream(() => new Response("down", { status: 503 }));
    const second = upstream(() => new Response("down", { status: 502 }));
    const gateway = await start(
      `    balancer: round_robin
    targets: [${first.url}, ${second.url}]
    circuit_breaker: { scope: upstream, failures: 4, window: 60s, open_for: 20s }
`,
      2,
    );
    for (let i = 0; i < 4; i++) expect((await get(gateway)).status).toBeGreaterThanOrEqual(502);
    const calls = first.seen.length + second.seen.length;
    expect(calls).toBe(4);
    for (let i = 0; i < 6; i++) {
      const response = await get(gateway);
      expect(response.status).toBe(503);
      expect(await problemType(response)).toBe("urn:turnpike:problem:circuit-open");
      expect(Number(response.headers.get("retry-after"))).toBeGreaterThan(0);
    }
    expect(first.seen.length + second.seen.length).toBe(calls);
    const view = (await (await fetch(`${gateway.adminUrl}/upstreams`)).json()) as { upstreams: { api: { circuit: string } } };
    expect(view.upstreams.api.circuit).toBe("open");
    await gateway.stop();
  });

  test("a half-open circuit lets a trial through and closes when it succeeds", async () => {
    let healthy = false;
    const flaky = upstream(() => (healthy ? new Response("back") : new Response("down", { status: 503 })));
    const gateway = await start(
      `    targets: [${flaky.url}]
    circuit_breaker: { failures: 2, open_for: 500ms, half_open_requests: 1 }
`,
      2,
    );
    for (let i = 0; i < 2; i++) expect((await get(gateway)).status).toBe(503);
    expect(await problemType(await get(gateway))).toBe("urn:turnpike:problem:circuit-open");
    healthy = true;
    await waitFor("the circuit to close", async () => (await get(gateway)).body === "back");
    for (let i = 0; i < 6; i++) expect((await get(gateway)).body).toBe("back");
    expect(gateway.logs()).toContain('"msg":"circuit closed"');
    await gateway.stop();
  });

  test("passive checks eject a failing target for every worker; traffic goes to the others", async () => {
    const bad = upstream(() => new Response("bad", { status: 502 }));
    const good = upstream(() => new Response("good"));
    const gateway = await start(
      `    balancer: round_robin
    targets: [${bad.url}, ${good.url}]
    health_check:
      passive: { consecutive_failures: 2, ejection_time: 60s }
`,
      2,
    );
    await waitFor("the bad target to be ejected", async () => {
      await get(gateway);
      const view = (await (await fetch(`${gateway.adminUrl}/upstreams`)).json()) as { upstreams: { api: { targets: { ejected: boolean }[] } } };
      return view.upstreams.api.targets[0]!.ejected;
    });
    const before = bad.seen.length;
    for (let i = 0; i < 10; i++) expect((await get(gateway)).body).toBe("good");
    expect(bad.seen.length).toBe(before);
    expect(gateway.logs().split('"msg":"target ejected"').length - 1).toBe(1);
    await gateway.stop();
  });

  test("least connections counts requests in flight on the node, not per worker", async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const holding = upstream(async () => {
      await held;
      return new Response("held");
    });
    const quick = upstream(() => new Response("quick"));
    const gateway = await start(
      `    balancer: least_connections
    targets: [${holding.url}, ${quick.url}]
`,
      2,
    );
    // Until one request sits on the holding target, ties may send requests either way.
    const pending: Promise<unknown>[] = [];
    await waitFor("a request held", async () => {
      if (holding.seen.length > 0) return true;
      pending.push(get(gateway));
      await Bun.sleep(50);
      return holding.seen.length > 0;
    });
    await waitFor("one request held", () => holding.seen.length === 1);
    // Now every request, whichever worker takes it, sees the holding target busy.
    for (let i = 0; i < 20; i++) expect((await get(gateway)).body).toBe("quick");
    expect(holding.seen.length).toBe(1);
    release();
    await Promise.all(pending);
    await gateway.stop();
  });

  test("a worker killed mid-request: the node-wide in-flight counts it held are released", async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const holding = upstream(async () => {
      await held;
      return new Response("held");
    });
    const gateway = await start(`    balancer: least_connections\n    targets: [${holding.url}]\n`);
    const inFlight = async () => {
      const view = (await (await fetch(`${gateway.adminUrl}/upstreams`)).json()) as { upstreams: { api: { targets: { in_flight: number }[] } } };
      return view.upstreams.api.targets[0]!.in_flight;
    };
    const pending = Array.from({ length: 3 }, () => get(gateway).catch((error: Error) => error));
    await waitFor("3 in flight", async () => (await inFlight()) === 3);
    const status = (await (await fetch(`${gateway.adminUrl}/status`)).json()) as { workers: { pid: number }[] };
    process.kill(status.workers[0]!.pid, "SIGKILL");
    await waitFor("the counts released", async () => (await inFlight()) === 0);
    for (const outcome of await Promise.all(pending)) expect(outcome instanceof Error || (outcome as { status: number }).status >= 500).toBe(true);
    expect(gateway.logs()).toContain('"msg":"a worker exited with upstream requests in flight; their counts were released"');
    release();
    await waitFor("the replacement serving", async () => (await get(gateway).catch(() => ({ body: "" }))).body === "held");
    await gateway.stop();
  });
});

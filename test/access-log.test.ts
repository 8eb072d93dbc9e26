/**
 * The access log through the built binary with two workers: every request of a burst
 * appears exactly once in the shared file with its fields, sampling keeps errors, SIGUSR1
 * reopens the file after rotation, and a file that cannot be written never fails a request.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { basics, startGateway, type Gateway, type Ports } from "./helpers/gateway.ts";
import { startUpstream, type TestUpstream } from "./helpers/upstream.ts";

let upstream: TestUpstream;

beforeAll(() => {
  upstream = startUpstream((request) => {
    const path = new URL(request.url).pathname;
    if (path === "/boom") return new Response("broken", { status: 503 });
    return new Response("hello upstream", { headers: { "content-type": "text/plain" } });
  });
});
afterAll(() => upstream.stop());

/** A config with an `api` route to the test upstream and the given access_log block. */
function config(accessLog: string): (ports: Ports) => string {
  return (ports) => `${basics(ports)}
upstreams:
  backend:
    targets: [${upstream.url}]
routes:
  - name: api
    match: { paths: ["/api/*"] }
    upstream: backend
    rewrite: { strip_prefix: /api }
  - name: typed
    match: { paths: ["/typed"] }
    upstream: backend
    policies:
      - type: content-type
        config: { allow: [application/json] }
observability:
  access_log:
${accessLog}
`;
}

/** The access log lines, parsed (a torn or partial line fails the parse). */
function readLines(path: string): Record<string, unknown>[] {
  if (!existsSync(path)) return [];
  const text = readFileSync(path, "utf8");
  if (text.length === 0) return [];
  expect(text.endsWith("\n")).toBe(true);
  return text.trimEnd().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** Waits until `count` lines are in the file (the log is written in batches), at most 10 s. */
async function waitForLines(path: string, count: number): Promise<Record<string, unknown>[]> {
  const deadline = performance.now() + 10_000;
  let lines = readLines(path);
  while (lines.length < count && performance.now() < deadline) {
    await Bun.sleep(25);
    lines = readLines(path);
  }
  return lines;
}

/** Sends `count` requests, `parallel` at a time, each with its own request id `prefix-N`. */
async function burst(gateway: Gateway, prefix: string, count: number, parallel = 32, path = (i: number) => `/api/item/${i}?page=${i}`): Promise<number[]> {
  const statuses: number[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < count) {
        const i = next++;
        const response = await fetch(`${gateway.url}${path(i)}`, { headers: { "x-request-id": `${prefix}-${i}` } });
        await response.arrayBuffer();
        statuses[i] = response.status;
      }
    }),
  );
  return statuses;
}

describe("a burst through two workers", () => {
  let gateway: Gateway;
  let logPath: string;

  beforeAll(async () => {
    gateway = await startGateway(
      config(`    path: access.log
    fields: [time, request_id, route, consumer, client_ip, method, path, query, status, bytes_in, bytes_out, upstream, upstream_latency_ms, latency_ms, retries, decisions]`),
      { workers: 2 },
    );
    logPath = join(gateway.dir, "access.log");
  });
  afterAll(async () => {
    expect(await gateway.stop()).toBe(0);
  });

  test("every request appears exactly once, with correct fields", async () => {
    const count = 600;
    const statuses = await burst(gateway, "burst", count);
    expect(statuses.every((s) => s === 200)).toBe(true);
    const lines = (await waitForLines(logPath, count)).filter((l) => String(l.request_id).startsWith("burst-"));
    expect(lines.length).toBe(count);
    const ids = new Set(lines.map((l) => l.request_id));
    expect(ids.size).toBe(count);
    for (const line of lines) {
      const i = Number(String(line.request_id).slice("burst-".length));
      expect(line).toMatchObject({
        route: "api",
        consumer: null,
        client_ip: "127.0.0.1",
        method: "GET",
        path: `/api/item/${i}`,
        query: `page=${i}`,
        status: 200,
        bytes_in: null,
        bytes_out: "hello upstream".length,
        upstream: upstream.url,
        retries: 0,
        decisions: [],
      });
      expect(typeof line.latency_ms).toBe("number");
      expect(typeof line.upstream_latency_ms).toBe("number");
      expect(line.upstream_latency_ms as number).toBeLessThanOrEqual(line.latency_ms as number);
      expect(Number.isNaN(Date.parse(String(line.time)))).toBe(false);
    }
  });

  test("refused and unrouted requests are logged with no upstream, the refusing policy's decision, route null when unrouted", async () => {
    const before = readLines(logPath).length;
    const none = await fetch(`${gateway.url}/nowhere?token=abc`, { headers: { "x-request-id": "unrouted-1" } });
    expect(none.status).toBe(404);
    const posted = await fetch(`${gateway.url}/api/upload`, { method: "POST", body: "12345", headers: { "x-request-id": "posted-1" } });
    expect(posted.status).toBe(200);
    const refused = await fetch(`${gateway.url}/typed`, { method: "POST", body: "a,b", headers: { "content-type": "text/csv", "x-request-id": "refused-1" } });
    expect(refused.status).toBe(415);
    const lines = await waitForLines(logPath, before + 3);
    expect(lines.find((l) => l.request_id === "refused-1")).toMatchObject({ route: "typed", status: 415, upstream: null, decisions: ["content-type:reject"] });
    const unrouted = lines.find((l) => l.request_id === "unrouted-1")!;
    expect(unrouted).toMatchObject({ route: null, status: 404, upstream: null, upstream_latency_ms: null, path: "/nowhere", query: "token=[redacted]" });
    expect(lines.find((l) => l.request_id === "posted-1")).toMatchObject({ method: "POST", bytes_in: 5, status: 200 });
  });

  test("SIGUSR1 after a rename sends new lines to a new file", async () => {
    await burst(gateway, "before-rotation", 20, 4);
    await waitForLines(logPath, readLines(logPath).length);
    const rotated = `${logPath}.1`;
    // Let the last batch reach the file before it is renamed.
    await Bun.sleep(300);
    renameSync(logPath, rotated);
    const logsBefore = gateway.logs().length;
    gateway.process.kill("SIGUSR1");
    const deadline = performance.now() + 10_000;
    while ((gateway.logs().slice(logsBefore).match(/"msg":"access log reopened"/g) ?? []).length < 2 && performance.now() < deadline) await Bun.sleep(20);
    expect((gateway.logs().slice(logsBefore).match(/"msg":"access log reopened"/g) ?? []).length).toBe(2);
    await burst(gateway, "after-rotation", 40, 8);
    const fresh = await waitForLines(logPath, 40);
    expect(fresh.filter((l) => String(l.request_id).startsWith("after-rotation-")).length).toBe(40);
    const old = readLines(rotated);
    expect(old.filter((l) => String(l.request_id).startsWith("before-rotation-")).length).toBe(20);
    expect(old.some((l) => String(l.request_id).startsWith("after-rotation-"))).toBe(false);
    // The workers still run (SIGUSR1 did not end them) and still serve.
    expect((await fetch(`${gateway.url}/api/x`)).status).toBe(200);
  });

  test("lines still buffered at shutdown are written before the workers exit", async () => {
    await burst(gateway, "at-stop", 10, 2);
    expect(await gateway.stop()).toBe(0);
    expect(readLines(logPath).filter((l) => String(l.request_id).startsWith("at-stop-")).length).toBe(10);
  });
});

describe("sampling", () => {
  test("sample 0 logs only server errors (>= 500)", async () => {
    const gateway = await startGateway(config(`    path: access.log\n    sample: 0`), { workers: 2 });
    try {
      await burst(gateway, "sampled-ok", 50, 8);
      await burst(gateway, "sampled-error", 10, 4, () => "/api/boom");
      await fetch(`${gateway.url}/nowhere`);
      const lines = await waitForLines(join(gateway.dir, "access.log"), 10);
      await Bun.sleep(300);
      const all = readLines(join(gateway.dir, "access.log"));
      expect(all.length).toBe(10);
      expect(all.every((l) => String(l.request_id).startsWith("sampled-error-") && l.status === 503)).toBe(true);
      expect(lines.length).toBe(10);
    } finally {
      expect(await gateway.stop()).toBe(0);
    }
  });

  test("sample 0.5 logs about half of the successful requests", async () => {
    const gateway = await startGateway(config(`    path: access.log\n    sample: 0.5`), { workers: 2 });
    try {
      await burst(gateway, "half", 400, 16);
      await Bun.sleep(400);
      const logged = readLines(join(gateway.dir, "access.log")).length;
      // Binomial(400, 0.5): outside 120..280 has a probability below 1e-15.
      expect(logged).toBeGreaterThan(120);
      expect(logged).toBeLessThan(280);
    } finally {
      expect(await gateway.stop()).toBe(0);
    }
  });
});

describe("a destination that cannot be written", () => {
  test("a path under a regular file: requests succeed, the loss is logged once per worker", async () => {
    const gateway = await startGateway(config(`    path: not-a-folder/access.log`), {
      workers: 2,
      files: { "not-a-folder": "a file, not a folder\n" },
    });
    try {
      const statuses = await burst(gateway, "unwritable", 200, 16);
      expect(statuses.every((s) => s === 200)).toBe(true);
      await Bun.sleep(300);
      const warnings = gateway.logs().match(/"msg":"access log cannot be written; dropping lines until it can"/g) ?? [];
      expect(warnings.length).toBe(2);
      expect(gateway.logs()).toContain("ENOTDIR");
    } finally {
      expect(await gateway.stop()).toBe(0);
    }
    expect(gateway.logs()).toMatch(/"msg":"access log: lines dropped in total".*"dropped":\d+/);
  });

  test("a full disk (/dev/full): requests succeed, the loss is logged once per worker, not per request", async () => {
    if (!existsSync("/dev/full")) return;
    const gateway = await startGateway(config(`    path: /dev/full\n    buffer: { size: 1KiB, flush_interval: 10ms }`), { workers: 2 });
    try {
      const statuses = await burst(gateway, "full", 300, 16);
      expect(statuses.every((s) => s === 200)).toBe(true);
      await Bun.sleep(300);
      const warnings = gateway.logs().match(/"msg":"access log cannot be written; dropping lines until it can"/g) ?? [];
      expect(warnings.length).toBeGreaterThanOrEqual(1);
      expect(warnings.length).toBeLessThanOrEqual(2);
      expect(gateway.logs()).toContain("ENOSPC");
    } finally {
      expect(await gateway.stop()).toBe(0);
    }
  });
});

describe("stdout", () => {
  test("path stdout writes whole JSON lines to the process's stdout", async () => {
    const gateway = await startGateway(config(`    path: stdout`), { workers: 2 });
    try {
      await burst(gateway, "to-stdout", 100, 16);
      const deadline = performance.now() + 10_000;
      const count = () => (gateway.logs().match(/"request_id":"to-stdout-/g) ?? []).length;
      while (count() < 100 && performance.now() < deadline) await Bun.sleep(25);
      expect(count()).toBe(100);
      // stdout and stderr are collected into one string, so only whole lines are parsed.
      const lines = gateway.logs().split("\n").filter((l) => l.startsWith('{"time"') && l.includes('"request_id":"to-stdout-') && l.endsWith("}"));
      expect(lines.length).toBeGreaterThan(90);
      for (const line of lines) expect(JSON.parse(line)).toMatchObject({ route: "api", status: 200 });
    } finally {
      expect(await gateway.stop()).toBe(0);
    }
  });
});

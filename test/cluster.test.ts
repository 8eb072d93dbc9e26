/**
 * Cluster mode through the built binary: the `store.hazelcast` section's errors, a gateway
 * that starts while its cluster is down (a warning, not a crash) and connects once a real
 * member comes up, and two gateway nodes × 2 workers sharing limits through one real
 * member: exact in strict mode, within the stated bound in batched mode, and through the
 * member's death and return.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY, basics, freePort, startGateway, type Gateway } from "./helpers/gateway.ts";
import { hazelcastMissing, startMember, type Member } from "./helpers/hazelcast.ts";
import { startLoad, type LoadSample } from "./helpers/load.ts";

// Members and gateways are real processes: generous limits for a busy machine.
setDefaultTimeout(120_000);

const dir = mkdtempSync(join(tmpdir(), "turnpike-cluster-"));
const running: Gateway[] = [];
const members: Member[] = [];
afterAll(async () => {
  for (const gateway of running) await gateway.stop().catch(() => {});
  for (const member of members) await member.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function waitFor(what: string, condition: () => boolean, ms = 30_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(50);
  }
}

/** Log lines of a gateway whose `msg` is `msg`. */
function linesWith(gateway: Gateway, msg: string): string[] {
  return gateway.logs().split("\n").filter((line) => line.includes(`"msg":"${msg}"`));
}

const MOCK_UPSTREAM = `
upstreams:
  hello:
    type: mock
    mock: { status: 200, body: "hello" }
routes:
  - name: hello
    match: { paths: ["/hello"] }
    upstream: hello
`;

test("store.hazelcast errors name their path and line", async () => {
  const path = join(dir, "bad.yaml");
  writeFileSync(
    path,
    `listeners: [{ port: 8080 }]
store:
  type: hazelcast
  hazelcast:
    members: ["127.0.0.1:5701", "no-port-here", "127.0.0.1:99999"]
    mode: eventual
    timeout: 0ms
${MOCK_UPSTREAM}`,
  );
  const proc = Bun.spawn([BINARY, "validate", path], { stdio: ["ignore", "pipe", "pipe"] });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  const out = stdout + stderr;
  expect(code).toBe(1);
  expect(out).toContain("store.hazelcast.mode");
  expect(out).toContain("line 6");

  writeFileSync(path, (await Bun.file(path).text()).replace("    mode: eventual\n", ""));
  const again = Bun.spawn([BINARY, "validate", path], { stdio: ["ignore", "pipe", "pipe"] });
  const text = (await new Response(again.stdout).text()) + (await new Response(again.stderr).text());
  expect(await again.exited).toBe(1);
  expect(text).toContain('store.hazelcast.members[1]: "no-port-here" is not a member address host:port');
  expect(text).toContain("store.hazelcast.members[2]");
  expect(text).toContain("store.hazelcast.timeout: must be more than 0");
  expect(text).not.toContain("members[0]");
});

test("the Hazelcast store's messages follow observability.error_log: in the file, once per transition, not on stderr", async () => {
  const port = freePort();
  const gateway = await startGateway(
    (ports) => `${basics(ports)}
store:
  type: hazelcast
  hazelcast: { members: ["127.0.0.1:${port}"] }
observability:
  error_log: { path: error.log, level: info }
${MOCK_UPSTREAM}`,
    { workers: 1 },
  );
  running.push(gateway);
  const file = join(gateway.dir, "error.log");
  const warningsIn = (text: string) => text.split("\n").filter((line) => line.includes("cannot reach the Hazelcast cluster"));
  await waitFor("the warning in the error log file", () => existsSync(file) && warningsIn(readFileSync(file, "utf8")).length === 1);
  // Retries go on in the background; the transition stays one line.
  for (let i = 0; i < 3; i++) {
    expect((await fetch(`${gateway.url}/hello`)).status).toBe(200);
    await Bun.sleep(500);
  }
  const lines = warningsIn(readFileSync(file, "utf8"));
  expect(lines).toHaveLength(1);
  expect(JSON.parse(lines[0]!)).toMatchObject({ level: "warn", role: "worker", store: "hazelcast", members: [`127.0.0.1:${port}`] });
  expect(warningsIn(gateway.logs())).toHaveLength(0);
});

describe.skipIf(hazelcastMissing !== null)("with a real Hazelcast member", () => {
  test("a cluster down at start-up is a warning per worker and the fail mode, not a crash; the gateway connects once the member is up", async () => {
    const port = freePort();
    const gateway = await startGateway(
      (ports) => `${basics(ports)}
store:
  type: hazelcast
  hazelcast: { members: ["127.0.0.1:${port}"], mode: strict }
${MOCK_UPSTREAM}
  - name: guarded
    match: { paths: ["/guarded"] }
    upstream: hello
    policies:
      - type: rate-limit
        config:
          key: route
          limits: [{ requests: 1000, window: 1h, on_store_error: closed }]
`,
      { workers: 2 },
    );
    running.push(gateway);
    // It serves while the cluster is away.
    const response = await fetch(`${gateway.url}/hello`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("hello");
    await waitFor("a warning from each worker", () => linesWith(gateway, "cannot reach the Hazelcast cluster; limits follow their fail mode until it answers").length === 2);
    // A limit that fails closed refuses while there is no cluster to count with.
    const refused = await fetch(`${gateway.url}/guarded`);
    expect(refused.status).toBe(503);
    expect(refused.headers.get("content-type")).toContain("application/problem+json");
    await refused.arrayBuffer();

    const member = await startMember(port);
    members.push(member);
    await waitFor("each worker to connect", () => linesWith(gateway, "Hazelcast cluster reachable again; limits are shared across the cluster").length === 2, 60_000);
    expect(gateway.process.exitCode).toBeNull();
    // Once per transition, not per request or per retry.
    expect(linesWith(gateway, "cannot reach the Hazelcast cluster; limits follow their fail mode until it answers")).toHaveLength(2);
    expect((await fetch(`${gateway.url}/hello`)).status).toBe(200);
    const counted = await fetch(`${gateway.url}/guarded`);
    expect(counted.status).toBe(200);
    expect(counted.headers.get("ratelimit")).toContain("r=999");
  }, 120_000);

  describe("two nodes × 2 workers, one member", () => {
    let member: Member;
    const nodes: Record<"strict" | "batched", Gateway[]> = { strict: [], batched: [] };
    const WINDOW_MS = 3_600_000;

    /** Routes: /exact (limit by route, its own counter per mode), /open and /closed (fail modes while the member is away). */
    const nodeConfig = (memberAddress: string, mode: string, limit: number) => (ports: { port: number; adminPort: number; port2: number }) => `${basics(ports)}
store:
  type: hazelcast
  hazelcast: { members: ["${memberAddress}"], mode: ${mode}, timeout: 5s }
upstreams:
  hello:
    type: mock
    mock: { status: 200, body: "hello" }
routes:
  - name: exact-${mode}
    match: { paths: ["/exact"] }
    upstream: hello
    policies:
      - type: rate-limit
        config:
          key: route
          # Fails closed: a store failure would show as a 503, never as a miscount.
          limits: [{ requests: ${limit}, window: 1h, on_store_error: closed }]
  - name: open
    match: { paths: ["/open"] }
    upstream: hello
    policies:
      - type: rate-limit
        config:
          key: route
          limits: [{ requests: 1000000, window: 1h, on_store_error: open, fallback_requests: 1000000 }]
  - name: closed
    match: { paths: ["/closed"] }
    upstream: hello
    policies:
      - type: rate-limit
        config:
          key: route
          limits: [{ requests: 1000000, window: 1h, on_store_error: closed }]
`;

    beforeAll(async () => {
      member = await startMember();
      members.push(member);
    }, 120_000);

    /** Starts two nodes (2 workers each) in `mode` and waits until all four workers are connected. */
    async function startNodes(mode: "strict" | "batched", limit: number): Promise<Gateway[]> {
      const started = await Promise.all([0, 1].map(() => startGateway(nodeConfig(member.address, mode, limit), { workers: 2 })));
      running.push(...started);
      nodes[mode] = started;
      await waitFor("every worker to connect", () => started.every((g) => linesWith(g, "connected to the Hazelcast cluster").length === 2), 60_000);
      // Batched blocks are sized by the number of workers, counted through heartbeats (every second).
      await Bun.sleep(1_500);
      return started;
    }

    /** Sends `total` requests to `path`, half to each node, from 16 concurrent clients per node. */
    async function burst(gateways: Gateway[], path: string, total: number): Promise<LoadSample[]> {
      const loads = gateways.map((g) => startLoad(`${g.url}${path}`, { clients: 16, maxDurationMs: 60_000, maxRequests: total / gateways.length, requestTimeoutMs: 10_000 }));
      const samples: LoadSample[] = [];
      for (const load of loads) {
        while (load.count() < total / gateways.length) await Bun.sleep(20);
        samples.push(...(await load.stop()));
      }
      return samples;
    }

    /** Runs `attempt` again if an hour boundary (a new fixed window) fell inside it. */
    async function withinOneWindow<T>(attempt: () => Promise<T>): Promise<T> {
      for (;;) {
        const before = Math.floor(Date.now() / WINDOW_MS);
        const result = await attempt();
        if (Math.floor(Date.now() / WINDOW_MS) === before) return result;
      }
    }

    test("strict: 3N requests over both nodes against a limit of N = 300 admit exactly 300", async () => {
      const gateways = await startNodes("strict", 300);
      const samples = await withinOneWindow(() => burst(gateways, "/exact", 900));
      const statuses = samples.map((s) => s.status);
      expect(statuses.filter((s) => s !== 200 && s !== 429)).toEqual([]);
      expect(statuses.filter((s) => s === 200)).toHaveLength(300);
      expect(statuses.filter((s) => s === 429)).toHaveLength(600);
      const refused = samples.find((s) => s.status === 429)!;
      expect(refused.headers.get("retry-after")).toMatch(/^[0-9]+$/);
    }, 120_000);

    test("batched: 3N requests over both nodes against N = 2000 admit between 99% and 100% of N", async () => {
      const gateways = await startNodes("batched", 2000);
      const samples = await withinOneWindow(() => burst(gateways, "/exact", 6000));
      const statuses = samples.map((s) => s.status);
      expect(statuses.filter((s) => s !== 200 && s !== 429)).toEqual([]);
      const admitted = statuses.filter((s) => s === 200).length;
      expect(admitted).toBeLessThanOrEqual(2000);
      expect(admitted).toBeGreaterThanOrEqual(1980);
      for (const gateway of gateways) await gateway.stop();
    }, 180_000);

    test("member killed mid-load: no worker crash, open serves and closed answers 503, both recover when it returns", async () => {
      const gateways = nodes.strict.length > 0 ? nodes.strict : await startNodes("strict", 300);
      const loads = gateways.flatMap((g) => ["/open", "/closed"].map((path) => startLoad(`${g.url}${path}`, { clients: 2, maxDurationMs: 90_000, requestTimeoutMs: 10_000 })));
      await Bun.sleep(500);
      await member.kill();
      // Every worker notices (one log line each), and the gateways keep answering.
      await waitFor("every worker to report the loss", () => gateways.every((g) => linesWith(g, "lost the Hazelcast cluster; limits follow their fail mode until it is back").length === 2), 30_000);
      const lossReportedAt = performance.now();
      await Bun.sleep(1_500);
      const downUntil = performance.now();
      await member.restart();
      await waitFor("every worker to reconnect", () => gateways.every((g) => linesWith(g, "Hazelcast cluster reachable again; limits are shared across the cluster").length === 2), 60_000);
      const backAt = performance.now();
      // Requests still waiting on the store when it came back finish first (each within
      // the store's timeout); then every client must get a few more answers.
      const countsAtBack = loads.map((l) => l.count());
      await waitFor("answers after the member is back", () => loads.every((l, i) => l.count() >= countsAtBack[i]! + 10), 60_000);
      const samples = (await Promise.all(loads.map((l) => l.stop()))).map((list, i) => ({ path: i % 2 === 0 ? "/open" : "/closed", list }));

      const during = (path: string) => samples.filter((s) => s.path === path).flatMap((s) => s.list.filter((x) => x.startedAt > lossReportedAt && x.endedAt < downUntil));
      const after = (path: string) => samples.filter((s) => s.path === path).flatMap((s) => s.list.filter((x) => x.startedAt > backAt));
      // Fail open: served while the member was away; fail closed: 503 problem+json with Retry-After.
      expect(during("/open").length).toBeGreaterThan(0);
      expect(new Set(during("/open").map((x) => x.status))).toEqual(new Set([200]));
      const closedDuring = during("/closed");
      expect(closedDuring.length).toBeGreaterThan(0);
      expect(new Set(closedDuring.map((x) => x.status))).toEqual(new Set([503]));
      expect(closedDuring[0]!.headers.get("content-type")).toContain("application/problem+json");
      expect(closedDuring[0]!.headers.get("retry-after")).toBe("1");
      // Recovered: both answer 200 again.
      expect(after("/open").length).toBeGreaterThan(0);
      expect(new Set(after("/open").map((x) => x.status))).toEqual(new Set([200]));
      expect(after("/closed").length).toBeGreaterThan(0);
      expect(new Set(after("/closed").map((x) => x.status))).toEqual(new Set([200]));
      // No request failed without an answer, no worker crashed, each transition logged once per worker.
      for (const { list } of samples) expect(list.filter((x) => x.status === 0)).toEqual([]);
      for (const gateway of gateways) {
        expect(gateway.process.exitCode).toBeNull();
        expect(gateway.logs()).not.toContain("worker exited");
        expect(linesWith(gateway, "lost the Hazelcast cluster; limits follow their fail mode until it is back")).toHaveLength(2);
        expect(linesWith(gateway, "Hazelcast cluster reachable again; limits are shared across the cluster")).toHaveLength(2);
      }
    }, 180_000);
  });
});

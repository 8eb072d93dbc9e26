/**
 * Upstreams with several targets through the built binary: balancers, failover to
 * backups and back, active health checks probed once per node, GET /upstreams, state
 * metrics and state-change logs.
 */
import { afterAll, describe, expect, test as bunTest } from "bun:test";
import { basics, freePort, startGateway, type Gateway } from "./helpers/gateway.ts";
import { startNamedTarget, startUpstream, type NamedTarget } from "./helpers/upstream.ts";
import { waitFor } from "./helpers/wait.ts";

/** Tests here start gateways and wait on health checks: generous bounds for a loaded machine. */
const test = (name: string, body: () => Promise<void>) => bunTest(name, body, 60_000);

const running: { stop(): unknown }[] = [];
afterAll(async () => {
  for (const thing of running.reverse()) await thing.stop();
});

/** A target answering with its name (see startNamedTarget), stopped after the test. */
function named(name: string): NamedTarget {
  const target = startNamedTarget(name);
  running.push(target);
  return target;
}

/** Sends `count` GETs one after the other, each on a new connection; returns the bodies. */
async function bodies(gateway: Gateway, count: number, headers: Record<string, string> = {}, path = "/"): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const response = await fetch(gateway.url + path, { headers: { connection: "close", ...headers } });
    out.push(`${response.status} ${await response.text()}`);
  }
  return out;
}

function tally(list: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of list) counts[item] = (counts[item] ?? 0) + 1;
  return counts;
}

interface TargetView {
  url: string;
  healthy: boolean;
  ejected: boolean;
  circuit: string | null;
  in_flight: number;
  available: boolean;
}

async function upstreamView(gateway: Gateway, name = "api"): Promise<{ balancer: string; circuit: string | null; targets: TargetView[] }> {
  const response = await fetch(`${gateway.adminUrl}/upstreams`);
  expect(response.status).toBe(200);
  const body = (await response.json()) as { upstreams: Record<string, { balancer: string; circuit: string | null; targets: TargetView[] }> };
  return body.upstreams[name]!;
}

async function start(upstreamBlock: string, workers = 1): Promise<Gateway> {
  const gateway = await startGateway(
    (ports) => `${basics(ports)}
upstreams:
  api:
${upstreamBlock}
routes:
  - name: all
    match: { paths: ["/*"] }
    upstream: api
`,
    { workers },
  );
  running.push(gateway);
  return gateway;
}

describe("balancers through the binary", () => {
  test("round robin and weights spread requests over every target", async () => {
    const [a, b, c] = [named("a"), named("b"), named("c")];
    const gateway = await start(`    balancer: weighted_round_robin
    targets:
      - { url: "${a.url}", weight: 2 }
      - ${b.url}
      - 127.0.0.1:${c.port}
`);
    expect(tally(await bodies(gateway, 8))).toEqual({ "200 a": 4, "200 b": 2, "200 c": 2 });
    await gateway.stop();
  });

  test("consistent hashing on a header keeps each user on one target, in every worker", async () => {
    const targets = [named("a"), named("b"), named("c")];
    const gateway = await start(
      `    balancer: consistent_hash
    hash_key: header:x-user
    targets: [${targets.map((t) => t.url).join(", ")}]
`,
      2,
    );
    const seen = new Set<string>();
    for (const user of ["ann", "bob", "cyd", "dan", "eve", "fay"]) {
      const answers = new Set(await bodies(gateway, 6, { "x-user": user }));
      expect(answers.size).toBe(1);
      seen.add([...answers][0]!);
    }
    expect(seen.size).toBeGreaterThan(1);
    await gateway.stop();
  });
});

describe("failover and active health checks", () => {
  test("backups get traffic only while no primary is healthy, and traffic returns when one recovers", async () => {
    const [primary1, primary2, backup] = [named("p1"), named("p2"), named("backup")];
    const gateway = await start(
      `    balancer: round_robin
    targets:
      - ${primary1.url}
      - ${primary2.url}
      - { url: "${backup.url}", backup: true }
    health_check:
      active: { path: /health, interval: 400ms, timeout: 350ms, healthy_threshold: 1, unhealthy_threshold: 2 }
`,
      2,
    );
    // Each worker takes turns on its own: both primaries get traffic, the backup none.
    expect(Object.keys(tally(await bodies(gateway, 8))).sort()).toEqual(["200 p1", "200 p2"]);

    primary1.healthy = false;
    await waitFor("p1 unhealthy", async () => (await upstreamView(gateway)).targets[0]!.healthy === false);
    expect(tally(await bodies(gateway, 6))).toEqual({ "200 p2": 6 });

    primary2.healthy = false;
    await waitFor("p2 unhealthy", async () => (await upstreamView(gateway)).targets[1]!.healthy === false);
    expect(tally(await bodies(gateway, 4))).toEqual({ "200 backup": 4 });

    primary2.healthy = true;
    await waitFor("p2 healthy", async () => (await upstreamView(gateway)).targets[1]!.healthy === true);
    expect(tally(await bodies(gateway, 4))).toEqual({ "200 p2": 4 });

    // Each change is logged once for the node, by the supervisor.
    const logs = gateway.logs();
    expect(logs.split('"msg":"target unhealthy"').length - 1).toBe(2);
    expect(logs.split('"msg":"target healthy"').length - 1).toBe(1);
    expect(logs).toContain(`"target":"${primary1.url}"`);
    await gateway.stop();
  });

  test("with every target down the client gets a 503 problem, not a hang", async () => {
    const down = named("down");
    down.healthy = false;
    const gateway = await start(`    targets: [${down.url}]
    health_check:
      active: { type: http, path: /health, interval: 200ms, timeout: 100ms, unhealthy_threshold: 1 }
`);
    await waitFor("unhealthy", async () => (await upstreamView(gateway)).targets[0]!.healthy === false);
    const response = await fetch(gateway.url + "/x");
    expect(response.status).toBe(503);
    expect(response.headers.get("content-type")).toBe("application/problem+json");
    expect(((await response.json()) as { type: string }).type).toBe("urn:turnpike:problem:no-healthy-upstream");
    await gateway.stop();
  });

  test("tcp checks find a closed port; probes run once per node, not once per worker", async () => {
    const live = named("live");
    let probes = 0;
    const probed = startUpstream((request) => {
      if (request.headers.get("user-agent") === "turnpike-health-check") probes++;
      return new Response("probed");
    });
    running.push(probed);
    const closed = freePort();
    const gateway = await startGateway(
      (ports) => `${basics(ports)}
upstreams:
  api:
    targets: [${live.url}, "127.0.0.1:${closed}"]
    health_check:
      active: { type: tcp, interval: 400ms, timeout: 300ms, unhealthy_threshold: 2 }
  counted:
    targets: [${probed.url}]
    health_check:
      active: { path: /health, interval: 300ms, timeout: 200ms }
routes:
  - name: all
    match: { paths: ["/*"] }
    upstream: api
`,
      { workers: 2 },
    );
    running.push(gateway);
    await waitFor("closed port unhealthy", async () => (await upstreamView(gateway)).targets[1]!.healthy === false);
    expect((await upstreamView(gateway)).targets[0]!.healthy).toBe(true);
    expect(tally(await bodies(gateway, 4))).toEqual({ "200 live": 4 });

    const before = probes;
    const startedAt = performance.now();
    await Bun.sleep(1500);
    const elapsed = performance.now() - startedAt;
    const count = probes - before;
    // One prober sends at most one probe per 300 ms interval; two would send twice as many.
    expect(count).toBeGreaterThanOrEqual(1);
    expect(count).toBeLessThanOrEqual(Math.ceil(elapsed / 300) + 1);
    await gateway.stop();
  });
});

describe("GET /upstreams and metrics", () => {
  test("shows every target's state and node-wide in-flight count; metrics export it", async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const slow = startUpstream(async () => {
      await held;
      return new Response("slow");
    });
    running.push(slow);
    const closed = freePort();
    const gateway = await start(
      `    balancer: least_connections
    targets: [${slow.url}, "127.0.0.1:${closed}"]
    health_check:
      active: { type: tcp, interval: 400ms, timeout: 300ms, unhealthy_threshold: 2 }
    circuit_breaker: { failures: 5 }
`,
      2,
    );
    await waitFor("closed port unhealthy", async () => (await upstreamView(gateway)).targets[1]!.healthy === false);
    const pending = Array.from({ length: 4 }, () => fetch(gateway.url + "/", { headers: { connection: "close" } }));
    const view = await waitFor("4 in flight", async () => {
      const v = await upstreamView(gateway);
      return v.targets[0]!.in_flight === 4 ? v : undefined;
    });
    expect(view.balancer).toBe("least_connections");
    expect(view.targets).toEqual([
      { url: slow.url, weight: 1, priority: 0, healthy: true, ejected: false, circuit: "closed", in_flight: 4, available: true },
      { url: `http://127.0.0.1:${closed}`, weight: 1, priority: 0, healthy: false, ejected: false, circuit: "closed", in_flight: 0, available: false },
    ] as never);
    const metrics = await (await fetch(`${gateway.adminUrl}/metrics`)).text();
    expect(metrics).toContain(`turnpike_upstream_target_in_flight{upstream="api",target="${slow.url}"} 4`);
    expect(metrics).toContain(`turnpike_upstream_target_healthy{upstream="api",target="http://127.0.0.1:${closed}"} 0`);
    expect(metrics).toContain(`turnpike_upstream_circuit_state{upstream="api",target="${slow.url}"} 0`);
    release();
    for (const response of await Promise.all(pending)) expect(await response.text()).toBe("slow");
    await waitFor("0 in flight", async () => (await upstreamView(gateway)).targets[0]!.in_flight === 0);
    await gateway.stop();
  });
});

describe("reloads", () => {
  test("checks added by a reload start probing; removed ones give their verdict up", async () => {
    const live = named("live");
    const closed = freePort();
    const config = (checks: string) => (ports: { port: number; adminPort: number; port2: number }) => `${basics(ports)}
upstreams:
  api:
    targets: [${live.url}, "127.0.0.1:${closed}"]
${checks}
routes:
  - name: all
    match: { paths: ["/*"] }
    upstream: api
`;
    const gateway = await startGateway(config(""), { workers: 2 });
    running.push(gateway);
    expect((await upstreamView(gateway)).targets.map((t) => t.healthy)).toEqual([true, true]);
    gateway.writeConfig(config("    health_check:\n      active: { type: tcp, interval: 400ms, timeout: 300ms, unhealthy_threshold: 2 }\n")(gateway.ports));
    expect(await gateway.reload()).toBe("reloaded");
    await waitFor("the closed port unhealthy", async () => (await upstreamView(gateway)).targets[1]!.healthy === false);
    expect(tally(await bodies(gateway, 4))).toEqual({ "200 live": 4 });
    gateway.writeConfig(config("")(gateway.ports));
    expect(await gateway.reload()).toBe("reloaded");
    await waitFor("the verdict given up", async () => (await upstreamView(gateway)).targets[1]!.healthy === true);
    expect(gateway.logs()).toContain('"reason":"active health checks are no longer configured"');
    await gateway.stop();
  });
});

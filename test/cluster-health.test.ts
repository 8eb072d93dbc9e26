/**
 * Upstream health shared across a cluster (`health_check.share: cluster`) through the
 * built binary: config errors, and two gateway nodes on one real Hazelcast member where
 * only node A probes. Node B stops sending to a target A finds unhealthy, sends to it
 * again once A finds it healthy, and drops A's verdict when A dies and cannot renew it.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY, basics, startGateway, type Gateway } from "./helpers/gateway.ts";
import { hazelcastMissing, startMember, type Member } from "./helpers/hazelcast.ts";
import { startNamedTarget, type NamedTarget } from "./helpers/upstream.ts";

// Members and gateways are real processes: generous limits for a busy machine.
setDefaultTimeout(120_000);

const dir = mkdtempSync(join(tmpdir(), "turnpike-cluster-health-"));
const running: { stop(): unknown }[] = [];
afterAll(async () => {
  for (const thing of running.reverse()) await Promise.resolve(thing.stop()).catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(100);
  }
}

async function validate(text: string): Promise<{ code: number; out: string }> {
  const path = join(dir, `config-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(path, text);
  const proc = Bun.spawn([BINARY, "validate", path], { stdio: ["ignore", "pipe", "pipe"] });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, out: stdout + stderr };
}

const ROUTES = `routes:
  - name: all
    match: { paths: ["/*"] }
    upstream: api
`;

test("health_check.share errors name their path and line", async () => {
  const embedded = await validate(`listeners: [{ port: 8080 }]
upstreams:
  api:
    targets: [127.0.0.1:9001]
    health_check:
      share: cluster
${ROUTES}`);
  expect(embedded.code).toBe(1);
  expect(embedded.out).toContain("upstreams.api.health_check.share");
  expect(embedded.out).toContain("line 6");
  expect(embedded.out).toContain("store.type: hazelcast");

  const unknown = await validate(`listeners: [{ port: 8080 }]
store:
  type: hazelcast
  hazelcast: { members: ["127.0.0.1:5701"] }
upstreams:
  api:
    targets: [127.0.0.1:9001]
    health_check:
      share: everywhere
${ROUTES}`);
  expect(unknown.code).toBe(1);
  expect(unknown.out).toContain("upstreams.api.health_check.share");
  expect(unknown.out).toContain("line 9");

  const fine = await validate(`listeners: [{ port: 8080 }]
store:
  type: hazelcast
  hazelcast: { members: ["127.0.0.1:5701"] }
upstreams:
  api:
    targets: [127.0.0.1:9001]
    health_check:
      share: cluster
${ROUTES}`);
  expect(fine.code).toBe(0);
});

describe.skipIf(hazelcastMissing !== null)("two nodes, one real member", () => {
  let member: Member;
  beforeAll(async () => {
    member = await startMember();
    running.push(member);
  }, 120_000);

  /** A target answering with its name (see startNamedTarget), stopped after the test. */
  function named(name: string): NamedTarget {
    const target = startNamedTarget(name);
    running.push(target);
    return target;
  }

  /** Names of the targets that answered `count` requests to `gateway`. */
  async function answered(gateway: Gateway, count = 6): Promise<string[]> {
    const seen = new Set<string>();
    for (let i = 0; i < count; i++) {
      const response = await fetch(gateway.url + "/", { headers: { connection: "close" } });
      seen.add(`${response.status} ${await response.text()}`);
    }
    return [...seen].sort();
  }

  async function target(gateway: Gateway, index: number): Promise<{ healthy: boolean; health_source?: string; health_node?: string }> {
    const body = (await (await fetch(`${gateway.adminUrl}/upstreams`)).json()) as { upstreams: Record<string, { targets: { healthy: boolean }[] }> };
    return body.upstreams.api!.targets[index]!;
  }

  const lines = (gateway: Gateway, msg: string) => gateway.logs().split("\n").filter((line) => line.includes(`"msg":"${msg}"`));

  test("node B follows node A's probes: stops sending to an unhealthy target, sends again once it recovers, forgets a dead node's verdict", async () => {
    const [one, two] = [named("one"), named("two")];
    const node = (check: string) => (ports: Parameters<typeof basics>[0]) => `${basics(ports)}
store:
  type: hazelcast
  hazelcast: { members: ["${member.address}"], timeout: 5s }
upstreams:
  api:
    targets: [${one.url}, ${two.url}]
    health_check:
      share: cluster
${check}
${ROUTES}`;
    const a = await startGateway(node(`      active: { path: /health, interval: 300ms, timeout: 250ms, healthy_threshold: 1, unhealthy_threshold: 2 }`), { workers: 2 });
    running.push(a);
    const b = await startGateway(node(""), { workers: 2 });
    running.push(b);
    for (const gateway of [a, b]) await waitFor("the supervisor to join the cluster", () => lines(gateway, "connected to the Hazelcast cluster").length >= 1, 60_000);
    // Listeners are added right after connecting.
    await Bun.sleep(1_000);
    expect(await answered(b)).toEqual(["200 one", "200 two"]);
    expect(await target(b, 0)).toMatchObject({ healthy: true, health_source: "local" });

    one.healthy = false;
    await waitFor("node A to find target one unhealthy", async () => (await target(a, 0)).healthy === false);
    await waitFor("node B to apply node A's verdict", async () => (await target(b, 0)).healthy === false);
    expect(await answered(b, 8)).toEqual(["200 two"]);
    expect(await answered(a, 8)).toEqual(["200 two"]);
    const remote = await target(b, 0);
    expect(remote.health_source).toBe("remote");
    expect(remote.health_node).toContain(":");
    expect((await target(a, 0)).health_source).toBe("local");
    // A's renewals (one per probe) are logged on B once, at the change.
    await Bun.sleep(1_500);
    const unhealthyOnB = lines(b, "target unhealthy");
    expect(unhealthyOnB).toHaveLength(1);
    expect(unhealthyOnB[0]).toContain(`"target":"${one.url}"`);
    expect(unhealthyOnB[0]).toContain("node ");
    // A reload of node B keeps the verdict it follows.
    expect(await b.reload()).toBe("reloaded");
    expect((await target(b, 0)).healthy).toBe(false);
    expect(await answered(b, 4)).toEqual(["200 two"]);
    expect(lines(b, "target healthy")).toHaveLength(0);

    one.healthy = true;
    await waitFor("node B to apply node A's recovery", async () => (await target(b, 0)).healthy === true);
    expect(await answered(b, 8)).toEqual(["200 one", "200 two"]);
    expect(await answered(a, 8)).toEqual(["200 one", "200 two"]);
    expect(lines(b, "target healthy")).toHaveLength(1);
    expect((await target(b, 0)).health_source).toBe("local");

    // A verdict whose node dies is not renewed: it expires (three probe intervals, at least 1s).
    one.healthy = false;
    await waitFor("node B to apply node A's verdict again", async () => (await target(b, 0)).healthy === false);
    const killedAt = performance.now();
    a.process.kill("SIGKILL");
    await a.process.exited;
    await waitFor("node A's verdict to expire on node B", async () => (await target(b, 0)).healthy === true, 15_000);
    expect(performance.now() - killedAt).toBeGreaterThan(500);
    expect(await answered(b, 8)).toEqual(["200 one", "200 two"]);
    expect(lines(b, "target healthy").at(-1)).toContain("expired");
  });
});

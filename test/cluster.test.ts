/**
 * Cluster mode through the built binary: the `store.hazelcast` section's errors, a gateway
 * that starts while its cluster is down (a warning, not a crash) and connects once a real
 * member comes up.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY, basics, freePort, startGateway, type Gateway } from "./helpers/gateway.ts";
import { hazelcastMissing, startMember, type Member } from "./helpers/hazelcast.ts";

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

describe.skipIf(hazelcastMissing !== null)("with a real Hazelcast member", () => {
  test("a cluster down at start-up is a warning per worker, not a crash; the gateway connects once the member is up", async () => {
    const port = freePort();
    const gateway = await startGateway(
      (ports) => `${basics(ports)}
store:
  type: hazelcast
  hazelcast: { members: ["127.0.0.1:${port}"], mode: strict }
${MOCK_UPSTREAM}`,
      { workers: 2 },
    );
    running.push(gateway);
    // It serves while the cluster is away.
    const response = await fetch(`${gateway.url}/hello`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("hello");
    await waitFor("a warning from each worker", () => linesWith(gateway, "cannot reach the Hazelcast cluster; limits follow their fail mode until it answers").length === 2);

    const member = await startMember(port);
    members.push(member);
    await waitFor("each worker to connect", () => linesWith(gateway, "Hazelcast cluster reachable again; limits are shared across the cluster").length === 2, 60_000);
    expect(gateway.process.exitCode).toBeNull();
    // Once per transition, not per request or per retry.
    expect(linesWith(gateway, "cannot reach the Hazelcast cluster; limits follow their fail mode until it answers")).toHaveLength(2);
    expect((await fetch(`${gateway.url}/hello`)).status).toBe(200);
  }, 120_000);
});

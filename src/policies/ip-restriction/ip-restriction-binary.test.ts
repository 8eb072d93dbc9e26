/**
 * IP allow/deny lists and trusted proxies through the built binary: real sockets on
 * IPv4 and IPv6 loopback, X-Forwarded-For believed only from trusted proxies, the real
 * client address in the access log, and config errors with their line.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BINARY, startGateway, type Gateway, type Ports } from "../../../test/helpers/gateway.ts";
import { expectProblem } from "../../../test/helpers/problem.ts";

const head = (ports: Ports, trusted: string) => `listeners:
  - address: 127.0.0.1
    port: ${ports.port}
  - address: "::1"
    port: ${ports.port2}
admin:
  port: ${ports.adminPort}
server:
  trusted_proxies: ${trusted}
upstreams:
  echo:
    type: mock
    mock: { echo: true }
observability:
  access_log: { enabled: true, path: access.log }
`;

describe("ip-restriction", () => {
  let gateway: Gateway;
  beforeAll(async () => {
    gateway = await startGateway(
      (ports) => `${head(ports, "[127.0.0.1]")}
routes:
  - name: internal
    match: { paths: ["/internal"] }
    upstream: echo
    policies:
      - type: ip-restriction
        config: { allow: [127.0.0.0/8] }
  - name: no-loopback
    match: { paths: ["/no-loopback"] }
    upstream: echo
    policies:
      - type: ip-restriction
        config: { deny: [127.0.0.1, "::1"] }
  - name: v6-only
    match: { paths: ["/v6-only"] }
    upstream: echo
    policies:
      - type: ip-restriction
        config: { allow: ["::1/128"] }
  - name: partners
    match: { paths: ["/partners"] }
    upstream: echo
    policies:
      - type: ip-restriction
        config: { allow: [203.0.113.0/24, "2001:db8::/32"], deny: [203.0.113.66] }
  - name: tagged
    match: { paths: ["/tagged"] }
    upstream: echo
    policies:
      - type: headers
        when: { client_ip: [198.51.100.0/24] }
        config: { response: { set: { x-network: documentation } } }
`,
      { workers: 1 },
    );
  });
  afterAll(() => gateway.stop());

  const v4 = () => gateway.url;
  const v6 = () => `http://[::1]:${gateway.ports.port2}`;

  test("an address in the allow list passes; others get a 403 problem", async () => {
    expect((await fetch(`${v4()}/internal`)).status).toBe(200);
    const body = await expectProblem(await fetch(`${v6()}/internal`), 403);
    expect(body.type).toBe("urn:turnpike:problem:ip-forbidden");
    expect(body.detail).toContain("::1");
  });

  test("deny lists single addresses of both families", async () => {
    await expectProblem(await fetch(`${v4()}/no-loopback`), 403);
    await expectProblem(await fetch(`${v6()}/no-loopback`), 403);
  });

  test("IPv6 ranges match IPv6 clients only", async () => {
    expect((await fetch(`${v6()}/v6-only`)).status).toBe(200);
    await expectProblem(await fetch(`${v4()}/v6-only`), 403);
  });

  test("X-Forwarded-For from a trusted proxy names the client", async () => {
    const via = (xff: string) => fetch(`${v4()}/partners`, { headers: { "x-forwarded-for": xff } });
    expect((await via("203.0.113.9")).status).toBe(200);
    expect((await via("2001:db8::7")).status).toBe(200);
    expect((await via("[2001:db8::7]:4711")).status).toBe(200);
    expect((await via("203.0.113.9:5555")).status).toBe(200);
    // The deny entry wins inside the allowed range.
    await expectProblem(await via("203.0.113.66"), 403);
    // The nearest untrusted hop is the client: a client cannot slip an allowed address in front.
    await expectProblem(await via("203.0.113.9, 192.0.2.1"), 403);
    // Trusted hops in the chain are skipped.
    expect((await via("203.0.113.9, 127.0.0.1")).status).toBe(200);
    await expectProblem(await fetch(`${v4()}/partners`), 403);
  });

  test("X-Forwarded-For from a peer that is not trusted is ignored", async () => {
    // ::1 is not in trusted_proxies: the header is not believed, even when it is garbage.
    await expectProblem(await fetch(`${v6()}/partners`, { headers: { "x-forwarded-for": "203.0.113.9" } }), 403);
    await expectProblem(await fetch(`${v6()}/partners`, { headers: { "x-forwarded-for": "not an address" } }), 403);
  });

  test("a malformed X-Forwarded-For from a trusted proxy gets a 400 problem", async () => {
    for (const bad of ["not-an-ip", "203.0.113.9, , 127.0.0.1", "300.1.1.1", "[2001:db8::1", "1.2.3.4:port", "unknown"]) {
      const response = await fetch(`${v4()}/partners`, { headers: { "x-forwarded-for": bad } });
      const body = await expectProblem(response, 400);
      expect(body.type).toBe("urn:turnpike:problem:bad-forwarded-for");
    }
    // Garbage left of the client is never reached, so it does no harm.
    expect((await fetch(`${v4()}/partners`, { headers: { "x-forwarded-for": "garbage, 203.0.113.9" } })).status).toBe(200);
  });

  test("conditions and the access log see the real client address", async () => {
    const response = await fetch(`${v4()}/tagged`, { headers: { "x-forwarded-for": "198.51.100.23" } });
    expect(response.headers.get("x-network")).toBe("documentation");
    expect((await fetch(`${v4()}/tagged`)).headers.get("x-network")).toBeNull();
    const file = join(gateway.dir, "access.log");
    const deadline = performance.now() + 10_000;
    let lines: Record<string, unknown>[] = [];
    while (performance.now() < deadline) {
      lines = existsSync(file) ? readFileSync(file, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l)) : [];
      if (lines.some((l) => l.client_ip === "198.51.100.23")) break;
      await Bun.sleep(50);
    }
    expect(lines.some((l) => l.client_ip === "198.51.100.23")).toBe(true);
    const denied = lines.find((l) => l.path === "/no-loopback");
    expect(String(denied?.decisions)).toContain("ip-restriction:deny");
  });
});

describe("ip-restriction config errors", () => {
  test("bad CIDR ranges are reported with path and line", () => {
    const dir = require("node:fs").mkdtempSync(join(require("node:os").tmpdir(), "turnpike-ip-"));
    const file = join(dir, "bad.yaml");
    writeFileSync(
      file,
      `listeners:
  - port: 8080
server:
  trusted_proxies: [10.0.0.0/33]
upstreams:
  echo: { type: mock }
routes:
  - name: a
    upstream: echo
    policies:
      - type: ip-restriction
        config:
          allow: [10.0.0.0/8, 10.1.2/24]
          deny: ["2001:db8::/129", "fe80::1::2"]
`,
    );
    const run = Bun.spawnSync([BINARY, "validate", file], { stdio: ["ignore", "pipe", "pipe"] });
    const out = run.stdout.toString() + run.stderr.toString();
    expect(run.exitCode).toBe(1);
    expect(out).toContain('server.trusted_proxies[0]: "10.0.0.0/33" has a prefix length outside 0..32 (line 4');
    expect(out).toContain('routes[0].policies[0].config.allow[1]: "10.1.2/24" is not an IP address or CIDR range (line 13');
    expect(out).toContain('routes[0].policies[0].config.deny[0]: "2001:db8::/129" has a prefix length outside 0..128 (line 14');
    expect(out).toContain('routes[0].policies[0].config.deny[1]: "fe80::1::2" is not an IP address or CIDR range (line 14');
    writeFileSync(file, "listeners: [{ port: 8080 }]\nupstreams: { echo: { type: mock } }\nroutes:\n  - name: a\n    upstream: echo\n    policies: [{ type: ip-restriction, config: {} }]\n");
    const empty = Bun.spawnSync([BINARY, "validate", file], { stdio: ["ignore", "pipe", "pipe"] });
    expect(empty.stdout.toString() + empty.stderr.toString()).toContain("routes[0].policies[0].config: set allow, deny or both (line 6");
  });
});

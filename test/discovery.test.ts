/**
 * DNS service discovery through the built binary, against a DNS server the test runs on
 * loopback (test/helpers/dns-server.ts): a target host name stands for all its A
 * records, re-resolved on TTL so targets come and go without a config change; SRV
 * records give hosts and ports; a failing resolver keeps the last good set and is
 * logged once; a name with no address at start is a warning and 503s until it
 * resolves. Bad settings are refused by `validate` with path and line.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { Server } from "bun";
import { readFileSync } from "node:fs";
import { basics, freePort, startGateway, type Gateway } from "./helpers/gateway.ts";
import { createTestCa } from "./helpers/certs.ts";
import { startDnsServer, type TestDnsServer } from "./helpers/dns-server.ts";
import { expectProblem } from "./helpers/problem.ts";
import { eventually, lineOf, validateConfig } from "./helpers/traffic.ts";

// Real processes on a busy machine: allow more than Bun's default 5 s per test.
setDefaultTimeout(60_000);

/** An upstream on `address`:`port` that answers its address and the Host it was sent. */
function startNamed(address: string, port: number): Server<unknown> {
  return Bun.serve({
    hostname: address,
    port,
    fetch: (request) => Response.json({ address, host: request.headers.get("host") }),
  });
}

let dns: TestDnsServer;
/** One port, three loopback addresses: what a headless service looks like. */
let servicePort: number;
let pods: Server<unknown>[];
let srvPorts: number[];
let srvPods: Server<unknown>[];
let securePod: Server<unknown>;
let v6Pod: Server<unknown>;
let caPath: string;
let gateway: Gateway;

beforeAll(async () => {
  dns = await startDnsServer();
  servicePort = freePort();
  pods = ["127.0.0.2", "127.0.0.3", "127.0.0.4"].map((address) => startNamed(address, servicePort));
  srvPorts = [freePort(), freePort()];
  srvPods = srvPorts.map((port) => startNamed("127.0.0.1", port));
  dns.records.set("orders.shop.test", [{ type: "A", address: "127.0.0.2", ttl: 1 }]);
  dns.records.set("_http._tcp.billing.test", [
    { type: "SRV", priority: 0, weight: 1, port: srvPorts[0]!, target: "billing-0.test", ttl: 1 },
    { type: "SRV", priority: 0, weight: 1, port: srvPorts[1]!, target: "billing-1.test", ttl: 1 },
  ]);
  dns.records.set("billing-0.test", [{ type: "A", address: "127.0.0.1", ttl: 1 }]);
  dns.records.set("billing-1.test", [{ type: "A", address: "127.0.0.1", ttl: 1 }]);
  // An https service whose certificate names it, reached by address.
  const ca = createTestCa();
  const leaf = ca.issue({ file: "secure", commonName: "secure.shop.test", dnsNames: ["secure.shop.test"] });
  caPath = ca.certPath;
  securePod = Bun.serve({ hostname: "127.0.0.5", port: 0, tls: { cert: leaf.cert, key: leaf.key }, fetch: () => new Response("secure") });
  dns.records.set("secure.shop.test", [{ type: "A", address: "127.0.0.5", ttl: 30 }]);
  // A name with only an IPv6 address.
  v6Pod = Bun.serve({ hostname: "::1", port: 0, fetch: (request) => Response.json({ address: "::1", host: request.headers.get("host") }) });
  dns.records.set("v6.shop.test", [{ type: "AAAA", address: "::1", ttl: 30 }]);
  gateway = await startGateway(
    (ports) => `${basics(ports)}
server:
  workers: 1
upstreams:
  orders:
    targets: ["http://orders.shop.test:${servicePort}"]
    discovery: { resolver: ${dns.address}, min_ttl: 200ms, max_ttl: 2s, timeout: 500ms }
  billing:
    targets: ["http://_http._tcp.billing.test"]
    discovery: { type: srv, resolver: ${dns.address}, min_ttl: 200ms, max_ttl: 2s, timeout: 500ms }
  later:
    targets: ["http://later.shop.test:${servicePort}"]
    discovery: { resolver: ${dns.address}, min_ttl: 200ms, max_ttl: 400ms, timeout: 500ms }
  secure:
    targets: ["https://secure.shop.test:${securePod.port}"]
    tls: { ca: ${caPath} }
    discovery: { resolver: ${dns.address} }
  v6:
    targets: ["http://v6.shop.test:${v6Pod.port}"]
    discovery: { resolver: ${dns.address} }
routes:
  - name: v6
    match: { paths: [/v6] }
    upstream: v6
  - name: secure
    match: { paths: [/secure] }
    upstream: secure
  - name: orders
    match: { paths: [/orders/*] }
    upstream: orders
  - name: billing
    match: { paths: [/billing/*] }
    upstream: billing
  - name: later
    match: { paths: [/later/*] }
    upstream: later
`,
  );
}, 60_000);

afterAll(async () => {
  await gateway?.stop();
  dns?.stop();
  for (const server of [...(pods ?? []), ...(srvPods ?? []), securePod, v6Pod]) server?.stop(true);
}, 60_000);

/** The addresses that answered `count` requests to `path`. */
async function answeredBy(path: string, count: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < count; i++) {
    const response = await fetch(`${gateway.url}${path}`);
    if (response.status !== 200) throw new Error(`${path} answered ${response.status}: ${await response.text()}`);
    const body = (await response.json()) as { address: string };
    seen.add(body.address);
  }
  return seen;
}

describe("A records", () => {
  test("a name stands for its address; the upstream sees the name in Host", async () => {
    const response = await fetch(`${gateway.url}/orders/1`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ address: "127.0.0.2", host: `orders.shop.test:${servicePort}` });
  });

  test("addresses added in DNS get traffic after the TTL, removed ones stop getting it", async () => {
    dns.records.set("orders.shop.test", [
      { type: "A", address: "127.0.0.2", ttl: 1 },
      { type: "A", address: "127.0.0.3", ttl: 1 },
      { type: "A", address: "127.0.0.4", ttl: 1 },
    ]);
    let seen = new Set<string>();
    const deadline = performance.now() + 15_000;
    while (seen.size < 3 && performance.now() < deadline) {
      seen = await answeredBy("/orders/x", 6);
      if (seen.size < 3) await Bun.sleep(200);
    }
    expect([...seen].sort()).toEqual(["127.0.0.2", "127.0.0.3", "127.0.0.4"]);

    dns.records.set("orders.shop.test", [{ type: "A", address: "127.0.0.4", ttl: 1 }]);
    const until = performance.now() + 15_000;
    do {
      seen = await answeredBy("/orders/y", 6);
      if (seen.size === 1 && seen.has("127.0.0.4")) break;
      await Bun.sleep(200);
    } while (performance.now() < until);
    expect([...seen]).toEqual(["127.0.0.4"]);
    // GET /upstreams lists the addresses as the upstream's targets.
    let urls: string[] = [];
    const listed = performance.now() + 10_000;
    do {
      const status = (await (await fetch(`${gateway.adminUrl}/upstreams`)).json()) as { upstreams: Record<string, { targets: { url: string }[] }> };
      urls = status.upstreams.orders!.targets.map((target) => target.url);
      if (urls.length === 1) break;
      await Bun.sleep(200);
    } while (performance.now() < listed);
    expect(urls).toEqual([`http://127.0.0.4:${servicePort}`]);
  });

  test("a resolver that stops answering keeps the last good set, logged once", async () => {
    const queriesBefore = dns.queries.length;
    dns.silent = true;
    try {
      const failureLines = () => gateway.logs().split("\n").filter((line) => line.includes("DNS discovery failed") && line.includes("orders.shop.test"));
      await eventually(() => failureLines().length > 0, "the failure to be logged", 20_000);
      // Several more lookups fail (min_ttl 200ms, backing off up to 2s) without more lines.
      await eventually(() => dns.queries.length >= queriesBefore + 16, "lookups while the resolver is silent", 20_000);
      expect([...(await answeredBy("/orders/z", 4))]).toEqual(["127.0.0.4"]);
      const failures = failureLines();
      expect(failures.length).toBe(1);
      expect(failures[0]).toContain("keeping the last 1 address(es)");
    } finally {
      dns.silent = false;
    }
    await eventually(() => gateway.logs().includes("DNS discovery works again"), "the recovery to be logged", 15_000);
  });
});

describe("reload", () => {
  test("a reload while DNS is down keeps serving the addresses found before", async () => {
    // The current set: 127.0.0.4 only (from the test above).
    expect([...(await answeredBy("/orders/before", 3))]).toEqual(["127.0.0.4"]);
    dns.silent = true;
    try {
      gateway.writeConfig(`${readFileSync(gateway.configPath, "utf8")}\n# reloaded\n`);
      expect(await gateway.reload()).toBe("reloaded");
      expect([...(await answeredBy("/orders/after", 3))]).toEqual(["127.0.0.4"]);
    } finally {
      dns.silent = false;
    }
  });
});

describe("AAAA records", () => {
  test("a name with an IPv6 address is reached at that address", async () => {
    const response = await fetch(`${gateway.url}/v6`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ address: "::1", host: `v6.shop.test:${v6Pod.port}` });
  });
});

describe("https targets", () => {
  test("a discovered https target is reached by address and verified against its name", async () => {
    const response = await fetch(`${gateway.url}/secure`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("secure");
  });
});

describe("SRV records", () => {
  test("each SRV record's host and port is a target", async () => {
    const ports = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const response = await fetch(`${gateway.url}/billing/${i}`);
      expect(response.status).toBe(200);
      ports.add(((await response.json()) as { host: string }).host);
    }
    // The Host header names the SRV record's target host and port.
    expect([...ports].sort()).toEqual([`billing-0.test:${srvPorts[0]}`, `billing-1.test:${srvPorts[1]}`].sort());
  });
});

describe("a name with no address at start", () => {
  test("is a warning, requests get 503 problem+json, and it serves once the name resolves", async () => {
    expect(gateway.logs()).toContain("DNS discovery failed");
    expect(gateway.logs()).toContain("later.shop.test");
    await expectProblem(await fetch(`${gateway.url}/later/1`), 503);
    dns.records.set("later.shop.test", [{ type: "A", address: "127.0.0.3", ttl: 1 }]);
    let status = 0;
    const deadline = performance.now() + 15_000;
    while (status !== 200 && performance.now() < deadline) {
      const response = await fetch(`${gateway.url}/later/2`);
      status = response.status;
      await response.text();
      if (status !== 200) await Bun.sleep(200);
    }
    expect(status).toBe(200);
  });
});

describe("bad discovery settings are refused by validate with path and line", () => {
  test("a resolver that is not an IP address, max_ttl below min_ttl, discovery on a mock", () => {
    const text = `listeners: [{ port: 8080 }]
upstreams:
  a:
    targets: ["http://svc.test:80"]
    discovery: { resolver: dns.example:53 }
  b:
    targets: ["http://svc.test:80"]
    discovery: { min_ttl: 10s, max_ttl: 1s }
  c:
    type: mock
    discovery: {}
routes:
  - { name: r, upstream: a }
`;
    const out = validateConfig(text);
    expect(out.code).toBe(1);
    const expected: [string, string, number][] = [
      ["upstreams.a.discovery.resolver", "is not an IP address", lineOf(text, "dns.example")],
      ["upstreams.b.discovery.max_ttl", "must not be below min_ttl", lineOf(text, "max_ttl: 1s")],
      ["upstreams.c.discovery", "a mock upstream", lineOf(text, "discovery: {}")],
    ];
    for (const [where, words, line] of expected) {
      const found = out.lines.find((l) => l.startsWith(`${out.path}: ${where}`));
      expect(found, `an error at ${where} in:\n${out.lines.join("\n")}`).toBeDefined();
      expect(found!).toContain(words);
      expect(found!).toMatch(new RegExp(`\\(line ${line}, col \\d+\\)$`));
    }
  });
});

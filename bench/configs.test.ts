import { describe, expect, test } from "bun:test";
import { ConfigLoader } from "../src/config/load.ts";
import type { Measurement } from "./measure.ts";
import { nginxAccessLogPath, proxyConfig, UPSTREAM_BODY, upstreamConfig } from "./nginx.ts";
import { observabilityLines, observabilityVerdict, ratiosOf, type ScenarioResult } from "./report.ts";
import { turnpikeConfig } from "./turnpike.ts";
import { authHeaders, createBenchAuth } from "./auth.ts";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestCa } from "../test/helpers/certs.ts";

describe("bench configs", () => {
  test("the upstream answers exactly 48 bytes of JSON", () => {
    expect(Buffer.byteLength(UPSTREAM_BODY)).toBe(48);
    expect(JSON.parse(UPSTREAM_BODY)).toEqual({ ok: true, message: "hello from the upstream!" });
  });

  test("Turnpike accepts the bench config, with both routes on the one upstream", () => {
    const result = new ConfigLoader().loadText(turnpikeConfig(18080, 19901, 18081), "/tmp/bench.yaml");
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    const graph = result.loaded.graph;
    try {
      expect(graph.listeners.map((l) => `${l.address}:${l.port}`)).toEqual(["127.0.0.1:18080"]);
      expect(graph.admin.address).toBe("127.0.0.1");
      // plain and policies come first; other scenarios add routes after them, all on the bench upstream.
      expect(result.loaded.config.routes.slice(0, 2).map((r) => r.name)).toEqual(["plain", "policies"]);
      for (const route of result.loaded.config.routes) expect(route.upstream).toBe("backend");
      expect(result.loaded.config.routes[1]!.policies!.map((p) => p.type)).toEqual(["headers", "request-size-limit"]);
      // plain and policies measure the bare cost: no metrics, no access log.
      expect(result.loaded.config.observability).toEqual({ metrics: { enabled: false } });
    } finally {
      graph.dispose();
    }
  });

  test("with auth credentials, /api-key and /jwt hold the api-key and jwt policies; without, neither route exists", async () => {
    const auth = await createBenchAuth(mkdtempSync(join(tmpdir(), "turnpike-bench-auth-")));
    const result = new ConfigLoader().loadText(turnpikeConfig(18080, 19901, 18081, null, [], null, null, auth), "/tmp/bench.yaml");
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    try {
      const routes = result.loaded.config.routes;
      expect(routes.find((r) => r.name === "api-key")!.policies!.map((p) => p.type)).toEqual(["api-key"]);
      expect(routes.find((r) => r.name === "jwt")!.policies!.map((p) => p.type)).toEqual(["jwt"]);
      expect(result.loaded.graph.consumers.all().map((c) => c.name)).toEqual(["bench-client"]);
      expect(authHeaders(auth, "api-key")).toEqual({ apikey: auth.apiKey });
    } finally {
      result.loaded.graph.dispose();
    }
    const bare = new ConfigLoader().loadText(turnpikeConfig(18080, 19901, 18081), "/tmp/bench.yaml");
    if (!bare.ok) throw new Error(JSON.stringify(bare.errors));
    expect(bare.loaded.config.routes.map((r) => r.name)).not.toContain("api-key");
    bare.loaded.graph.dispose();
  });

  test("a cluster Turnpike points its store at the member and counts /limited there", () => {
    for (const mode of ["strict", "batched"] as const) {
      const result = new ConfigLoader().loadText(turnpikeConfig(18084, 19903, 18081, null, [], null, { member: "127.0.0.1:5701", mode }), "/tmp/bench.yaml");
      if (!result.ok) throw new Error(JSON.stringify(result.errors));
      try {
        expect(result.loaded.graph.store.type).toBe("hazelcast");
        expect(result.loaded.graph.store.settings).toMatchObject({ members: ["127.0.0.1:5701"], mode });
        const limited = result.loaded.config.routes.find((r) => r.name === "limited")!;
        expect(limited.policies!.map((p) => p.type)).toEqual(["rate-limit"]);
      } finally {
        result.loaded.graph.dispose();
      }
    }
  });

  test("the second Turnpike turns on metrics and an access log to the given file", () => {
    const result = new ConfigLoader().loadText(turnpikeConfig(18083, 19902, 18081, { accessLogPath: "/tmp/run/turnpike-access.log" }), "/tmp/bench.yaml");
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    try {
      expect(result.loaded.config.observability).toEqual({
        metrics: { enabled: true },
        access_log: { enabled: true, path: "/tmp/run/turnpike-access.log" },
      });
      expect(result.loaded.graph.admin.port).toBe(19902);
    } finally {
      result.loaded.graph.dispose();
    }
  });

  test("nginx's counterpart of the observability scenario is the plain proxy with an access log in the temp folder", () => {
    const text = proxyConfig("/tmp/run", 18082, 18081);
    expect(nginxAccessLogPath("/tmp/run")).toBe("/tmp/run/proxy-access.log");
    const location = text.match(/location = \/observability \{([^}]*)\}/)?.[1] ?? "";
    expect(location).toContain("access_log /tmp/run/proxy-access.log combined;");
    expect(location).toContain("proxy_pass http://backend;");
    expect(location).not.toContain("add_header");
  });

  test("both nginx roles listen on 127.0.0.1 only and keep their files in the temp folder", () => {
    for (const text of [upstreamConfig("/tmp/run", 18081), proxyConfig("/tmp/run", 18082, 18081)]) {
      const listens = [...text.matchAll(/^\s*listen\s+(\S+);/gm)].map((m) => m[1]);
      expect(listens.length).toBe(1);
      expect(listens[0]).toMatch(/^127\.0\.0\.1:\d+$/);
      for (const found of text.matchAll(/^\s*(?:pid|error_log|\w+_temp_path)\s+(\S+)/gm)) expect(found[1]!.startsWith("/tmp/run/")).toBe(true);
      expect(text).toContain("master_process off;");
      expect(text).toContain("access_log off;");
    }
  });

  test("the least-connections scenario: three targets on both proxies, least_conn on nginx, least_connections on Turnpike", () => {
    const pool = [18091, 18092, 18093];
    const upstream = upstreamConfig("/tmp/run", 18081, pool);
    expect([...upstream.matchAll(/^\s*listen\s+(\S+);/gm)].map((m) => m[1])).toEqual(["127.0.0.1:18081", ...pool.map((p) => `127.0.0.1:${p}`)]);
    const nginx = proxyConfig("/tmp/run", 18082, 18081, pool);
    expect(nginx).toMatch(/upstream pool \{\s*least_conn;\s*server 127\.0\.0\.1:18091;\s*server 127\.0\.0\.1:18092;\s*server 127\.0\.0\.1:18093;\s*keepalive 64;/);
    expect(nginx.match(/location = \/balanced \{([^}]*)\}/)?.[1]).toContain("proxy_pass http://pool;");
    const result = new ConfigLoader().loadText(turnpikeConfig(18080, 19901, 18081, null, pool), "/tmp/bench.yaml");
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    const upstreamOfPool = result.loaded.graph.upstreams.get("pool");
    expect(upstreamOfPool?.kind === "http" && upstreamOfPool.balancerName).toBe("least_connections");
    expect(upstreamOfPool?.kind === "http" && upstreamOfPool.targets.map((t) => t.url)).toEqual(pool.map((p) => `http://127.0.0.1:${p}`));
    result.loaded.graph.dispose();
  });

  test("the reference proxy pools upstream connections as the issue asks", () => {
    const text = proxyConfig("/tmp/run", 18082, 18081);
    expect(text).toMatch(/upstream backend \{\s*server 127\.0\.0\.1:18081;\s*keepalive 64;/);
    // Every location that proxies talks HTTP/1.1 with keep-alive to the upstream.
    const proxied = text.match(/proxy_pass /g)?.length ?? 0;
    expect(proxied).toBeGreaterThanOrEqual(3);
    expect(text.match(/proxy_http_version 1\.1;/g)?.length).toBe(proxied);
    expect(text.match(/proxy_set_header Connection "";/g)?.length).toBe(proxied);
  });
});

function fakeRun(cpuPerRequest: number, requests = 100_000): Measurement {
  const use = (perRequest: number) => ({ microseconds: perRequest * requests, perRequest, cores: 1 });
  return {
    url: "http://127.0.0.1/plain",
    wrk: { requests, requestsPerSecond: requests / 10, latencyPercentilesUs: { "50": 1000, "99": 3000 } } as unknown as Measurement["wrk"],
    wallSeconds: 10,
    cpu: { proxy: use(cpuPerRequest), upstream: use(10), supervisor: use(0) },
    errors: 0,
    wrkCores: 0.5,
    otherCores: 0,
    stolenCores: 0,
  };
}

function scenario(name: string, nginx: number, turnpike: number): ScenarioResult {
  const [n, t] = [fakeRun(nginx), fakeRun(turnpike)];
  return { name, description: name, nginx: n, turnpike: t, ratios: ratiosOf(n, t), rounds: { nginx: [n], turnpike: [t] } };
}

describe("telemetry goal", () => {
  const log = { path: "x", runs: [{ lines: 100_010, requests: 100_000 }], lines: 100_010, requests: 100_000, ok: true };
  const scrapes = { ok: 12, failed: 0, lastBytes: 5000 };

  test("observability / plain of Turnpike at most 1.10 passes, with nginx's ratio beside it", () => {
    const verdict = observabilityVerdict(scenario("plain", 20, 60), scenario("observability", 22, 65), log, scrapes);
    expect(verdict.ratio).toBeCloseTo(65 / 60, 6);
    expect(verdict.pass).toBe(true);
    expect(verdict.nginxRatio).toBeCloseTo(1.1, 6);
    const text = observabilityLines(verdict).join("\n");
    expect(text).toContain("**PASS**");
    expect(text).toContain("100,010 lines written during the measured runs for 100,000 requests");
  });

  test("more than 10 % extra fails", () => {
    const verdict = observabilityVerdict(scenario("plain", 20, 60), scenario("observability", 21, 66.6), log, scrapes);
    expect(verdict.pass).toBe(false);
    expect(observabilityLines(verdict).join("\n")).toContain("**FAIL**");
  });
});

describe("bench configs of the HTTPS scenarios", () => {
  test("Turnpike gets a native TLS listener and one with client certificates; nginx an ssl server", () => {
    const ca = createTestCa();
    const server = ca.issue({ file: "server", commonName: "localhost", dnsNames: ["localhost"] });
    const files = { certPath: server.certPath, keyPath: server.keyPath, caPath: ca.certPath };
    const result = new ConfigLoader().loadText(turnpikeConfig(18080, 19901, 18081, null, [], { tlsPort: 18443, mtlsPort: 18444, ...files }), "/tmp/bench.yaml");
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    try {
      const listeners = result.loaded.graph.listeners;
      expect(listeners.map((l) => [l.port, l.scheme, l.clientCertificates?.mode ?? null])).toEqual([
        [18080, "http", null],
        [18443, "https", null],
        [18444, "https", "request"],
      ]);
    } finally {
      result.loaded.graph.dispose();
    }
    const nginx = proxyConfig("/tmp/run", 18082, 18081, [], { port: 18445, ...files });
    expect(nginx).toContain("listen 127.0.0.1:18445 ssl;");
    expect(nginx).toContain("ssl_verify_client optional;");
  });
});

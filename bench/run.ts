/**
 * `bun run bench`: Turnpike side by side with nginx on the same upstream.
 *
 * Starts an nginx upstream, nginx as the reference proxy and Turnpike (--workers 1),
 * all on 127.0.0.1; for each scenario loads nginx and then Turnpike with wrk; prints
 * throughput, p50/p99 latency and CPU per request of each proxy process with the
 * Turnpike/nginx ratios; writes bench/results/<date-time>.{md,json}.
 * Every process it starts is stopped on the way out, also on error or Ctrl-C.
 * See bench/README.md.
 */
import { closeSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, statSync } from "node:fs";
import { cpus, loadavg, release, tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { measure, type LoadSettings, type Measurement, type Watched } from "./measure.ts";
import { ECHO_HEADER, nginxAccessLogPath, POLICY_REQUEST_HEADER, proxyConfig, startNginx, upstreamConfig, UPSTREAM_BODY } from "./nginx.ts";
import { parseOptions, USAGE, UsageError, type BenchOptions } from "./options.ts";
import { clockTicksPerSecond, memoryKiB, Processes } from "./processes.ts";
import { startMember, type BenchMember } from "./hazelcast.ts";
import {
  clusterVerdict,
  leastConnectionsVerdict,
  observabilityVerdict,
  ratiosOf,
  toMarkdown,
  writeResults,
  type AccessLogCheck,
  type BenchResult,
  type ClusterVerdict,
  type ScenarioResult,
  type Scrapes,
} from "./report.ts";
import { createTestCa } from "../test/helpers/certs.ts";
import { ensureBinary, ensureTools, firstLine } from "./tools.ts";
import { startTurnpike, type TurnpikeProcess } from "./turnpike.ts";
import { authHeaders, createBenchAuth, type BenchAuth } from "./auth.ts";

const REPO = resolve(import.meta.dir, "..");
/** Cores busy with other work above which a run is reported as disturbed. */
const DISTURBED_CORES = 0.15;
const BINARY = join(REPO, "dist/turnpike");

/** A scenario: the same path on both proxies, configured to do the same work. */
interface Scenario {
  name: string;
  path: string;
  description: string;
  /** Response header both proxies must send back on this path (checked before loading). */
  expectResponseHeader: [string, string] | null;
  /** Response header only Turnpike sends on this path (nginx has no counterpart), checked before loading. */
  expectTurnpikeHeader?: [string, string];
  /** Whether the request header set by the policy must reach the upstream. */
  expectPolicyHeader: boolean;
  /** nginx's path when it differs from `path` (its counterpart location). */
  nginxPath?: string;
  /**
   * Which Turnpike serves it: the one with telemetry off, the one with metrics and an
   * access log, or one whose store is a Hazelcast member (strict or batched counters).
   */
  turnpike: "bare" | "telemetry" | "hazelcast-strict" | "hazelcast-batched";
  /**
   * Over HTTPS: `tls` is Turnpike's native TLS listener, `mtls` its listener with client
   * certificates (the TLS bridge); nginx's HTTPS server answers both. Absent: plain HTTP.
   */
  listener?: "tls" | "mtls";
  /** Credentials sent with every request (to both proxies; nginx ignores them). */
  auth?: "api-key" | "jwt";
}

const CLUSTER_DESCRIPTION =
  "GET `/limited` on a Turnpike (its own ports, `--workers 1`) whose store is a Hazelcast member on loopback (started by the bench " +
  "with scripts/hazelcast.sh), with a `rate-limit` policy (key route, 10^9 per hour: every request counted, none refused). " +
  "nginx: the plain proxy_pass (it has no cluster limits).";

const SCENARIOS: Scenario[] = [
  {
    name: "plain",
    path: "/plain",
    description: "GET forwarded as is. nginx: proxy_pass; Turnpike: a route with no policy.",
    expectResponseHeader: null,
    expectPolicyHeader: false,
    turnpike: "bare",
  },
  {
    name: "observability",
    path: "/plain",
    nginxPath: "/observability",
    description:
      "`/plain` on a second Turnpike (its own ports, `--workers 1`) with metrics on and an access log to a file, " +
      "`GET /metrics` scraped on its admin port once a second during its runs; the Turnpike of the other scenarios " +
      "runs with telemetry off. nginx: the plain proxy_pass with `access_log` to a file.",
    expectResponseHeader: null,
    expectPolicyHeader: false,
    turnpike: "telemetry",
  },
  {
    name: "policies",
    path: "/policies",
    description:
      `GET through a typical chain: set request header \`${POLICY_REQUEST_HEADER}\`, a 1 MiB request body limit, ` +
      "set response header `cache-control: no-store`. nginx: proxy_set_header, client_max_body_size, add_header; " +
      "Turnpike: `headers` and `request-size-limit` policies and route `response_headers`.",
    expectResponseHeader: ["cache-control", "no-store"],
    expectPolicyHeader: true,
    turnpike: "bare",
  },
  {
    name: "least-connections",
    path: "/balanced",
    description:
      "GET balanced by least connections over three healthy targets (three addresses of the upstream nginx). " +
      "nginx: an upstream block with `least_conn`; Turnpike: `balancer: least_connections` (node-wide in-flight counts in shared memory). " +
      "The goal compares Turnpike's CPU per request here with its plain route.",
    expectResponseHeader: null,
    expectPolicyHeader: false,
    turnpike: "bare",
  },
  {
    name: "rate-limit",
    path: "/rate-limited",
    description:
      "GET through a rate limit per client address that never refuses (10^9 per second), counted in node shared memory, " +
      "with the RateLimit/RateLimit-Policy headers on every answer. nginx: limit_req per $binary_remote_addr (10^6 r/s, nodelay). " +
      "Its Turnpike CPU per request is compared with plain's (goal ≤ 1.1×).",
    expectResponseHeader: null,
    expectTurnpikeHeader: ["ratelimit-policy", '"1000000000-per-1s";q=1000000000;w=1'],
    expectPolicyHeader: false,
    turnpike: "bare",
  },
  {
    name: "api-key",
    path: "/api-key",
    nginxPath: "/plain",
    description:
      "GET with an `apikey` header through the `api-key` policy (SHA-256 lookup, constant-time compare, consumer headers " +
      "forwarded, key removed). nginx: the plain proxy_pass (same header sent). Goal: Turnpike CPU per request ≤ 1.3× nginx's plain.",
    expectResponseHeader: null,
    expectPolicyHeader: false,
    turnpike: "bare",
    auth: "api-key",
  },
  {
    name: "jwt",
    path: "/jwt",
    nginxPath: "/plain",
    description:
      "GET with one RS256 bearer token through the `jwt` policy (PEM key, iss/aud/exp checks; after the first request the " +
      "verified token is served from the cache keyed by its SHA-256). nginx: the plain proxy_pass (same header sent). " +
      "Goal: Turnpike CPU per request ≤ 1.4× nginx's plain.",
    expectResponseHeader: null,
    expectPolicyHeader: false,
    turnpike: "bare",
    auth: "jwt",
  },
  {
    name: "concurrency",
    path: "/concurrency-limited",
    description:
      "GET through a route concurrency limit that never refuses (max 1000 in flight, queue 100), counted node-wide in shared memory " +
      "and held until the response body is sent. nginx: limit_conn 1000 per server. Its Turnpike CPU per request is compared with plain's.",
    expectResponseHeader: null,
    expectPolicyHeader: false,
    turnpike: "bare",
  },
  {
    name: "tls",
    path: "/plain",
    description:
      "GET /plain over HTTPS (keep-alive, so handshakes are rare). nginx: an ssl server with ssl_verify_client optional; " +
      "Turnpike: a listener with Bun's native TLS.",
    expectResponseHeader: null,
    expectPolicyHeader: false,
    turnpike: "bare",
    listener: "tls",
  },
  {
    name: "mtls",
    path: "/plain",
    description:
      "GET /plain over HTTPS on Turnpike's listener with `client_certificates` (mode request; wrk sends no certificate), " +
      "served through the TLS bridge (node:tls piping to Bun.serve on loopback). nginx: the same ssl server as `tls`.",
    expectResponseHeader: null,
    expectPolicyHeader: false,
    turnpike: "bare",
    listener: "mtls",
  },
  {
    name: "hazelcast-strict",
    path: "/limited",
    nginxPath: "/plain",
    description: `${CLUSTER_DESCRIPTION} Strict: every request is one exact compare-and-swap on the member.`,
    expectResponseHeader: null,
    expectPolicyHeader: false,
    turnpike: "hazelcast-strict",
  },
  {
    name: "hazelcast-batched",
    path: "/limited",
    nginxPath: "/plain",
    description: `${CLUSTER_DESCRIPTION} Batched: the worker takes counts from the member in blocks (1 % of the limit over all workers).`,
    expectResponseHeader: null,
    expectPolicyHeader: false,
    turnpike: "hazelcast-batched",
  },
];

/** The run with the median proxy CPU per request (the lower middle one of an even count). */
function medianRun(runs: readonly Measurement[]): Measurement {
  const sorted = [...runs].sort((a, b) => a.cpu.proxy!.perRequest - b.cpu.proxy!.perRequest);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

/** A free TCP port on 127.0.0.1 (bound, then released). */
function freePort(): number {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return port;
}

/** Checks that `url` answers like the upstream, with the headers its scenario promises. */
async function checkAnswer(proxy: string, url: string, scenario: Scenario, headers?: Record<string, string>): Promise<void> {
  // The bench's certificates are made for the run; only the answer is checked here.
  const response = await fetch(url, { tls: { rejectUnauthorized: false }, headers });
  const body = await response.text();
  const problems: string[] = [];
  if (response.status !== 200) problems.push(`status ${response.status}`);
  if (body !== UPSTREAM_BODY) problems.push(`body ${JSON.stringify(body.slice(0, 200))}`);
  const echoed = response.headers.get(ECHO_HEADER);
  if (scenario.expectPolicyHeader && echoed !== "on") problems.push(`the upstream did not get ${POLICY_REQUEST_HEADER}: on`);
  if (!scenario.expectPolicyHeader && echoed !== null) problems.push(`the upstream got ${POLICY_REQUEST_HEADER} on a plain route`);
  if (scenario.expectResponseHeader) {
    const [name, value] = scenario.expectResponseHeader;
    if (response.headers.get(name) !== value) problems.push(`response header ${name} is ${response.headers.get(name)}, not ${value}`);
  }
  if (scenario.expectTurnpikeHeader && proxy === "Turnpike") {
    const [name, value] = scenario.expectTurnpikeHeader;
    if (response.headers.get(name) !== value) problems.push(`response header ${name} is ${response.headers.get(name)}, not ${value}`);
  }
  if (problems.length > 0) throw new Error(`${proxy} ${url} does not answer as expected: ${problems.join("; ")}`);
}

/** Newlines in `path` from byte `from` to byte `to`. */
function linesBetween(path: string, from: number, to: number): number {
  const fd = openSync(path, "r");
  try {
    const buffer = Buffer.alloc(1 << 20);
    let lines = 0;
    for (let at = from; at < to; ) {
      const read = readSync(fd, buffer, 0, Math.min(buffer.length, to - at), at);
      if (read <= 0) break;
      for (let i = 0; i < read; i++) if (buffer[i] === 10) lines++;
      at += read;
    }
    return lines;
  } finally {
    closeSync(fd);
  }
}

const sizeOf = (path: string) => {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
};

/** Scrapes `GET /metrics` once a second, as Prometheus would, until stopped. */
function startScraping(adminUrl: string, scrapes: Scrapes): () => Promise<void> {
  let busy: Promise<void> = Promise.resolve();
  const scrape = async () => {
    try {
      const response = await fetch(`${adminUrl}/metrics`);
      const text = await response.text();
      if (response.status === 200 && text.includes("# TYPE")) {
        scrapes.ok++;
        scrapes.lastBytes = text.length;
      } else scrapes.failed++;
    } catch {
      scrapes.failed++;
    }
  };
  const timer = setInterval(() => {
    busy = scrape();
  }, 1000);
  return async () => {
    clearInterval(timer);
    await busy;
  };
}

function gitCommit(): string {
  const head = Bun.spawnSync(["git", "rev-parse", "--short", "HEAD"], { cwd: REPO, stdout: "pipe", stderr: "ignore" });
  const dirty = Bun.spawnSync(["git", "status", "--porcelain", "--", "src"], { cwd: REPO, stdout: "pipe", stderr: "ignore" });
  const commit = head.stdout.toString().trim() || "unknown commit";
  return dirty.stdout.toString().trim() ? `${commit} with uncommitted changes in src/` : commit;
}

const line = (m: Measurement) =>
  `${Math.round(m.wrk.requestsPerSecond)} req/s, p50 ${(m.wrk.latencyPercentilesUs["50"]! / 1000).toFixed(2)} ms, ` +
  `p99 ${(m.wrk.latencyPercentilesUs["99"]! / 1000).toFixed(2)} ms, ${m.cpu.proxy!.perRequest.toFixed(1)} µs CPU/req` +
  (m.errors ? `, ${m.errors} errors` : "") +
  (m.otherCores + m.stolenCores > DISTURBED_CORES ? `, ${(m.otherCores + m.stolenCores).toFixed(2)} cores busy elsewhere` : "");

async function benchmark(options: BenchOptions, processes: Processes, dir: string): Promise<BenchResult> {
  const startedAt = new Date().toISOString();
  const loadAverage = loadavg().map((n) => Number(n.toFixed(2)));
  const warnings: string[] = [];
  const tools = await ensureTools();
  const stale = await ensureBinary(REPO, BINARY, options.rebuild);
  if (stale) {
    console.warn(`warning: ${stale}`);
    warnings.push(stale);
  }
  if (options.quick) warnings.push("Quick run: short runs give rough numbers; use the default mode for figures to compare.");

  const scenarios = SCENARIOS.filter((s) => options.scenarios.includes(s.name));
  const withTelemetry = scenarios.some((s) => s.turnpike === "telemetry");
  const ports = {
    upstream: freePort(),
    nginx: freePort(),
    nginxTls: freePort(),
    turnpike: freePort(),
    turnpikeTls: freePort(),
    turnpikeMtls: freePort(),
    admin: freePort(),
    telemetry: freePort(),
    telemetryAdmin: freePort(),
  };
  const poolPorts = [freePort(), freePort(), freePort()];
  // A throwaway CA and server certificate for the HTTPS scenarios.
  const certDir = join(dir, "certs");
  mkdirSync(certDir);
  const ca = createTestCa(certDir);
  const server = ca.issue({ file: "server", commonName: "localhost", dnsNames: ["localhost"] });
  const tlsFiles = { certPath: server.certPath, keyPath: server.keyPath, caPath: ca.certPath };
  console.log(`Starting the upstream, nginx and Turnpike (temp files in ${dir})`);
  const upstream = await startNginx(tools.nginx, processes, dir, "upstream", ports.upstream, upstreamConfig(dir, ports.upstream, poolPorts), "/");
  const nginx = await startNginx(
    tools.nginx,
    processes,
    dir,
    "proxy",
    ports.nginx,
    proxyConfig(dir, ports.nginx, ports.upstream, poolPorts, { port: ports.nginxTls, ...tlsFiles }),
    "/plain",
  );
  const auth: BenchAuth | null = scenarios.some((s) => s.auth) ? await createBenchAuth(dir) : null;
  const headersOf = (scenario: Scenario) => (auth && scenario.auth ? authHeaders(auth, scenario.auth) : undefined);
  const turnpike = await startTurnpike(BINARY, processes, dir, {
    auth: auth ?? undefined,
    port: ports.turnpike,
    adminPort: ports.admin,
    upstreamPort: ports.upstream,
    poolPorts,
    tls: { tlsPort: ports.turnpikeTls, mtlsPort: ports.turnpikeMtls, ...tlsFiles },
  });
  const accessLogPath = join(dir, "turnpike-access.log");
  let telemetry: TurnpikeProcess | null = null;
  if (withTelemetry) {
    telemetry = await startTurnpike(
      BINARY,
      processes,
      dir,
      { port: ports.telemetry, adminPort: ports.telemetryAdmin, upstreamPort: ports.upstream },
      "turnpike-telemetry",
      { accessLogPath },
    );
  }
  // Cluster scenarios: one member, and a Turnpike per counting mode pointed at it.
  const clusterModes = (["strict", "batched"] as const).filter((mode) => scenarios.some((s) => s.turnpike === `hazelcast-${mode}`));
  let member: BenchMember | null = null;
  const clustered = new Map<string, TurnpikeProcess>();
  if (clusterModes.length > 0) {
    console.log("Starting a Hazelcast member (scripts/hazelcast.sh)");
    member = await startMember(processes, dir, freePort());
    for (const mode of clusterModes) {
      const name = `turnpike-hazelcast-${mode}`;
      const cluster = { member: member.address, mode };
      const started = await startTurnpike(BINARY, processes, dir, { port: freePort(), adminPort: freePort(), upstreamPort: ports.upstream, cluster }, name);
      // Fail-open limits answer 200 without the cluster too: measure only once it counts there.
      const deadline = performance.now() + 30_000;
      while (!(await Bun.file(started.log).text()).includes("connected to the Hazelcast cluster")) {
        if (performance.now() > deadline) throw new Error(`${name} did not connect to the Hazelcast member within 30 s (log: ${started.log})`);
        await Bun.sleep(100);
      }
      clustered.set(`hazelcast-${mode}`, started);
    }
  }
  const turnpikeFor = (scenario: Scenario) =>
    scenario.turnpike === "telemetry" ? telemetry! : scenario.turnpike === "bare" ? turnpike : clustered.get(scenario.turnpike)!;
  const nginxBase = (scenario: Scenario) => (scenario.listener ? `https://127.0.0.1:${ports.nginxTls}` : nginx.url);
  const turnpikeBase = (scenario: Scenario) =>
    scenario.listener === "tls"
      ? `https://127.0.0.1:${ports.turnpikeTls}`
      : scenario.listener === "mtls"
        ? `https://127.0.0.1:${ports.turnpikeMtls}`
        : turnpikeFor(scenario).url;

  for (const scenario of scenarios) {
    await checkAnswer("nginx", nginxBase(scenario) + (scenario.nginxPath ?? scenario.path), scenario, headersOf(scenario));
    await checkAnswer("Turnpike", turnpikeBase(scenario) + scenario.path, scenario, headersOf(scenario));
    if (scenario.auth) {
      // The route must really refuse a request without the credentials.
      const refused = await fetch(turnpikeBase(scenario) + scenario.path);
      await refused.arrayBuffer();
      if (refused.status !== 401) throw new Error(`Turnpike ${scenario.path} answers ${refused.status} without credentials, not 401`);
    }
  }
  // The bare Turnpike must not serve metrics (telemetry off); the other must, and log.
  {
    const bare = await fetch(`http://127.0.0.1:${ports.admin}/metrics`);
    await bare.arrayBuffer();
    if (bare.status === 200) throw new Error("the Turnpike with telemetry off serves GET /metrics; its config did not turn metrics off");
    if (telemetry) {
      const scraped = await fetch(`${telemetry.adminUrl}/metrics`);
      const text = await scraped.text();
      if (scraped.status !== 200 || !text.includes("# TYPE")) throw new Error(`the Turnpike with telemetry answers GET /metrics with ${scraped.status}`);
      await Bun.sleep(500);
      if (linesBetween(accessLogPath, 0, sizeOf(accessLogPath)) < 1) throw new Error(`the Turnpike with telemetry wrote no access log line to ${accessLogPath}`);
    }
  }
  const idle = {
    worker: memoryKiB(turnpike.workerPid).rss,
    supervisor: memoryKiB(turnpike.supervisorPid).rss,
    nginx: memoryKiB(nginx.pid).rss,
  };
  console.log(
    `Turnpike worker pid ${turnpike.workerPid} (supervisor ${turnpike.supervisorPid}), idle RSS ${(idle.worker / 1024).toFixed(1)} MiB; ` +
      `nginx proxy pid ${nginx.pid}, idle RSS ${(idle.nginx / 1024).toFixed(1)} MiB`,
  );

  const load: LoadSettings = {
    wrk: tools.wrk,
    threads: options.threads,
    connections: options.connections,
    durationSeconds: options.durationSeconds,
    warmupSeconds: options.warmupSeconds,
    clockTicksPerSecond: clockTicksPerSecond(),
  };
  const upstreamWatch: Watched = { name: "upstream", pid: upstream.pid };
  const results: ScenarioResult[] = [];
  const nginxWatch: Watched[] = [{ name: "proxy", pid: nginx.pid }, upstreamWatch];
  const watchOf = (t: TurnpikeProcess): Watched[] => [
    { name: "proxy", pid: t.workerPid },
    upstreamWatch,
    { name: "supervisor", pid: t.supervisorPid },
    ...(member && [...clustered.values()].includes(t) ? [{ name: "member", pid: member.pid }] : []),
  ];
  const scrapes: Scrapes = { ok: 0, failed: 0, lastBytes: 0 };
  const accessLogRuns: AccessLogCheck["runs"] = [];
  for (const scenario of scenarios) {
    const target = turnpikeFor(scenario);
    const turnpikeWatch = watchOf(target);
    const nginxUrl = nginxBase(scenario) + (scenario.nginxPath ?? scenario.path);
    const rounds: { nginx: Measurement[]; turnpike: Measurement[] } = { nginx: [], turnpike: [] };
    for (let round = 1; round <= options.rounds; round++) {
      const tag = options.rounds > 1 ? `[${scenario.name} ${round}/${options.rounds}]` : `[${scenario.name}]`;
      console.log(`\n${tag} nginx: warm-up ${load.warmupSeconds} s, run ${load.durationSeconds} s`);
      const onNginx = await measure(nginxUrl, nginxWatch, load, processes, undefined, headersOf(scenario));
      console.log(`${tag} nginx: ${line(onNginx)}`);
      console.log(`${tag} Turnpike: warm-up ${load.warmupSeconds} s, run ${load.durationSeconds} s`);
      let onTurnpike: Measurement;
      if (scenario.turnpike === "telemetry") {
        const stopScraping = startScraping(target.adminUrl, scrapes);
        let logBytesAtStart = 0;
        try {
          onTurnpike = await measure(target.url + scenario.path, turnpikeWatch, load, processes, () => {
            logBytesAtStart = sizeOf(accessLogPath);
          });
        } finally {
          await stopScraping();
        }
        // The log is written in batches (flushed every 100 ms by default): let the last one land.
        await Bun.sleep(600);
        const lines = linesBetween(accessLogPath, logBytesAtStart, sizeOf(accessLogPath));
        accessLogRuns.push({ lines, requests: onTurnpike.wrk.requests });
        console.log(`${tag} Turnpike: ${line(onTurnpike)}; access log +${lines} lines for ${onTurnpike.wrk.requests} requests`);
      } else {
        onTurnpike = await measure(turnpikeBase(scenario) + scenario.path, turnpikeWatch, load, processes, undefined, headersOf(scenario));
        console.log(`${tag} Turnpike: ${line(onTurnpike)}`);
      }
      rounds.nginx.push(onNginx);
      rounds.turnpike.push(onTurnpike);
    }
    const onNginx = medianRun(rounds.nginx);
    const onTurnpike = medianRun(rounds.turnpike);
    const failed = [...rounds.nginx, ...rounds.turnpike].reduce((sum, m) => sum + m.errors, 0);
    if (failed > 0) warnings.push(`${scenario.name}: wrk saw ${failed} errors (bad statuses or socket errors); the figures are suspect.`);
    for (const [proxy, m] of [["nginx", onNginx], ["Turnpike", onTurnpike]] as const) {
      const disturbed = m.otherCores + m.stolenCores;
      if (disturbed > DISTURBED_CORES) {
        warnings.push(
          `${scenario.name} on ${proxy}: ${disturbed.toFixed(2)} cores went to other work during the run; ` +
            "its throughput and latency are disturbed (CPU per request less so). Run again on a quiet machine.",
        );
      }
    }
    results.push({
      name: scenario.name,
      description: scenario.description,
      nginx: onNginx,
      turnpike: onTurnpike,
      ratios: ratiosOf(onNginx, onTurnpike),
      rounds,
    });
  }

  const plain = results.find((r) => r.name === "plain");
  const policies = results.find((r) => r.name === "policies");
  const withLogs = results.find((r) => r.name === "observability");
  const balanced = results.find((r) => r.name === "least-connections");
  const rateLimited = results.find((r) => r.name === "rate-limit");
  const apiKeyed = results.find((r) => r.name === "api-key");
  const jwtAuthed = results.find((r) => r.name === "jwt");
  const accessLog: AccessLogCheck | null = withLogs
    ? {
        path: "turnpike-access.log in the run's temp folder",
        runs: accessLogRuns,
        lines: accessLogRuns.reduce((sum, r) => sum + r.lines, 0),
        requests: accessLogRuns.reduce((sum, r) => sum + r.requests, 0),
        ok: accessLogRuns.every((r) => r.requests > 0 && Math.abs(r.lines - r.requests) <= Math.max(100, 0.01 * r.requests)),
      }
    : null;
  if (accessLog && !accessLog.ok) {
    warnings.push(`observability: the access log has ${accessLog.lines} lines for ${accessLog.requests} requests wrk completed; the scenario did not log every request.`);
  }
  const cluster: ClusterVerdict[] = plain
    ? results.flatMap((r) => (r.name === "hazelcast-strict" ? [clusterVerdict(plain, r, "strict")] : r.name === "hazelcast-batched" ? [clusterVerdict(plain, r, "batched")] : []))
    : [];
  if (!plain && clusterModes.length > 0) warnings.push("hazelcast scenarios: the plain scenario did not run, so there is no ratio to the plain route.");
  if (withLogs && scrapes.failed > 0) warnings.push(`observability: ${scrapes.failed} of ${scrapes.ok + scrapes.failed} scrapes of GET /metrics failed.`);
  const cpuModel = cpus()[0]?.model.trim() ?? "unknown CPU";
  return {
    format: "turnpike-bench/1",
    startedAt,
    finishedAt: new Date().toISOString(),
    quick: options.quick,
    settings: {
      wrkCommand: `wrk -t${load.threads} -c${load.connections} -d${load.durationSeconds}s --latency`,
      threads: load.threads,
      connections: load.connections,
      rounds: options.rounds,
      durationSeconds: load.durationSeconds,
      warmupSeconds: load.warmupSeconds,
      clockTicksPerSecond: load.clockTicksPerSecond,
      upstreamBodyBytes: Buffer.byteLength(UPSTREAM_BODY),
      turnpikeWorkers: 1,
      turnpikeTelemetry: "off (observability.metrics.enabled: false, no access log), except in the observability scenario",
    },
    environment: {
      cpuCount: cpus().length,
      cpuModel,
      kernel: release(),
      bun: Bun.version,
      nginx: firstLine([tools.nginx, "-v"]).replace(/^nginx version:\s*/, ""),
      wrk: firstLine([tools.wrk, "-v"]).replace(/\s*\[.*$/, "").replace(/\s+Copyright.*$/, ""),
      turnpike: firstLine([BINARY, "version"]),
      commit: gitCommit(),
      loadAverage,
    },
    memory: {
      turnpikeWorkerIdleRss: idle.worker,
      turnpikeSupervisorIdleRss: idle.supervisor,
      nginxProxyIdleRss: idle.nginx,
      turnpikeWorkerPeakRss: memoryKiB(turnpike.workerPid).peakRss,
      nginxProxyPeakRss: memoryKiB(nginx.pid).peakRss,
    },
    scenarios: results,
    policyChainVsNginxPlain: plain && policies ? policies.turnpike.cpu.proxy!.perRequest / plain.nginx.cpu.proxy!.perRequest : null,
    authVsNginxPlain: plain
      ? {
          apiKey: apiKeyed ? apiKeyed.turnpike.cpu.proxy!.perRequest / plain.nginx.cpu.proxy!.perRequest : null,
          jwt: jwtAuthed ? jwtAuthed.turnpike.cpu.proxy!.perRequest / plain.nginx.cpu.proxy!.perRequest : null,
        }
      : null,
    authVsTurnpikePlain: plain
      ? {
          apiKey: apiKeyed ? apiKeyed.turnpike.cpu.proxy!.perRequest / plain.turnpike.cpu.proxy!.perRequest : null,
          jwt: jwtAuthed ? jwtAuthed.turnpike.cpu.proxy!.perRequest / plain.turnpike.cpu.proxy!.perRequest : null,
        }
      : null,
    rateLimitVsPlain: plain && rateLimited ? rateLimited.turnpike.cpu.proxy!.perRequest / plain.turnpike.cpu.proxy!.perRequest : null,
    observability: plain && withLogs ? observabilityVerdict(plain, withLogs, accessLog!, scrapes) : null,
    cluster,
    leastConnections: plain && balanced ? leastConnectionsVerdict(plain, balanced) : null,
    warnings,
  };
}

async function main(): Promise<number> {
  let options: BenchOptions | null;
  try {
    options = parseOptions(process.argv.slice(2), process.env, SCENARIOS.map((s) => s.name), join(REPO, "bench/results"));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`bench: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (options === null) {
    console.log(`${USAGE}\nScenarios:\n${SCENARIOS.map((s) => `  ${s.name.padEnd(19)}${s.description.split(". ")[0]}.`).join("\n")}`);
    return 0;
  }

  const processes = new Processes();
  const dir = mkdtempSync(join(tmpdir(), "turnpike-bench-"));
  let stopping = false;
  const stopEverything = async (code: number, why: string) => {
    if (stopping) return;
    stopping = true;
    console.error(`\nbench: ${why}; stopping the processes it started`);
    await processes.stopAll();
    rmSync(dir, { recursive: true, force: true });
    process.exit(code);
  };
  process.on("SIGINT", () => void stopEverything(130, "interrupted"));
  process.on("SIGTERM", () => void stopEverything(143, "terminated"));
  // A last resort if the runtime exits some other way: nothing may outlive the bench.
  process.on("exit", () => processes.killAllNow());

  // The whole run is bounded: the installs and build have their own limits, and the
  // measurements get their expected time plus a generous margin.
  const perRun = options.warmupSeconds + options.durationSeconds + 25;
  const budgetMs = (options.scenarios.length * options.rounds * 2 * (perRun + 1) + 20 * 60) * 1000;
  const watchdog = setTimeout(() => void stopEverything(1, `still running after ${budgetMs / 1000} s`), budgetMs);

  let ok = false;
  try {
    const result = await benchmark(options, processes, dir);
    const markdown = toMarkdown(result);
    console.log(`\n${markdown}`);
    if (options.resultsDir !== null) {
      const written = writeResults(options.resultsDir, result);
      const shown = (path: string) => (relative(process.cwd(), path).startsWith("..") ? path : relative(process.cwd(), path));
      console.log(`Written: ${shown(written.markdown)} and ${shown(written.json)}`);
    }
    ok = true;
  } catch (error) {
    // While stopping on a signal the run fails as its processes go: that is no news.
    if (!stopping) console.error(`\nbench failed: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    clearTimeout(watchdog);
    await processes.stopAll();
  }
  // A signal's handler is stopping everything and ends the process with its own code.
  if (stopping) await new Promise(() => {});
  if (ok) rmSync(dir, { recursive: true, force: true });
  else console.error(`Logs and configs of this run are kept in ${dir}`);
  return ok ? 0 : 1;
}

process.exit(await main());

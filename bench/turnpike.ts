/**
 * Turnpike under test: the built binary with `--workers 1`, so one worker process does
 * all the proxying and its CPU time can be read apart from the supervisor's.
 */
import type { Subprocess } from "bun";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { POLICY_REQUEST_HEADER } from "./nginx.ts";
import { childrenOf, type Processes } from "./processes.ts";
import type { BenchAuth } from "./auth.ts";
import { waitUntil } from "./wait.ts";

/**
 * The config: `/plain` forwards with no policy; `/policies` runs a typical chain (a
 * `headers` policy setting a request header, `request-size-limit`, and route-level
 * `response_headers`), the same work nginx's `/policies` location does; `/balanced`
 * forwards with least connections over the targets `poolPorts` (when given).
 */
export function turnpikeConfig(
  port: number,
  adminPort: number,
  upstreamPort: number,
  telemetry: Telemetry | null = null,
  poolPorts: readonly number[] = [],
  tls: BenchTls | null = null,
  cluster: ClusterStore | null = null,
  auth: BenchAuth | null = null,
): string {
  // Auth scenarios: one consumer with an API key, and RS256 JWTs verified with a PEM key.
  const consumers = auth
    ? `consumers:
  - name: bench-client
    roles: [reader]
    credentials:
      - { type: api_key, key_hash: "${auth.apiKeyHash}" }
`
    : "";
  const authRoutes = auth
    ? `  - name: api-key
    match: { paths: [/api-key] }
    upstream: backend
    policies:
      - type: api-key
  - name: jwt
    match: { paths: [/jwt] }
    upstream: backend
    policies:
      - type: jwt
        config:
          keys: [{ file: ${JSON.stringify(auth.jwtPublicKeyPath)} }]
          algorithms: [RS256]
          issuer: https://bench.turnpike.local/
          audience: bench
          required_claims: [sub]
`
    : "";
  // Cluster mode: a rate limit far above the load on `/limited`, counted through the member.
  const store = cluster
    ? `store:
  type: hazelcast
  hazelcast: { members: ["${cluster.member}"], mode: ${cluster.mode} }
`
    : "";
  const limited = cluster
    ? `  - name: limited
    match: { paths: [/limited] }
    upstream: backend
    policies:
      - type: rate-limit
        config:
          key: route
          limits: [{ requests: 1000000000, window: 1h }]
`
    : "";
  // Without telemetry the worker neither counts nor logs: \`plain\` is the bare cost.
  const observability = telemetry
    ? `observability:
  metrics: { enabled: true }
  access_log:
    enabled: true
    path: ${JSON.stringify(telemetry.accessLogPath)}
`
    : `observability:
  metrics: { enabled: false }
`;
  return `# Written by Turnpike's bench/run.ts; removed after the run.
listeners:
  - name: bench
    address: 127.0.0.1
    port: ${port}
${tls ? tlsListeners(tls) : ""}admin:
  address: 127.0.0.1
  port: ${adminPort}
server:
  drain_timeout: 2s
${observability}${store}${consumers}upstreams:
  backend:
    targets: [http://127.0.0.1:${upstreamPort}]
${
    poolPorts.length === 0
      ? ""
      : `  pool:
    balancer: least_connections
    targets: [${poolPorts.map((p) => `http://127.0.0.1:${p}`).join(", ")}]
`
  }routes:
  - name: plain
    match: { paths: [/plain] }
    upstream: backend
  - name: policies
    match: { paths: [/policies] }
    upstream: backend
    response_headers:
      set: { cache-control: no-store }
    policies:
      - type: headers
        config: { request: { set: { ${POLICY_REQUEST_HEADER}: "on" } } }
      - type: request-size-limit
        config: { max_body_size: 1MiB }
  - name: concurrency-limited
    match: { paths: [/concurrency-limited] }
    upstream: backend
    concurrency: { max: 1000, queue: { size: 100, timeout: 1s } }
  - name: rate-limited
    match: { paths: [/rate-limited] }
    upstream: backend
    policies:
      - type: rate-limit
        config:
          key: client_ip
          limits: [{ requests: 1000000000, window: 1s }]
${
    poolPorts.length === 0
      ? ""
      : `  - name: balanced
    match: { paths: [/balanced] }
    upstream: pool
`
  }${limited}${authRoutes}`;
}

/** The cluster store of a Turnpike in the hazelcast scenarios. */
export interface ClusterStore {
  /** `host:port` of the member. */
  member: string;
  mode: "strict" | "batched";
}

/**
 * TLS listeners of the `tls` and `mtls` scenarios: the same certificate on Bun's native TLS,
 * and behind the TLS bridge that client certificates need (mode request: wrk sends none).
 */
export interface BenchTls {
  tlsPort: number;
  mtlsPort: number;
  certPath: string;
  keyPath: string;
  caPath: string;
}

function tlsListeners(tls: BenchTls): string {
  const certificates = `certificates: [{ cert: ${JSON.stringify(tls.certPath)}, key: ${JSON.stringify(tls.keyPath)} }]`;
  return `  - name: bench-tls
    address: 127.0.0.1
    port: ${tls.tlsPort}
    tls:
      ${certificates}
  - name: bench-mtls
    address: 127.0.0.1
    port: ${tls.mtlsPort}
    tls:
      ${certificates}
      client_certificates: { ca: ${JSON.stringify(tls.caPath)}, mode: request }
`;
}

/** Telemetry of the second Turnpike (the \`observability\` scenario): metrics on, access log to a file. */
export interface Telemetry {
  accessLogPath: string;
}

/** A running Turnpike: the supervisor and its one worker. */
export interface TurnpikeProcess {
  child: Subprocess;
  supervisorPid: number;
  workerPid: number;
  url: string;
  /** Base URL of its admin API (GET /metrics, /readyz). */
  adminUrl: string;
  log: string;
}

/** Starts the binary on a config written into `dir` and waits for /readyz and its worker. */
export async function startTurnpike(
  binary: string,
  processes: Processes,
  dir: string,
  ports: { port: number; adminPort: number; upstreamPort: number; poolPorts?: readonly number[]; tls?: BenchTls; cluster?: ClusterStore; auth?: BenchAuth },
  name = "turnpike",
  telemetry: Telemetry | null = null,
): Promise<TurnpikeProcess> {
  const configPath = join(dir, `${name}.yaml`);
  const log = join(dir, `${name}.log`);
  writeFileSync(configPath, turnpikeConfig(ports.port, ports.adminPort, ports.upstreamPort, telemetry, ports.poolPorts ?? [], ports.tls ?? null, ports.cluster ?? null, ports.auth ?? null));
  // The bench must not inherit a role or log level meant for something else.
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !name.startsWith("TURNPIKE_")) env[name] = value;
  }
  env.TURNPIKE_LOG_LEVEL = "info";
  const child = processes.spawn(name, [binary, "run", configPath, "--workers", "1"], {
    cwd: dir,
    env,
    stdout: Bun.file(join(dir, `${name}.out`)),
    // Turnpike logs JSON lines on stderr.
    stderr: Bun.file(log),
  });
  const admin = `http://127.0.0.1:${ports.adminPort}`;
  await waitUntil(name, 20_000, child, log, async () => {
    const response = await fetch(`${admin}/readyz`);
    await response.arrayBuffer();
    return response.status === 200;
  });
  let workers: number[] = [];
  await waitUntil(`${name}'s worker process`, 5_000, child, log, async () => {
    workers = childrenOf(child.pid);
    return workers.length === 1;
  });
  const workerPid = workers[0]!;
  processes.adopt(child, workerPid);
  return { child, supervisorPid: child.pid, workerPid, url: `http://127.0.0.1:${ports.port}`, adminUrl: admin, log };
}

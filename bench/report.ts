/**
 * The result of a benchmark run, as JSON (everything measured) and as a markdown
 * report (the tables a reader needs), plus where both are written.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Measurement } from "./measure.ts";

/** Turnpike's figure divided by nginx's, for one scenario. */
export interface Ratios {
  /** CPU µs per request of the proxy process: above 1 means Turnpike spends more. */
  cpuPerRequest: number;
  /** Requests per second: below 1 means Turnpike serves fewer. */
  throughput: number;
  p50: number;
  p99: number;
}

/** One scenario measured on both proxies. */
export interface ScenarioResult {
  name: string;
  description: string;
  /** The reported run of each proxy: the one with the median CPU per request. */
  nginx: Measurement;
  turnpike: Measurement;
  ratios: Ratios;
  /** Every run, in order (one per round). */
  rounds: { nginx: Measurement[]; turnpike: Measurement[] };
}

/** Everything a run found; written as JSON. */
export interface BenchResult {
  format: "turnpike-bench/1";
  startedAt: string;
  finishedAt: string;
  quick: boolean;
  settings: {
    wrkCommand: string;
    threads: number;
    connections: number;
    rounds: number;
    durationSeconds: number;
    warmupSeconds: number;
    clockTicksPerSecond: number;
    upstreamBodyBytes: number;
    turnpikeWorkers: 1;
    /** Telemetry of the Turnpike measured (off but in the observability scenario). */
    turnpikeTelemetry?: string;
  };
  environment: {
    cpuCount: number;
    cpuModel: string;
    kernel: string;
    bun: string;
    nginx: string;
    wrk: string;
    turnpike: string;
    commit: string;
    /** 1-, 5- and 15-minute load averages when the run started. */
    loadAverage: number[];
  };
  /** Memory in KiB: idle is read after start-up and one request, peak after all runs. */
  memory: {
    turnpikeWorkerIdleRss: number;
    turnpikeSupervisorIdleRss: number;
    nginxProxyIdleRss: number;
    turnpikeWorkerPeakRss: number;
    nginxProxyPeakRss: number;
  };
  scenarios: ScenarioResult[];
  /**
   * Turnpike's CPU per request with the policy chain divided by nginx's plain proxy:
   * the figure the product goal is stated in. Null unless both scenarios ran.
   */
  policyChainVsNginxPlain: number | null;
  /** Turnpike CPU per request of the rate-limit scenario over plain's (goal ≤ 1.1); null when either did not run. */
  rateLimitVsPlain?: number | null;
  /** Turnpike's CPU per request with API-key and cached-JWT auth over nginx's plain proxy (goals ≤ 1.3× and ≤ 1.4×). */
  authVsNginxPlain?: { apiKey: number | null; jwt: number | null } | null;
  /** The same over Turnpike's own plain route: what the policy itself adds. */
  authVsTurnpikePlain?: { apiKey: number | null; jwt: number | null } | null;
  /** The telemetry goal (observability / plain, Turnpike); null unless both scenarios ran. */
  observability?: ObservabilityVerdict | null;
  /** The balancing goal (least-connections / plain, Turnpike); null unless both scenarios ran. */
  leastConnections?: LeastConnectionsVerdict | null;
  /** Cluster-mode limits (Hazelcast store) against the plain route; empty unless they ran. */
  cluster?: ClusterVerdict[];
  warnings: string[];
}

/** The goal of batched cluster limits: at most this many times the plain route's CPU per request. */
export const CLUSTER_BATCHED_GOAL = 1.2;

/** One cluster-mode scenario (a rate-limited route on the Hazelcast store) against the plain route. */
export interface ClusterVerdict {
  name: string;
  mode: "strict" | "batched";
  plainCpuPerRequest: number;
  cpuPerRequest: number;
  /** scenario / plain, Turnpike worker CPU per request. */
  ratio: number;
  /** The member's CPU per request (a JVM beside the gateway). */
  memberCpuPerRequest: number;
  plainP99Ms: number;
  p99Ms: number;
  /** p99 latency added to the plain route's, milliseconds. */
  addedP99Ms: number;
  /** p50 latency added to the plain route's, milliseconds (steadier than p99 on a busy machine). */
  addedP50Ms: number;
  requestsPerSecond: number;
  /** Goal for batched (CLUSTER_BATCHED_GOAL); strict has none, its figures are reported. */
  goal: number | null;
  pass: boolean | null;
}

export function clusterVerdict(plain: ScenarioResult, scenario: ScenarioResult, mode: "strict" | "batched"): ClusterVerdict {
  const plainCpu = plain.turnpike.cpu.proxy!.perRequest;
  const cpu = scenario.turnpike.cpu.proxy!.perRequest;
  const ratio = cpu / plainCpu;
  const plainP99 = plain.turnpike.wrk.latencyPercentilesUs["99"]! / 1000;
  const p99 = scenario.turnpike.wrk.latencyPercentilesUs["99"]! / 1000;
  const goal = mode === "batched" ? CLUSTER_BATCHED_GOAL : null;
  return {
    name: scenario.name,
    mode,
    plainCpuPerRequest: plainCpu,
    cpuPerRequest: cpu,
    ratio,
    memberCpuPerRequest: scenario.turnpike.cpu.member?.perRequest ?? 0,
    plainP99Ms: plainP99,
    p99Ms: p99,
    addedP99Ms: p99 - plainP99,
    addedP50Ms: (scenario.turnpike.wrk.latencyPercentilesUs["50"]! - plain.turnpike.wrk.latencyPercentilesUs["50"]!) / 1000,
    requestsPerSecond: scenario.turnpike.wrk.requestsPerSecond,
    goal,
    pass: goal === null ? null : ratio <= goal,
  };
}

/** The markdown lines of the cluster-mode figures. */
export function clusterLines(verdicts: ClusterVerdict[]): string[] {
  return [
    `Cluster mode (a rate limit on the Hazelcast store, one member on loopback; goal: batched ≤ ${times(CLUSTER_BATCHED_GOAL)} the plain route's CPU per request; strict reported):`,
    "",
    table(
      ["scenario", "plain CPU µs/req", "CPU µs/req", "/ plain", "member CPU µs/req", "req/s", "p99 ms (plain)", "added p99 ms", "added p50 ms", "verdict"],
      verdicts.map((v) => [
        v.name,
        fixed(v.plainCpuPerRequest, 1),
        fixed(v.cpuPerRequest, 1),
        times(v.ratio),
        fixed(v.memberCpuPerRequest, 1),
        grouped(Math.round(v.requestsPerSecond)),
        `${fixed(v.p99Ms, 2)} (${fixed(v.plainP99Ms, 2)})`,
        fixed(v.addedP99Ms, 2),
        fixed(v.addedP50Ms, 2),
        v.pass === null ? "reported" : v.pass ? `**PASS** (≤ ${times(v.goal!)})` : `**FAIL** (> ${times(v.goal!)})`,
      ]),
    ),
    "",
  ];
}

/** Most Turnpike CPU per request with least connections over three targets, relative to plain. */
export const LEAST_CONNECTIONS_GOAL = 1.05;

/** Least connections over three healthy targets against the plain single-target route. */
export interface LeastConnectionsVerdict {
  plainCpuPerRequest: number;
  balancedCpuPerRequest: number;
  /** balanced / plain, Turnpike; at most LEAST_CONNECTIONS_GOAL passes. */
  ratio: number;
  pass: boolean;
  /** nginx's own least_conn / plain, for reference. */
  nginxRatio: number;
}

export function leastConnectionsVerdict(plain: ScenarioResult, balanced: ScenarioResult): LeastConnectionsVerdict {
  const ratio = balanced.turnpike.cpu.proxy!.perRequest / plain.turnpike.cpu.proxy!.perRequest;
  return {
    plainCpuPerRequest: plain.turnpike.cpu.proxy!.perRequest,
    balancedCpuPerRequest: balanced.turnpike.cpu.proxy!.perRequest,
    ratio,
    pass: ratio <= LEAST_CONNECTIONS_GOAL,
    nginxRatio: balanced.nginx.cpu.proxy!.perRequest / plain.nginx.cpu.proxy!.perRequest,
  };
}

/** The goal: full metrics plus an access log to a file add at most this much CPU per request. */
export const OBSERVABILITY_GOAL = 1.1;

/** `GET /metrics` scrapes made during the observability runs. */
export interface Scrapes {
  ok: number;
  failed: number;
  /** Size of the last answer, characters. */
  lastBytes: number;
}

/** Lines the access log gained during each measured run, against the requests wrk completed. */
export interface AccessLogCheck {
  path: string;
  runs: { lines: number; requests: number }[];
  lines: number;
  requests: number;
  /** Every run logged within 1 % (or 100 lines) of the requests wrk completed. */
  ok: boolean;
}

/** Turnpike's plain route with telemetry (metrics + access log) against without, same run. */
export interface ObservabilityVerdict {
  turnpikePlainCpuPerRequest: number;
  turnpikeObservabilityCpuPerRequest: number;
  /** observability / plain, Turnpike; at most OBSERVABILITY_GOAL passes. */
  ratio: number;
  /** The extra CPU per request, percent of plain. */
  addedPercent: number;
  goal: number;
  pass: boolean;
  nginxPlainCpuPerRequest: number;
  nginxAccessLogCpuPerRequest: number;
  nginxRatio: number;
  accessLog: AccessLogCheck;
  scrapes: Scrapes;
}

export function observabilityVerdict(plain: ScenarioResult, observability: ScenarioResult, accessLog: AccessLogCheck, scrapes: Scrapes): ObservabilityVerdict {
  const bare = plain.turnpike.cpu.proxy!.perRequest;
  const full = observability.turnpike.cpu.proxy!.perRequest;
  const ratio = full / bare;
  return {
    turnpikePlainCpuPerRequest: bare,
    turnpikeObservabilityCpuPerRequest: full,
    ratio,
    addedPercent: (ratio - 1) * 100,
    goal: OBSERVABILITY_GOAL,
    pass: ratio <= OBSERVABILITY_GOAL,
    nginxPlainCpuPerRequest: plain.nginx.cpu.proxy!.perRequest,
    nginxAccessLogCpuPerRequest: observability.nginx.cpu.proxy!.perRequest,
    nginxRatio: observability.nginx.cpu.proxy!.perRequest / plain.nginx.cpu.proxy!.perRequest,
    accessLog,
    scrapes,
  };
}

/** The markdown lines of the telemetry goal. */
export function observabilityLines(v: ObservabilityVerdict): string[] {
  const pct = (value: number) => `${value >= 0 ? "+" : ""}${fixed(value, 1)} %`;
  return [
    `Telemetry cost (goal: full metrics plus an access log to a file add at most ${fixed((v.goal - 1) * 100, 0)} % CPU per request to the plain route):`,
    "",
    table(
      ["proxy", "plain CPU µs/req", "observability CPU µs/req", "observability / plain", "verdict"],
      [
        [
          "Turnpike (telemetry off / metrics + access log + scrapes)",
          fixed(v.turnpikePlainCpuPerRequest, 1),
          fixed(v.turnpikeObservabilityCpuPerRequest, 1),
          `${times(v.ratio)} (${pct(v.addedPercent)})`,
          v.pass ? `**PASS** (≤ ${times(v.goal)})` : `**FAIL** (> ${times(v.goal)})`,
        ],
        [
          "nginx (access_log off / access_log to a file)",
          fixed(v.nginxPlainCpuPerRequest, 1),
          fixed(v.nginxAccessLogCpuPerRequest, 1),
          `${times(v.nginxRatio)} (${pct((v.nginxRatio - 1) * 100)})`,
          "–",
        ],
      ],
    ),
    "",
    `Access log check: ${grouped(v.accessLog.lines)} lines written during the measured runs for ${grouped(v.accessLog.requests)} requests wrk completed ` +
      `(${v.accessLog.runs.map((r) => `${grouped(r.lines)} / ${grouped(r.requests)}`).join(", ")}): ${v.accessLog.ok ? "OK" : "MISMATCH"}. ` +
      `GET /metrics scraped ${v.scrapes.ok} times (${v.scrapes.failed} failed), last answer ${grouped(v.scrapes.lastBytes)} bytes.`,
    "",
  ];
}

/** Turnpike / nginx for one scenario. */
export function ratiosOf(nginx: Measurement, turnpike: Measurement): Ratios {
  const p = (m: Measurement, q: string) => m.wrk.latencyPercentilesUs[q]!;
  return {
    cpuPerRequest: turnpike.cpu.proxy!.perRequest / nginx.cpu.proxy!.perRequest,
    throughput: turnpike.wrk.requestsPerSecond / nginx.wrk.requestsPerSecond,
    p50: p(turnpike, "50") / p(nginx, "50"),
    p99: p(turnpike, "99") / p(nginx, "99"),
  };
}

const fixed = (value: number, digits: number) => (Number.isFinite(value) ? value.toFixed(digits) : "n/a");
const ms = (us: number) => fixed(us / 1000, 2);
const mib = (kib: number) => fixed(kib / 1024, 1);
const times = (ratio: number) => `${fixed(ratio, 2)}×`;
const grouped = (value: number) => Math.round(value).toLocaleString("en-US");

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

/** The markdown report. */
export function toMarkdown(result: BenchResult): string {
  const env = result.environment;
  const s = result.settings;
  const measured: string[][] = [];
  for (const scenario of result.scenarios) {
    for (const [proxy, m] of [["nginx", scenario.nginx], ["Turnpike", scenario.turnpike]] as const) {
      measured.push([
        scenario.name,
        proxy,
        grouped(m.wrk.requestsPerSecond),
        ms(m.wrk.latencyPercentilesUs["50"]!),
        ms(m.wrk.latencyPercentilesUs["99"]!),
        fixed(m.cpu.proxy!.perRequest, 1),
        fixed(m.cpu.proxy!.cores, 2),
        fixed(m.cpu.upstream!.perRequest, 1),
        fixed(m.wrkCores, 2),
        fixed(m.otherCores + m.stolenCores, 2),
        grouped(m.wrk.requests),
        String(m.errors),
      ]);
    }
  }
  const ratios = result.scenarios.map((scenario) => [
    scenario.name,
    times(scenario.ratios.cpuPerRequest),
    times(scenario.ratios.throughput),
    times(scenario.ratios.p50),
    times(scenario.ratios.p99),
  ]);
  const memory = result.memory;
  const supervisor = result.scenarios
    .map((scenario) => {
      const use = scenario.turnpike.cpu.supervisor!;
      return `${scenario.name} ${fixed(use.perRequest, 2)} µs/req (${fixed(use.microseconds / 1000, 0)} ms in all)`;
    })
    .join(", ");
  const lines = [
    `# Turnpike vs nginx: ${result.startedAt}${result.quick ? " (quick run)" : ""}`,
    "",
    `Machine: ${env.cpuCount} × ${env.cpuModel}, Linux ${env.kernel}. Bun ${env.bun}, ${env.nginx}, ${env.wrk}, Turnpike ${env.turnpike} (${env.commit}).`,
    "",
    `Load: \`${s.wrkCommand}\` on 127.0.0.1 after a ${s.warmupSeconds} s warm-up of the same kind. Upstream: nginx answering ` +
      `${s.upstreamBodyBytes} bytes of JSON. Reference: nginx proxy_pass (1 process, upstream keepalive 64). ` +
      `Turnpike: \`--workers ${s.turnpikeWorkers}\`, telemetry off (\`observability.metrics.enabled: false\`, no access log) except in the observability scenario. CPU is utime + stime of the whole process (all threads) over the run, ` +
      `divided by the requests wrk completed. \"other cores\": CPU busy with anything else on the machine during the run ` +
      `(other programs, unattributed kernel work, hypervisor steal); well above 0.1 means the run was disturbed.`,
    "",
    table(
      ["scenario", "proxy", "requests/s", "p50 ms", "p99 ms", "proxy CPU µs/req", "proxy cores", "upstream CPU µs/req", "wrk cores", "other cores", "requests", "errors"],
      measured,
    ),
    "",
    "Turnpike / nginx (CPU above 1× and throughput below 1× mean Turnpike does worse):",
    "",
    table(["scenario", "CPU per request", "throughput", "p50", "p99"], ratios),
    "",
  ];
  if (s.rounds > 1) {
    lines.push(`Each figure is the run with the median proxy CPU per request out of ${s.rounds}, nginx and Turnpike alternating. All runs, µs/req:`, "");
    for (const scenario of result.scenarios) {
      const list = (runs: { cpu: Record<string, { perRequest: number }> }[]) => runs.map((m) => fixed(m.cpu.proxy!.perRequest, 1)).join(", ");
      lines.push(`- ${scenario.name}: nginx ${list(scenario.rounds.nginx)}; Turnpike ${list(scenario.rounds.turnpike)}`);
    }
    lines.push("");
  }
  if (result.rateLimitVsPlain !== undefined && result.rateLimitVsPlain !== null) {
    lines.push(`Turnpike with a rate limit vs Turnpike plain, CPU per request: ${times(result.rateLimitVsPlain)} (goal ≤ 1.10×: ${result.rateLimitVsPlain <= 1.1 ? "PASS" : "FAIL"}).`, "");
  }
  const auth = result.authVsNginxPlain;
  if (auth?.apiKey != null) {
    const own = result.authVsTurnpikePlain?.apiKey;
    lines.push(
      `Turnpike with API-key auth vs nginx's plain proxy, CPU per request: ${times(auth.apiKey)} (goal ≤ 1.30×: ${auth.apiKey <= 1.3 ? "PASS" : "FAIL"})` +
        (own != null ? `; vs Turnpike's plain route: ${times(own)}.` : "."),
      "",
    );
  }
  if (auth?.jwt != null) {
    const own = result.authVsTurnpikePlain?.jwt;
    lines.push(
      `Turnpike with cached RS256 JWT auth vs nginx's plain proxy, CPU per request: ${times(auth.jwt)} (goal ≤ 1.40×: ${auth.jwt <= 1.4 ? "PASS" : "FAIL"})` +
        (own != null ? `; vs Turnpike's plain route: ${times(own)}.` : "."),
      "",
    );
  }
  if (result.policyChainVsNginxPlain !== null) {
    lines.push(`Turnpike with the policy chain vs nginx's plain proxy, CPU per request: ${times(result.policyChainVsNginxPlain)}.`, "");
  }
  if (result.observability) lines.push(...observabilityLines(result.observability));
  if (result.cluster && result.cluster.length > 0) lines.push(...clusterLines(result.cluster));
  if (result.leastConnections) {
    const v = result.leastConnections;
    lines.push(
      `Least connections over three targets vs the plain route, Turnpike CPU per request: ${v.balancedCpuPerRequest.toFixed(1)} / ${v.plainCpuPerRequest.toFixed(1)} µs = ` +
        `${v.ratio.toFixed(3)} (goal ≤ ${LEAST_CONNECTIONS_GOAL}: ${v.pass ? "PASS" : "FAIL"}); nginx least_conn / plain: ${v.nginxRatio.toFixed(3)}.`,
      "",
    );
  }
  lines.push(`Turnpike supervisor CPU during the Turnpike runs: ${supervisor}.`, "");
  lines.push(
    `Memory: Turnpike worker ${mib(memory.turnpikeWorkerIdleRss)} MiB RSS idle (peak ${mib(memory.turnpikeWorkerPeakRss)} MiB after the runs), ` +
      `supervisor ${mib(memory.turnpikeSupervisorIdleRss)} MiB idle; nginx proxy ${mib(memory.nginxProxyIdleRss)} MiB idle ` +
      `(peak ${mib(memory.nginxProxyPeakRss)} MiB).`,
    "",
  );
  lines.push("Scenarios:", "");
  for (const scenario of result.scenarios) lines.push(`- **${scenario.name}**: ${scenario.description}`);
  lines.push("");
  if (result.warnings.length > 0) {
    lines.push("Warnings:", "");
    for (const warning of result.warnings) lines.push(`- ${warning}`);
    lines.push("");
  }
  return lines.join("\n");
}

/** Writes `<stamp>.json` and `<stamp>.md` into `dir`; returns their paths. */
export function writeResults(dir: string, result: BenchResult): { json: string; markdown: string } {
  mkdirSync(dir, { recursive: true });
  // 2026-11-20T18:40:12.345Z → 2026-11-20T18-40-12Z: sortable and valid on every file system.
  const stamp = result.startedAt.replace(/\.\d+Z$/, "Z").replaceAll(":", "-") + (result.quick ? "-quick" : "");
  const json = join(dir, `${stamp}.json`);
  const markdown = join(dir, `${stamp}.md`);
  writeFileSync(json, JSON.stringify(result, null, 2) + "\n");
  writeFileSync(markdown, toMarkdown(result));
  return { json, markdown };
}

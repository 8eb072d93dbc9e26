/**
 * The config of an http upstream: its JSON Schema pieces (targets, balancer, health
 * checks, circuit breaker, retries) and the compile step that checks what a schema
 * cannot (thresholds that contradict each other) and builds the runtime upstream.
 */
import type { UpstreamTls } from "../config/pem.ts";
import type { ConfigPath } from "../config/source.ts";
import type { Exchange } from "../core/exchange.ts";
import { durationSchema, parseDuration, parseSize, sizeSchema } from "../core/units.ts";
import type { Timeouts } from "../router/types.ts";
import { BALANCERS, type BalancerName } from "./balancers/index.ts";
import type { BreakerSettings } from "./circuit-breaker.ts";
import type { ConcurrencyLimiter } from "./concurrency.ts";
import { compileDiscovery, discoverySchema } from "./dns/config.ts";
import type { DiscoveryConfig } from "./dns/discovery.ts";
import { DiscoveredTargets, isDiscoverable } from "./dns/targets.ts";
import { nodeCells } from "./node-cells.ts";
import type { OutlierSettings } from "./outlier.ts";
import { IDEMPOTENT_METHODS, RetryBudget, type RetrySettings } from "./retry.ts";
import { TargetRuntime, type TargetSpec } from "./target.ts";
import { HttpUpstream, UPSTREAM_CELLS, type ActiveCheckSettings, type PriorityLevel } from "./upstream.ts";

/** A target as written: a URL, `host:port`, or an object. */
export type TargetConfig = string | { url: string; weight?: number; priority?: number; backup?: boolean };

export interface ActiveCheckConfig {
  type?: "http" | "https" | "tcp";
  path?: string;
  host?: string;
  interval?: number | string;
  timeout?: number | string;
  expected_statuses?: number[];
  healthy_threshold?: number;
  unhealthy_threshold?: number;
}

export interface PassiveCheckConfig {
  consecutive_failures?: number;
  failure_ratio?: number;
  min_requests?: number;
  window?: number | string;
  ejection_time?: number | string;
  max_ejection_time?: number | string;
}

export interface CircuitBreakerConfig {
  scope?: "target" | "upstream";
  failures?: number;
  failure_ratio?: number;
  min_requests?: number;
  window?: number | string;
  open_for?: number | string;
  half_open_requests?: number;
}

export interface RetriesConfig {
  attempts?: number;
  on?: ("connect_failure" | "reset" | "timeout")[];
  statuses?: number[];
  methods?: string[];
  backoff?: number | string;
  max_backoff?: number | string;
  budget_ratio?: number;
  budget_min_per_second?: number;
  buffer_body?: number | string;
}

/** The traffic-management keys of an http upstream (beside `type`, `targets`, `timeouts`). */
export interface TrafficConfig {
  balancer?: BalancerName;
  hash_key?: string;
  failure_statuses?: number[];
  health_check?: { active?: ActiveCheckConfig; passive?: PassiveCheckConfig; share?: "node" | "cluster" };
  circuit_breaker?: CircuitBreakerConfig;
  retries?: RetriesConfig;
  discovery?: DiscoveryConfig;
}

const status = { type: "integer", minimum: 100, maximum: 599 };
const statusList = { type: "array", minItems: 1, items: status };
const positiveInteger = { type: "integer", minimum: 1 };
const ratio = { type: "number", exclusiveMinimum: 0, maximum: 1 };
const HASH_KEY_PATTERN = "^(client_ip|(header|cookie|param):[A-Za-z0-9_.-]+)$";

/** Schema of one entry of `targets`. */
export const targetSchema = {
  "x-expects": "a URL (http:// or https://), host:port, or {url, weight, priority, backup}",
  anyOf: [
    { type: "string", pattern: "^(https?://|[A-Za-z0-9.-]+:[0-9]+$|\\[[0-9A-Fa-f:.]+\\]:[0-9]+$)" },
    {
      type: "object",
      additionalProperties: false,
      required: ["url"],
      properties: {
        url: { type: "string", pattern: "^(https?://|[A-Za-z0-9.-]+:[0-9]+$|\\[[0-9A-Fa-f:.]+\\]:[0-9]+$)" },
        weight: { type: "integer", minimum: 1, maximum: 1000, description: "Share of traffic relative to the other targets; default 1." },
        priority: { type: "integer", minimum: 0, maximum: 100, description: "0 (default) for primaries; a higher number gets traffic only when no lower one has a healthy target." },
        backup: { type: "boolean", description: "Same as priority: 1." },
      },
    },
  ],
} as const;

/** Schema of the traffic-management keys of an upstream. */
export const trafficSchemaProperties = {
  discovery: discoverySchema,
  balancer: { enum: Object.keys(BALANCERS), description: "How a target is picked; default weighted_round_robin." },
  hash_key: {
    type: "string",
    pattern: HASH_KEY_PATTERN,
    description: "consistent_hash key: client_ip (default), header:<name>, cookie:<name> or param:<path parameter>.",
    "x-expects": "client_ip, header:<name>, cookie:<name> or param:<name>",
  },
  failure_statuses: { ...statusList, description: "Upstream statuses that count as failures for passive checks and circuit breakers; default 500, 502, 503, 504." },
  health_check: {
    type: "object",
    additionalProperties: false,
    properties: {
      share: {
        enum: ["node", "cluster"],
        description: "node (default): active health verdicts stay on this node; cluster: they are published through the Hazelcast store and applied by every node of the cluster.",
      },
      active: {
        type: "object",
        additionalProperties: false,
        description: "Probes sent once per node (by the supervisor), whatever the number of workers.",
        properties: {
          type: { enum: ["http", "https", "tcp"], description: "http (default), https, or tcp (connect only)." },
          path: { type: "string", pattern: "^/", description: "Path of http(s) probes; default /." },
          host: { type: "string", minLength: 1, description: "Host header of http(s) probes; default the target's." },
          interval: { ...durationSchema, description: "Time between probes of a target; default 10s." },
          timeout: { ...durationSchema, description: "A probe without an answer in this time fails; default 2s." },
          expected_statuses: { ...statusList, description: "Statuses of a healthy answer; default 200-399." },
          healthy_threshold: { ...positiveInteger, maximum: 100, description: "Successful probes in a row that make a target healthy; default 2." },
          unhealthy_threshold: { ...positiveInteger, maximum: 100, description: "Failed probes in a row that make a target unhealthy; default 3." },
        },
      },
      passive: {
        type: "object",
        additionalProperties: false,
        description: "Outlier detection on live traffic: ejects a failing target for a while.",
        properties: {
          consecutive_failures: { ...positiveInteger, description: "Failures in a row that eject a target." },
          failure_ratio: { ...ratio, description: "Share of failed requests within `window` that ejects a target." },
          min_requests: { ...positiveInteger, description: "Requests within `window` before failure_ratio applies; default 10." },
          window: { ...durationSchema, description: "Window of failure_ratio; default 10s." },
          ejection_time: { ...durationSchema, description: "First ejection; each further one in a row adds as much; default 30s." },
          max_ejection_time: { ...durationSchema, description: "Longest ejection; default 300s." },
        },
      },
    },
  },
  circuit_breaker: {
    type: "object",
    additionalProperties: false,
    properties: {
      scope: { enum: ["target", "upstream"], description: "One circuit per target (default; an open one is skipped) or one for the upstream (open: 503)." },
      failures: { ...positiveInteger, description: "Failures within `window` that open the circuit." },
      failure_ratio: { ...ratio, description: "Share of failures within `window` that opens it once min_requests were seen." },
      min_requests: { ...positiveInteger, description: "Requests within `window` before failure_ratio applies; default 10." },
      window: { ...durationSchema, description: "Default 10s." },
      open_for: { ...durationSchema, description: "How long an open circuit refuses before trial requests; default 30s." },
      half_open_requests: { type: "integer", minimum: 1, maximum: 1000, description: "Trial requests let through while half-open; default 1." },
    },
  },
  retries: {
    type: "object",
    additionalProperties: false,
    properties: {
      attempts: { type: "integer", minimum: 0, maximum: 10, description: "Retries after the first call; default 2." },
      on: {
        type: "array",
        items: { enum: ["connect_failure", "reset", "timeout"] },
        description: "Failures without a response that are retried; default connect_failure and reset.",
      },
      statuses: { type: "array", items: status, description: "Upstream statuses that are retried; default 502, 503, 504." },
      methods: { type: "array", minItems: 1, items: { type: "string", pattern: "^[A-Za-z]+$" }, description: "Methods retried; default the idempotent ones." },
      backoff: { ...durationSchema, description: "Base of the exponential backoff with jitter; default 25ms." },
      max_backoff: { ...durationSchema, description: "Longest wait between attempts; default 250ms." },
      budget_ratio: { type: "number", minimum: 0, maximum: 1, description: "Retries may be at most this share of requests; default 0.2." },
      budget_min_per_second: { type: "integer", minimum: 0, description: "Retries per second always allowed by the budget; default 3." },
      buffer_body: { ...sizeSchema, description: "Request bodies up to this size are kept for a retry; default 0 (requests with a body are not retried)." },
    },
  },
} as const;

type Fail = (path: ConfigPath, message: string) => void;

/** Turns a target as written into its parts; null (after `fail`) when it is not usable. */
export function parseTarget(entry: TargetConfig, path: ConfigPath, fail: Fail): TargetSpec | null {
  let text = typeof entry === "string" ? entry : entry.url;
  if (!/^https?:\/\//.test(text)) text = `http://${text}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    fail(path, `"${text}" is not a valid URL`);
    return null;
  }
  if (url.search || url.hash || url.username) {
    fail(path, "a target URL has no query, fragment or credentials");
    return null;
  }
  const basePath = url.pathname === "/" ? "" : url.pathname.replace(/\/$/, "");
  const object = typeof entry === "string" ? null : entry;
  if (object?.backup !== undefined && object.priority !== undefined) fail(path, "set either backup or priority, not both");
  return {
    url: url.origin + basePath,
    origin: url.origin,
    basePath,
    host: url.host,
    weight: object?.weight ?? 1,
    priority: object?.priority ?? (object?.backup ? 1 : 0),
  };
}

/** Compiles an http upstream; problems go to `fail` with their path. */
export function compileHttpUpstream(
  name: string,
  config: TrafficConfig & { targets?: TargetConfig[] },
  timeouts: Partial<Timeouts>,
  concurrency: ConcurrencyLimiter | null,
  tls: UpstreamTls | null,
  path: ConfigPath,
  fail: Fail,
): HttpUpstream | null {
  const before = { errors: 0 };
  const check: Fail = (p, m) => {
    before.errors++;
    fail(p, m);
  };
  if (!config.targets || config.targets.length === 0) {
    check(config.targets ? [...path, "targets"] : path, "an http upstream needs at least one target in `targets` (or set `type: mock`)");
    return null;
  }
  const specs: TargetSpec[] = [];
  const seen = new Map<string, number>();
  config.targets.forEach((entry, i) => {
    const spec = parseTarget(entry, [...path, "targets", i], check);
    if (!spec) return;
    if (seen.has(spec.url)) check([...path, "targets", i], `target ${spec.url} is already listed as targets[${seen.get(spec.url)}]`);
    seen.set(spec.url, i);
    specs.push(spec);
  });

  const balancer: BalancerName = config.balancer ?? "weighted_round_robin";
  if (config.hash_key !== undefined && balancer !== "consistent_hash") check([...path, "hash_key"], "hash_key needs `balancer: consistent_hash`");
  const outlier = compilePassive(config.health_check?.passive, [...path, "health_check", "passive"], check);
  const breaker = compileBreaker(config.circuit_breaker, [...path, "circuit_breaker"], check);
  const retry = compileRetries(config.retries, [...path, "retries"], check);
  const activeCheck = compileActive(config.health_check?.active, [...path, "health_check", "active"], check);
  const discovery = config.discovery ? compileDiscovery(config.discovery, [...path, "discovery"], check) : null;
  if (discovery && specs.length > 0 && !specs.some(isDiscoverable)) {
    check([...path, "discovery"], "discovery needs a target whose host is a name; every target here is an IP address");
  }
  if (before.errors > 0) return null;

  const cells = nodeCells();
  const factory = BALANCERS[balancer];
  const build = (list: readonly TargetSpec[]) => {
    const targets = list.map((spec, index) => new TargetRuntime(spec, index, name, cells, outlier, breaker?.scope === "target" ? breaker : null));
    const priorities = [...new Set(targets.map((t) => t.priority))].sort((a, b) => a - b);
    const levels: PriorityLevel[] = priorities.map((priority) => {
      const members = targets.filter((t) => t.priority === priority);
      return { priority, targets: members, balancer: factory(members), scratch: [] };
    });
    return { targets, levels };
  };
  // With discovery, named targets have no address until their first lookup.
  const { targets, levels } = build(discovery ? specs.filter((spec) => !isDiscoverable(spec)) : specs);
  const upstreamBlock = breaker?.scope === "upstream" ? cells.block(`upstream:${name}\nbreaker`, UPSTREAM_CELLS) : null;
  const upstream = new HttpUpstream({
    name,
    targets,
    levels,
    build,
    balancer,
    hashKey: balancer === "consistent_hash" ? compileHashKey(config.hash_key ?? "client_ip") : null,
    timeouts,
    failureStatuses: new Set(config.failure_statuses ?? [500, 502, 503, 504]),
    breaker: breaker && upstreamBlock ? { settings: breaker, cells: upstreamBlock.cells, offset: upstreamBlock.offset } : null,
    retry,
    budget: retry ? new RetryBudget(retry.budgetRatio, retry.budgetMinPerSecond) : null,
    activeCheck,
    shareHealth: config.health_check?.share === "cluster",
    concurrency,
    tls,
  });
  if (discovery) upstream.discovery = new DiscoveredTargets(specs, discovery, (found) => upstream.replaceTargets(found));
  return upstream;
}

/** The request's hash key; a request without the configured one falls back to its client IP. */
function compileHashKey(spec: string): (exchange: Exchange) => string | null {
  const colon = spec.indexOf(":");
  const kind = colon < 0 ? spec : spec.slice(0, colon);
  const name = spec.slice(colon + 1);
  switch (kind) {
    case "header": {
      const lower = name.toLowerCase();
      return (exchange) => exchange.request.headers.get(lower) ?? exchange.clientIp;
    }
    case "cookie":
      return (exchange) => cookieValue(exchange.request.headers.get("cookie"), name) ?? exchange.clientIp;
    case "param":
      return (exchange) => exchange.params[name] ?? exchange.clientIp;
    default:
      return (exchange) => exchange.clientIp;
  }
}

/** The value of cookie `name` in a Cookie header, or null. */
export function cookieValue(header: string | null, name: string): string | null {
  if (header === null) return null;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

function compilePassive(config: PassiveCheckConfig | undefined, path: ConfigPath, fail: Fail): OutlierSettings | null {
  if (!config) return null;
  if (config.consecutive_failures === undefined && config.failure_ratio === undefined) {
    fail(path, "set consecutive_failures, failure_ratio or both");
    return null;
  }
  const settings: OutlierSettings = {
    consecutiveFailures: config.consecutive_failures ?? 0,
    failureRatio: config.failure_ratio ?? 0,
    minRequests: config.min_requests ?? 10,
    windowMs: parseDuration(config.window ?? "10s"),
    ejectionMs: parseDuration(config.ejection_time ?? "30s"),
    maxEjectionMs: parseDuration(config.max_ejection_time ?? "300s"),
  };
  if (config.failure_ratio === undefined && config.min_requests !== undefined) fail([...path, "min_requests"], "min_requests applies to failure_ratio, which is not set");
  if (settings.windowMs < 1) fail([...path, "window"], "must be at least 1ms");
  if (settings.ejectionMs < 1) fail([...path, "ejection_time"], "must be at least 1ms");
  if (settings.maxEjectionMs < settings.ejectionMs) fail([...path, "max_ejection_time"], `must be at least ejection_time (${settings.ejectionMs} ms)`);
  if (settings.maxEjectionMs > MAX_SPAN_MS) fail([...path, "max_ejection_time"], "must be at most 1 day");
  if (settings.windowMs > MAX_SPAN_MS) fail([...path, "window"], "must be at most 1 day");
  return settings;
}

/** Longest ejection, open time or window (node-wide times are 32-bit milliseconds). */
const MAX_SPAN_MS = 86_400_000;

function compileBreaker(config: CircuitBreakerConfig | undefined, path: ConfigPath, fail: Fail): BreakerSettings | null {
  if (!config) return null;
  if (config.failures === undefined && config.failure_ratio === undefined) {
    fail(path, "set failures, failure_ratio or both");
    return null;
  }
  const settings: BreakerSettings = {
    scope: config.scope ?? "target",
    failures: config.failures ?? 0,
    failureRatio: config.failure_ratio ?? 0,
    minRequests: config.min_requests ?? 10,
    windowMs: parseDuration(config.window ?? "10s"),
    openMs: parseDuration(config.open_for ?? "30s"),
    halfOpenRequests: config.half_open_requests ?? 1,
  };
  if (config.failure_ratio === undefined && config.min_requests !== undefined) fail([...path, "min_requests"], "min_requests applies to failure_ratio, which is not set");
  if (settings.windowMs < 1) fail([...path, "window"], "must be at least 1ms");
  if (settings.windowMs > MAX_SPAN_MS) fail([...path, "window"], "must be at most 1 day");
  if (settings.openMs < 1) fail([...path, "open_for"], "must be at least 1ms");
  if (settings.openMs > MAX_SPAN_MS) fail([...path, "open_for"], "must be at most 1 day");
  return settings;
}

function compileRetries(config: RetriesConfig | undefined, path: ConfigPath, fail: Fail): RetrySettings | null {
  if (!config) return null;
  const on = new Set(config.on ?? ["connect_failure", "reset"]);
  const settings: RetrySettings = {
    attempts: config.attempts ?? 2,
    methods: new Set((config.methods ?? IDEMPOTENT_METHODS).map((m) => m.toUpperCase())),
    statuses: new Set(config.statuses ?? [502, 503, 504]),
    onConnectFailure: on.has("connect_failure"),
    onReset: on.has("reset"),
    onTimeout: on.has("timeout"),
    backoffMs: parseDuration(config.backoff ?? "25ms"),
    maxBackoffMs: parseDuration(config.max_backoff ?? "250ms"),
    budgetRatio: config.budget_ratio ?? 0.2,
    budgetMinPerSecond: config.budget_min_per_second ?? 3,
    bufferBody: parseSize(config.buffer_body ?? 0),
  };
  if (settings.maxBackoffMs < settings.backoffMs) fail([...path, "max_backoff"], `must be at least backoff (${settings.backoffMs} ms)`);
  if (settings.maxBackoffMs > 60_000) fail([...path, "max_backoff"], "must be at most 60s");
  if (settings.bufferBody > 64 * 1024 * 1024) fail([...path, "buffer_body"], "must be at most 64MiB");
  if (settings.attempts === 0) return null;
  return settings;
}

function compileActive(config: ActiveCheckConfig | undefined, path: ConfigPath, fail: Fail): ActiveCheckSettings | null {
  if (!config) return null;
  const type = config.type ?? "http";
  const settings: ActiveCheckSettings = {
    type,
    path: config.path ?? "/",
    host: config.host ?? null,
    intervalMs: parseDuration(config.interval ?? "10s"),
    timeoutMs: parseDuration(config.timeout ?? "2s"),
    expectedStatuses: new Set(config.expected_statuses ?? Array.from({ length: 200 }, (_, i) => 200 + i)),
    healthyThreshold: config.healthy_threshold ?? 2,
    unhealthyThreshold: config.unhealthy_threshold ?? 3,
  };
  if (type === "tcp") {
    for (const key of ["path", "host", "expected_statuses"] as const) {
      if (config[key] !== undefined) fail([...path, key], "a tcp check only connects; it has no " + key);
    }
  }
  if (settings.intervalMs < 100) fail([...path, "interval"], "must be at least 100ms");
  if (settings.intervalMs > MAX_SPAN_MS) fail([...path, "interval"], "must be at most 1 day");
  if (settings.timeoutMs < 1) fail([...path, "timeout"], "must be at least 1ms");
  else if (settings.timeoutMs >= settings.intervalMs) fail([...path, "timeout"], `must be shorter than interval (${settings.intervalMs} ms)`);
  return settings;
}

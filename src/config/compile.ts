/**
 * Compiles a schema-valid config into a RuntimeGraph, checking what a schema cannot:
 * references between sections, patterns, TLS files. Every problem is collected with
 * its path; nothing is half-built.
 */
import { X509Certificate, createPrivateKey, createHash, type KeyObject } from "node:crypto";
import { compileConsumerHeaders } from "../auth/consumer-headers.ts";
import { compileConsumers } from "../auth/consumers.ts";
import type { ConsumerDirectory } from "../core/consumer.ts";
import { compileCondition, compileValueMatch, type ConditionConfig } from "../core/condition.ts";
import { compileHeaderOps } from "../core/headers.ts";
import { compileMock } from "../core/mock.ts";
import { compileCidrList, parseCidr } from "../core/net.ts";
import type { Step } from "../core/pipeline.ts";
import type { Policy } from "../core/policy.ts";
import { createLogger, type Logger } from "../observability/logger.ts";
import type { PolicyRegistry } from "../core/registry.ts";
import { parseDuration, parseSize } from "../core/units.ts";
import { parsePathPattern, PathKind } from "../router/path-pattern.ts";
import { Router, type RouteSpec } from "../router/router.ts";
import { createSplit } from "../router/split.ts";
import type { CompiledRoute, Limits, Rewrite, Timeouts } from "../router/types.ts";
import { ConcurrencyLimiter, type ConcurrencyConfig } from "../upstream/concurrency.ts";
import { compileHttpUpstream } from "../upstream/config.ts";
import type { CompiledUpstream } from "../upstream/types.ts";
import { compileStoreSettings, processStores, type StoreSettings } from "../store/index.ts";
import type { CompiledListener, RuntimeGraph } from "./graph.ts";
import { compileClientCertificates, compileUpstreamTls, readPem, type UpstreamTls } from "./pem.ts";
import type { ConfigError, ConfigPath } from "./source.ts";
import type { LimitsConfig, PolicyEntryConfig, RouteConfig, TimeoutsConfig, TurnpikeConfig, UpstreamConfig } from "./types.ts";

/** Defaults that apply when neither route nor upstream sets a timeout. */
export const DEFAULT_TIMEOUTS: Timeouts = { connect: 5_000, responseHeaders: 60_000, idle: 60_000, total: 0 };
/** Defaults for request limits; 0 means no limit. */
export const DEFAULT_LIMITS: Limits = { maxBodySize: 0, maxHeaderSize: 0, maxUrlLength: 8192 };

/** Where relative file paths are resolved from (the config file's folder). */
export interface CompileOptions {
  baseDir: string;
  registry: PolicyRegistry;
  /** The process's error log, handed to policies (with their path); stderr when absent. */
  log?: Logger;
}

export type CompileResult = { ok: true; graph: RuntimeGraph } | { ok: false; errors: ConfigError[] };

/** Compiles a config that passed the schema. */
export function compileConfig(config: TurnpikeConfig, options: CompileOptions): CompileResult {
  const errors: ConfigError[] = [];
  const fail = (path: ConfigPath, message: string) => errors.push({ path, message });
  const created: Policy[] = [];
  const store = compileStoreSettings(config.store, options.baseDir, fail);

  const listeners = config.listeners.map((listener, i) => compileListener(listener, ["listeners", i], options.baseDir, fail));
  const seenPorts = new Map<string, number>();
  config.listeners.forEach((listener, i) => {
    if (listener.port === 0) return;
    const key = `${listener.address ?? "0.0.0.0"}:${listener.port}`;
    if (seenPorts.has(key)) fail(["listeners", i, "port"], `port ${listener.port} is already used by listeners[${seenPorts.get(key)}]`);
    seenPorts.set(key, i);
  });

  const consumers = compileConsumers(config.consumers);
  for (const error of consumers.errors) fail(error.path, error.message);

  const upstreams = new Map<string, CompiledUpstream>();
  for (const [name, upstream] of Object.entries(config.upstreams)) {
    const compiled = compileUpstream(name, upstream, ["upstreams", name], options.baseDir, fail);
    if (compiled) upstreams.set(name, compiled);
    if (upstream.type !== "mock" && upstream.health_check?.share === "cluster" && store.type !== "hazelcast") {
      fail(["upstreams", name, "health_check", "share"], "sharing health with the cluster needs `store.type: hazelcast` (the nodes of a cluster meet there)");
    }
  }

  const compileSteps = (entries: PolicyEntryConfig[] | undefined, path: ConfigPath): Step[] =>
    (entries ?? []).flatMap((entry, i) => {
      const step = compilePolicy(entry, [...path, i], options, consumers.directory, store, created, fail);
      if (step) created.push(step.policy);
      return step ? [step] : [];
    });

  const preFlow = compileSteps(config.pre_flow, ["pre_flow"]);
  const postFlow = compileSteps(config.post_flow, ["post_flow"]);
  const serverLimits = compileLimits(config.server?.limits, DEFAULT_LIMITS);

  const specs: RouteSpec[] = [];
  const routeNames = new Map<string, number>();
  config.routes.forEach((route, index) => {
    const path: ConfigPath = ["routes", index];
    if (routeNames.has(route.name)) fail([...path, "name"], `route name "${route.name}" is already used by routes[${routeNames.get(route.name)}]`);
    routeNames.set(route.name, index);
    if (route.split) {
      const spec = compileSplitRoute(route, index, config, upstreams, serverLimits, compileSteps, fail);
      if (spec) specs.push(spec);
      return;
    }
    if (route.upstream === undefined) {
      fail(path, "a route needs `upstream` (or `split`)");
      return;
    }
    const upstream = upstreams.get(route.upstream);
    if (!upstream) {
      if (!Object.hasOwn(config.upstreams, route.upstream)) fail([...path, "upstream"], `unknown upstream "${route.upstream}"`);
      return;
    }
    const spec = compileRoute(route, index, upstream, serverLimits, compileSteps, fail);
    if (spec) specs.push(spec);
  });

  let trustedProxies: RuntimeGraph["trustedProxies"] = null;
  const proxyRanges = config.server?.trusted_proxies ?? [];
  proxyRanges.forEach((cidr, i) => {
    try {
      parseCidr(cidr);
    } catch (error) {
      fail(["server", "trusted_proxies", i], (error as Error).message);
    }
  });
  if (proxyRanges.length > 0 && errors.length === 0) trustedProxies = compileCidrList(proxyRanges);

  const idleSeconds = Math.ceil(parseDuration(config.server?.client_idle_timeout ?? "60s") / 1000);
  if (idleSeconds < 1 || idleSeconds > 255) fail(["server", "client_idle_timeout"], "must be between 1s and 255s");

  let router: Router | null = null;
  if (errors.length === 0) {
    try {
      router = new Router(specs);
    } catch (error) {
      fail(["routes"], (error as Error).message);
    }
  }
  if (errors.length > 0 || !router) {
    for (const policy of created) policy.dispose?.();
    return { ok: false, errors };
  }

  const workers = config.server?.workers;
  const graph: RuntimeGraph = {
    listeners: listeners.filter((l): l is CompiledListener => l !== null),
    admin: {
      enabled: config.admin?.enabled ?? true,
      address: config.admin?.address ?? "127.0.0.1",
      port: config.admin?.port ?? 9901,
    },
    router,
    upstreams,
    preFlow,
    postFlow,
    limits: serverLimits,
    trustedProxies,
    workers: typeof workers === "number" ? workers : null,
    drainTimeoutMs: parseDuration(config.server?.drain_timeout ?? "30s"),
    watch: config.server?.watch ?? false,
    clientIdleTimeoutSeconds: idleSeconds,
    observability: config.observability ?? {},
    store,
    secretNames: {
      headers: [...new Set(created.flatMap((policy) => policy.secrets?.headers ?? []).map((name) => name.toLowerCase()))],
      queryParams: [...new Set(created.flatMap((policy) => policy.secrets?.queryParams ?? []).map((name) => name.toLowerCase()))],
    },
    consumers: consumers.directory,
    consumerHeaders: compileConsumerHeaders(config.consumer_headers),
    listenerFingerprint: fingerprintListeners(listeners),
    concurrencyLimiters: [
      ...new Set([
        ...[...upstreams.values()].flatMap((upstream) => (upstream.concurrency ? [upstream.concurrency] : [])),
        ...specs.flatMap((spec) => spec.route.limiters),
      ]),
    ],
    dispose() {
      for (const policy of created) policy.dispose?.();
      for (const upstream of upstreams.values()) if (upstream.kind === "http") upstream.discovery?.stop();
    },
  };
  return { ok: true, graph };
}

type Fail = (path: ConfigPath, message: string) => void;

function compileListener(
  listener: TurnpikeConfig["listeners"][number],
  path: ConfigPath,
  baseDir: string,
  fail: Fail,
): CompiledListener | null {
  const compiled: CompiledListener = {
    name: listener.name ?? `${listener.tls ? "https" : "http"}-${listener.port}`,
    address: listener.address ?? "0.0.0.0",
    port: listener.port,
    scheme: listener.tls ? "https" : "http",
    tls: null,
    clientCertificates: null,
  };
  if (!listener.tls) return compiled;
  if (listener.tls.client_certificates) {
    compiled.clientCertificates = compileClientCertificates(listener.tls.client_certificates, baseDir, [...path, "tls", "client_certificates"], fail);
  }
  const entries: NonNullable<CompiledListener["tls"]> = [];
  // Bun lets the last entry for a name win without a word, so a name claimed twice is an error.
  const claimedBy = new Map<string, number>();
  listener.tls.certificates.forEach((certificate, i) => {
    const certPath = [...path, "tls", "certificates", i];
    const cert = readPem(certificate.cert, "CERTIFICATE", baseDir, [...certPath, "cert"], fail);
    const key = readPem(certificate.key, "PRIVATE KEY", baseDir, [...certPath, "key"], fail);
    if (cert === null || key === null) return;
    let x509: X509Certificate;
    try {
      x509 = new X509Certificate(cert);
    } catch (error) {
      fail([...certPath, "cert"], `cannot parse the certificate in ${certificate.cert}: ${(error as Error).message}`);
      return;
    }
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey(key);
    } catch (error) {
      const reason = key.includes("ENCRYPTED") ? "it is encrypted, and Turnpike needs an unencrypted key" : (error as Error).message;
      fail([...certPath, "key"], `cannot parse the private key in ${certificate.key}: ${reason}`);
      return;
    }
    if (!x509.checkPrivateKey(privateKey)) {
      fail([...certPath, "key"], `the private key in ${certificate.key} does not belong to the certificate in ${certificate.cert}`);
      return;
    }
    const given = certificate.server_names !== undefined;
    const names = [...new Set((given ? certificate.server_names! : dnsNames(x509)).map((name) => name.toLowerCase()))];
    if (names.length === 0 && i > 0) {
      // Bun refuses an SNI entry without a name; only the first (default) may have none.
      fail([...certPath, "cert"], `the certificate in ${certificate.cert} has no DNS names in its subjectAltName; set server_names`);
      return;
    }
    for (const name of names) {
      const other = claimedBy.get(name);
      if (other !== undefined) {
        fail([...certPath, given ? "server_names" : "cert"], `server name "${name}" is already served by certificates[${other}]`);
        continue;
      }
      claimedBy.set(name, i);
    }
    if (names.length === 0) entries.push({ cert, key });
    for (const serverName of names) entries.push({ cert, key, serverName });
  });
  compiled.tls = entries;
  return compiled;
}

/** DNS names (wildcards included) of a certificate's subjectAltName; IP names are not SNI names. */
function dnsNames(certificate: X509Certificate): string[] {
  const san = certificate.subjectAltName ?? "";
  return san
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part.startsWith("DNS:"))
    .map((part) => part.slice(4));
}

function fingerprintListeners(listeners: (CompiledListener | null)[]): string {
  const hash = createHash("sha256");
  for (const listener of listeners) hash.update(JSON.stringify(listener));
  return hash.digest("hex");
}

/** Longest timer a JavaScript runtime can arm (about 24.8 days), in milliseconds. */
const MAX_TIMER_MS = 2 ** 31 - 1;

function compileTimeouts(
  config: TimeoutsConfig | undefined,
  base: Partial<Timeouts>,
  path: ConfigPath,
  fail: Fail,
): Partial<Timeouts> {
  const out: Partial<Timeouts> = { ...base };
  const keys = [["connect", "connect"], ["response_headers", "responseHeaders"], ["idle", "idle"], ["total", "total"]] as const;
  for (const [key, field] of keys) {
    const value = config?.[key];
    if (value === undefined) continue;
    const ms = parseDuration(value);
    if (ms > MAX_TIMER_MS) fail([...path, key], "must be at most 24 days");
    out[field] = ms;
  }
  return out;
}

function compileLimits(config: LimitsConfig | undefined, base: Limits): Limits {
  return {
    maxBodySize: config?.max_body_size !== undefined ? parseSize(config.max_body_size) : base.maxBodySize,
    maxHeaderSize: config?.max_header_size !== undefined ? parseSize(config.max_header_size) : base.maxHeaderSize,
    maxUrlLength: config?.max_url_length ?? base.maxUrlLength,
  };
}

function compileUpstream(name: string, config: UpstreamConfig, path: ConfigPath, baseDir: string, fail: Fail): CompiledUpstream | null {
  const timeouts = compileTimeouts(config.timeouts, {}, [...path, "timeouts"], fail);
  if (config.type === "mock") {
    if (config.targets) fail([...path, "targets"], "a mock upstream has no targets");
    for (const key of ["balancer", "hash_key", "failure_statuses", "health_check", "circuit_breaker", "retries", "discovery"] as const) {
      if (config[key] !== undefined) fail([...path, key], `a mock upstream has no ${key} (it has no targets)`);
    }
    const concurrency = compileConcurrency(config.concurrency, `upstream "${name}"`);
    return { kind: "mock", name, mock: compileMock(config.mock ?? {}), timeouts, concurrency };
  }
  if (config.mock) fail([...path, "mock"], 'mock settings need `type: mock`');
  let tls: UpstreamTls | null = null;
  if (config.tls) {
    tls = compileUpstreamTls(config.tls, baseDir, [...path, "tls"], fail);
    const https = (config.targets ?? []).some((entry) => (typeof entry === "string" ? entry : entry.url).startsWith("https:"));
    if (!https) fail([...path, "tls"], "tls applies to https:// targets, and this upstream has none");
  }
  const concurrency = compileConcurrency(config.concurrency, `upstream "${name}"`);
  return compileHttpUpstream(name, config, timeouts, concurrency, tls, path, fail);
}

/** A limiter for a schema-valid `concurrency` setting, or null without one. */
function compileConcurrency(config: ConcurrencyConfig | undefined, scope: string): ConcurrencyLimiter | null {
  if (!config) return null;
  return new ConcurrencyLimiter({
    scope,
    max: config.max,
    queueSize: config.queue?.size ?? 0,
    queueTimeoutMs: parseDuration(config.queue?.timeout ?? "1s"),
    retryAfterSeconds: Math.max(1, Math.ceil(parseDuration(config.retry_after ?? "1s") / 1000)),
  });
}

/** The limiters a request on `route` passes, in order: the route's, then the upstream's. */
function routeLimiters(routeLimiter: ConcurrencyLimiter | null, upstream: CompiledUpstream): ConcurrencyLimiter[] {
  return [routeLimiter, upstream.concurrency].filter((limiter): limiter is ConcurrencyLimiter => limiter !== null);
}

function compilePolicy(
  entry: PolicyEntryConfig,
  path: ConfigPath,
  options: CompileOptions,
  consumers: ConsumerDirectory,
  store: StoreSettings,
  created: Policy[],
  fail: Fail,
): Step | null {
  const factory = options.registry.get(entry.type);
  if (!factory) {
    fail([...path, "type"], `unknown policy type "${entry.type}"`);
    return null;
  }
  const config = entry.config ?? {};
  let ok = true;
  for (const problem of factory.validate?.(config) ?? []) {
    fail([...path, "config", ...problem.path], problem.message);
    ok = false;
  }
  const when = entry.when ? compileWhen(entry.when, [...path, "when"], fail) : null;
  if (!ok || (entry.when && !when)) return null;
  try {
    const context = {
      path: path.join("."),
      log: (options.log ?? defaultLog()).child({ policy: path.join(".") }),
      baseDir: options.baseDir,
      consumers,
      store: () => processStores.get(store),
      createPolicy(child: PolicyEntryConfig, subPath: (string | number)[]): Policy | null {
        const step = compilePolicy(child, [...path, "config", ...subPath], options, consumers, store, created, fail);
        if (!step) return null;
        created.push(step.policy);
        if (step.when) {
          fail([...path, "config", ...subPath, "when"], "a nested policy has no `when`; put it on the outer policy");
          return null;
        }
        return step.policy;
      },
    };
    return { policy: factory.create(config, context), when };
  } catch (error) {
    fail([...path, "config"], (error as Error).message);
    return null;
  }
}

function compileWhen(config: ConditionConfig, path: ConfigPath, fail: Fail): ReturnType<typeof compileCondition> | null {
  let ok = true;
  (config.client_ip ?? []).forEach((cidr, i) => {
    try {
      parseCidr(cidr);
    } catch (error) {
      fail([...path, "client_ip", i], (error as Error).message);
      ok = false;
    }
  });
  if (!ok) return null;
  try {
    return compileCondition(config);
  } catch (error) {
    fail(path, (error as Error).message);
    return null;
  }
}

function compileRoute(
  route: RouteConfig,
  index: number,
  upstream: CompiledUpstream,
  serverLimits: Limits,
  compileSteps: (entries: PolicyEntryConfig[] | undefined, path: ConfigPath) => Step[],
  fail: Fail,
): RouteSpec | null {
  const path: ConfigPath = ["routes", index];
  const before = { count: 0 };
  const routeFail: Fail = (p, m) => {
    before.count++;
    fail(p, m);
  };
  const paths = route.match?.paths ?? [];
  const paramSets: string[][] = [];
  /** Names captured by a `:name` segment: one path segment each, never more. */
  const singleSegment = new Set<string>();
  paths.forEach((text, i) => {
    try {
      const pattern = parsePathPattern(text);
      paramSets.push("params" in pattern ? pattern.params : []);
      if ("segments" in pattern) for (const segment of pattern.segments) if (segment.kind === "param") singleSegment.add(segment.name);
      if (pattern.kind === PathKind.Regex && text.length < 2) routeFail([...path, "match", "paths", i], "empty regular expression");
    } catch (error) {
      routeFail([...path, "match", "paths", i], (error as Error).message);
    }
  });

  const rewrite = compileRewrite(route, paramSets, singleSegment, [...path, "rewrite"], routeFail);
  const check = compileRouteCheck(route, [...path, "match"], routeFail);
  const policies = compileSteps(route.policies, [...path, "policies"]);
  if (before.count > 0) return null;

  const defaults = { ...DEFAULT_TIMEOUTS, ...upstream.timeouts };
  const timeouts = compileTimeouts(route.timeouts, defaults, [...path, "timeouts"], routeFail) as Timeouts;
  const compiled: CompiledRoute = {
    name: route.name,
    index,
    priority: route.priority ?? 0,
    upstream,
    rewrite,
    hostHeader: route.host_header ?? "upstream",
    requestHeaders: compileHeaderOps(route.request_headers),
    responseHeaders: compileHeaderOps(route.response_headers),
    timeouts,
    limits: compileLimits(route.limits, serverLimits),
    policies,
    limiters: routeLimiters(compileConcurrency(route.concurrency, `route "${route.name}"`), upstream),
    split: null,
  };
  const match = route.match ?? {};
  const conditionCount = (match.methods ? 1 : 0) + Object.keys(match.headers ?? {}).length + Object.keys(match.query ?? {}).length;
  return { route: compiled, hosts: match.hosts ?? [], paths, check: check, conditionCount };
}

/**
 * A route with `split`: compiled once against its first upstream, then one variant per
 * upstream the split names (with that upstream's timeouts and concurrency limit).
 */
function compileSplitRoute(
  route: RouteConfig,
  index: number,
  config: TurnpikeConfig,
  upstreams: Map<string, CompiledUpstream>,
  serverLimits: Limits,
  compileSteps: (entries: PolicyEntryConfig[] | undefined, path: ConfigPath) => Step[],
  fail: Fail,
): RouteSpec | null {
  const path: ConfigPath = ["routes", index];
  const split = route.split!;
  let ok = true;
  const splitFail: Fail = (p, m) => {
    ok = false;
    fail(p, m);
  };
  if (route.upstream !== undefined) splitFail([...path, "upstream"], "set either `upstream` or `split`, not both");
  const lookup = (name: string, at: ConfigPath): CompiledUpstream | null => {
    const upstream = upstreams.get(name);
    if (!upstream) {
      // An upstream that exists but failed to compile has its own error already.
      if (!Object.hasOwn(config.upstreams, name)) splitFail(at, `unknown upstream "${name}"`);
      else ok = false;
      return null;
    }
    return upstream;
  };
  const seen = new Map<string, number>();
  const sides = split.upstreams.map((side, i) => {
    const at: ConfigPath = [...path, "split", "upstreams", i];
    if (seen.has(side.upstream)) splitFail([...at, "upstream"], `upstream "${side.upstream}" is already listed at split.upstreams[${seen.get(side.upstream)}]`);
    seen.set(side.upstream, i);
    return { upstream: lookup(side.upstream, [...at, "upstream"]), weight: side.weight };
  });
  if (split.upstreams.reduce((sum, side) => sum + side.weight, 0) <= 0) {
    splitFail([...path, "split", "upstreams"], "the weights add up to 0: at least one upstream needs a weight above 0");
  }
  const rules = (split.rules ?? []).map((rule, i) => {
    const at: ConfigPath = [...path, "split", "rules", i];
    if ((rule.header === undefined) === (rule.cookie === undefined)) splitFail(at, "a rule matches either a `header` or a `cookie`");
    try {
      compileValueMatch(rule.value);
    } catch (error) {
      splitFail([...at, "value"], (error as Error).message);
    }
    return { rule, upstream: lookup(rule.upstream, [...at, "upstream"]) };
  });
  const sticky = split.sticky;
  if (sticky) {
    const at: ConfigPath = [...path, "split", "sticky"];
    if (sticky.by === "client_ip" && sticky.name !== undefined) splitFail([...at, "name"], "`by: client_ip` takes no name");
    if (sticky.by !== "client_ip" && sticky.name === undefined) splitFail(at, `\`by: ${sticky.by}\` needs the ${sticky.by} \`name\``);
    if (sticky.by !== "cookie" && sticky.set_cookie) splitFail([...at, "set_cookie"], "set_cookie needs `by: cookie`");
    if (sticky.by !== "cookie" && sticky.max_age !== undefined) splitFail([...at, "max_age"], "max_age needs `by: cookie` with set_cookie");
  }
  if (!ok) return null;

  const first = sides[0]!.upstream!;
  const spec = compileRoute(route, index, first, serverLimits, compileSteps, fail);
  if (!spec) return null;
  const base = spec.route;
  const routeLimiter = base.limiters.find((limiter) => limiter !== first.concurrency) ?? null;
  const variants = new Map<CompiledUpstream, CompiledRoute>();
  const variantOf = (upstream: CompiledUpstream): CompiledRoute => {
    let variant = variants.get(upstream);
    if (!variant) {
      const defaults = { ...DEFAULT_TIMEOUTS, ...upstream.timeouts };
      // Errors of the route's timeouts were reported when the base route compiled.
      const timeouts = compileTimeouts(route.timeouts, defaults, [], () => {}) as Timeouts;
      variant = { ...base, upstream, timeouts, limiters: routeLimiters(routeLimiter, upstream), split: null };
      variants.set(upstream, variant);
    }
    return variant;
  };
  base.split = createSplit({
    sides: sides.map((side) => ({ variant: variantOf(side.upstream!), weight: side.weight })),
    rules: rules.map(({ rule, upstream }) => ({
      header: rule.header ?? null,
      cookie: rule.cookie ?? null,
      value: rule.value,
      variant: variantOf(upstream!),
    })),
    sticky: sticky
      ? {
          by: sticky.by,
          name: sticky.by === "header" ? sticky.name!.toLowerCase() : (sticky.name ?? ""),
          setCookie: sticky.set_cookie ?? false,
          maxAgeSeconds: Math.ceil(parseDuration(sticky.max_age ?? "24h") / 1000),
        }
      : null,
  });
  return spec;
}

function compileRewrite(route: RouteConfig, paramSets: string[][], singleSegment: ReadonlySet<string>, path: ConfigPath, fail: Fail): Rewrite | null {
  const rewrite = route.rewrite;
  if (!rewrite) return null;
  const kinds = [rewrite.strip_prefix, rewrite.path, rewrite.regex].filter((v) => v !== undefined).length;
  if (kinds !== 1) {
    fail(path, "set exactly one of strip_prefix, path, or regex (with replacement)");
    return null;
  }
  if (rewrite.strip_prefix !== undefined) {
    const prefix = rewrite.strip_prefix.replace(/\/$/, "");
    return (p) => {
      if (!p.startsWith(prefix)) return p;
      const rest = p.slice(prefix.length);
      return rest === "" ? "/" : rest.startsWith("/") ? rest : p;
    };
  }
  if (rewrite.path !== undefined) {
    const parts = rewrite.path.split(/(:[A-Za-z_][A-Za-z0-9_]*)/);
    const used = parts.filter((part) => part.startsWith(":")).map((part) => part.slice(1));
    for (const name of used) {
      if (paramSets.length === 0 || paramSets.some((set) => !set.includes(name))) {
        fail([...path, "path"], `parameter :${name} is not captured by every path of this route`);
        return null;
      }
    }
    if (used.length === 0) {
      const fixed = rewrite.path;
      return () => fixed;
    }
    const pieces = parts.map((part) =>
      part.startsWith(":") ? { name: part.slice(1), encode: singleSegment.has(part.slice(1)) ? encodeURIComponent : encodePathParam } : part,
    );
    return (_p, params) => {
      let out = "";
      for (const piece of pieces) out += typeof piece === "string" ? piece : piece.encode(params[piece.name] ?? "");
      return out;
    };
  }
  if (rewrite.replacement === undefined) {
    fail([...path, "replacement"], "regex needs a replacement");
    return null;
  }
  const regex = new RegExp(rewrite.regex!);
  const replacement = rewrite.replacement;
  return (p) => {
    const out = p.replace(regex, replacement);
    return out.startsWith("/") ? out : `/${out}`;
  };
}

/**
 * Encodes a multi-segment capture (`*rest`, a regex group) for a path: it keeps its
 * slashes, unless a segment would be `.` or `..` (only possible from an encoded slash,
 * e.g. `..%2Fadmin`): then the value stays one encoded segment, so that it cannot climb
 * out of the rewritten path when the upstream URL is normalised.
 */
function encodePathParam(value: string): string {
  const segments = value.split("/");
  if (segments.some((segment) => segment === "." || segment === "..")) return encodeURIComponent(value);
  return segments.map(encodeURIComponent).join("/");
}

function compileRouteCheck(route: RouteConfig, path: ConfigPath, fail: Fail): RouteSpec["check"] {
  const match = route.match;
  if (!match) return null;
  const tests: ((request: Request, url: URL) => boolean)[] = [];
  if (match.methods) {
    const methods = new Set(match.methods.map((m) => m.toUpperCase()));
    tests.push((request) => methods.has(request.method));
  }
  const compileEach = (entries: Record<string, unknown> | undefined, key: "headers" | "query") => {
    for (const [name, value] of Object.entries(entries ?? {})) {
      try {
        const test = compileValueMatch(value as never);
        if (key === "headers") {
          const lower = name.toLowerCase();
          tests.push((request) => test(request.headers.get(lower)));
        } else {
          tests.push((_request, url) => test(url.searchParams.get(name)));
        }
      } catch (error) {
        fail([...path, key, name], (error as Error).message);
      }
    }
  };
  compileEach(match.headers, "headers");
  compileEach(match.query, "query");
  if (tests.length === 0) return null;
  if (tests.length === 1) return tests[0]!;
  return (request, url) => tests.every((test) => test(request, url));
}

let fallbackLog: Logger | null = null;
/** The logger of policies compiled without one (e.g. `turnpike validate`). */
function defaultLog(): Logger {
  return (fallbackLog ??= createLogger({ pid: process.pid }));
}

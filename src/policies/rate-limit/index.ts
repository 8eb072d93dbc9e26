/**
 * `rate-limit`: limits requests per key (route, consumer, client IP, header, claim, or a
 * combination) with one or more limits, each with its algorithm; quotas per calendar
 * day or month; concurrent requests. Refuses with 429 problem+json, Retry-After and the
 * IETF RateLimit/RateLimit-Policy headers (see docs/rate-limits.md for exact formats).
 *
 *     - type: rate-limit
 *       config:
 *         key: [consumer]
 *         limits:
 *           - { requests: 10, window: 1s }
 *           - { requests: 1000, window: 1h, algorithm: sliding_window }
 *           - { requests: 50000, period: month, time_zone: Europe/Berlin }
 *
 * Counters live in the store (`store:` section), shared by every worker. When the store
 * cannot serve, a limit fails open (default: counts per worker with `fallback_requests`)
 * or closed (503).
 */
import type { Exchange } from "../../core/exchange.ts";
import { recordDecision } from "../../core/pipeline.ts";
import type { Policy, PolicyFactory } from "../../core/policy.ts";
import { problem } from "../../core/problem.ts";
import { durationSchema, parseDuration } from "../../core/units.ts";
import type { Store } from "../../store/types.ts";
import {
  calendarQuota,
  concurrency,
  fixedWindow,
  leakyBucket,
  slidingLog,
  slidingWindowCounter,
  tokenBucket,
  isSync,
  type Limiter,
  type SyncCounters,
  type Verdict,
} from "./algorithms.ts";
import { CalendarPeriod, isKnownTimeZone } from "./calendar.ts";
import { compileKey, compileKeySource } from "./keys.ts";
import { LocalCounters } from "./local-counters.ts";

const ALGORITHMS = ["fixed_window", "sliding_window", "sliding_log", "token_bucket", "leaky_bucket", "quota", "concurrency"] as const;
type Algorithm = (typeof ALGORITHMS)[number];
const WINDOWED: readonly Algorithm[] = ["fixed_window", "sliding_window", "sliding_log", "token_bucket", "leaky_bucket"];

/** The exact log costs one store call per allowed request: it is for low limits. */
export const SLIDING_LOG_MAX = 100;

interface LimitConfig {
  name?: string;
  algorithm?: Algorithm;
  requests: number;
  window?: number | string;
  burst?: number;
  max_wait?: number | string;
  period?: "day" | "month";
  time_zone?: string;
  on_store_error?: "open" | "closed";
  fallback_requests?: number;
}

interface RateLimitConfig {
  name?: string;
  key?: string | string[];
  limits: LimitConfig[];
  headers?: "ietf" | "legacy" | "both" | "none";
}

const limitSchema = {
  type: "object",
  additionalProperties: false,
  required: ["requests"],
  properties: {
    name: { type: "string", pattern: "^[A-Za-z0-9_.-]{1,64}$", description: "the policy name in RateLimit headers (letters, digits, _ . -)" },
    algorithm: { enum: [...ALGORITHMS], description: "Default fixed_window (quota when `period` is set)." },
    requests: { type: "integer", minimum: 1, description: "Requests allowed per window (or period; or at once, for concurrency)." },
    window: { ...durationSchema, description: "Length of the window, e.g. 1s, 1m, 1h." },
    burst: { type: "integer", minimum: 1, description: "token_bucket: requests allowed at once (bucket size); default `requests`." },
    max_wait: { ...durationSchema, description: "leaky_bucket: longest a request is held before it is refused; default 1s." },
    period: { enum: ["day", "month"], description: "quota: the calendar period." },
    time_zone: { type: "string", minLength: 1, description: "quota: IANA time zone where periods start at midnight; default UTC." },
    on_store_error: { enum: ["open", "closed"], description: "When the store cannot serve: open (count per worker with fallback_requests; default) or closed (503)." },
    fallback_requests: { type: "integer", minimum: 1, description: "Limit per worker process while failing open; default `requests`." },
  },
} as const;

/** One compiled limit. */
interface CompiledLimit {
  index: number;
  name: string;
  requests: number;
  limiter: Limiter;
  fallback: Limiter;
  failClosed: boolean;
  /** This limit's RateLimit-Policy item. */
  policyItem: string;
}

/** Evaluation order: cheap refusals first; resources (quota, slots, waits) last. */
const ORDER: Record<Algorithm, number> = {
  fixed_window: 0,
  sliding_window: 0,
  sliding_log: 0,
  token_bucket: 0,
  quota: 1,
  concurrency: 2,
  leaky_bucket: 3,
};

function algorithmOf(limit: LimitConfig): Algorithm {
  return limit.algorithm ?? (limit.period ? "quota" : "fixed_window");
}

function validate(config: RateLimitConfig): { path: (string | number)[]; message: string }[] {
  const problems: { path: (string | number)[]; message: string }[] = [];
  const sources = config.key === undefined ? [] : Array.isArray(config.key) ? config.key : [config.key];
  sources.forEach((source, i) => {
    const compiled = compileKeySource(source);
    if (compiled instanceof Error) problems.push({ path: Array.isArray(config.key) ? ["key", i] : ["key"], message: compiled.message });
  });
  if (Array.isArray(config.key) && config.key.length === 0) problems.push({ path: ["key"], message: "needs at least one key source" });
  const names = new Map<string, number>();
  config.limits.forEach((limit, i) => {
    const at = (key?: string) => (key ? ["limits", i, key] : ["limits", i]);
    const algorithm = algorithmOf(limit);
    const windowed = WINDOWED.includes(algorithm);
    if (windowed && limit.window === undefined) problems.push({ path: at(), message: `a ${algorithm} limit needs a window` });
    if (windowed && limit.window !== undefined && parseDuration(limit.window) <= 0) problems.push({ path: at("window"), message: "must be longer than 0" });
    if (!windowed && limit.window !== undefined) problems.push({ path: at("window"), message: `a ${algorithm} limit has no window${algorithm === "quota" ? " (it uses period)" : ""}` });
    if (algorithm === "quota" && !limit.period) problems.push({ path: at(), message: "a quota needs a period (day or month)" });
    if (algorithm !== "quota" && limit.period) problems.push({ path: at("period"), message: "only a quota has a period" });
    if (algorithm !== "quota" && limit.time_zone) problems.push({ path: at("time_zone"), message: "only a quota has a time zone" });
    if (limit.time_zone && !isKnownTimeZone(limit.time_zone)) problems.push({ path: at("time_zone"), message: `unknown time zone "${limit.time_zone}" (an IANA name such as Europe/Berlin)` });
    if (limit.burst !== undefined && algorithm !== "token_bucket") problems.push({ path: at("burst"), message: "only a token_bucket has a burst" });
    if (limit.max_wait !== undefined && algorithm !== "leaky_bucket") problems.push({ path: at("max_wait"), message: "only a leaky_bucket has max_wait" });
    if (algorithm === "sliding_log" && limit.requests > SLIDING_LOG_MAX) {
      problems.push({ path: at("requests"), message: `a sliding_log allows at most ${SLIDING_LOG_MAX} requests (use sliding_window for more)` });
    }
    if (limit.on_store_error === "closed" && limit.fallback_requests !== undefined) problems.push({ path: at("fallback_requests"), message: "only a limit that fails open has fallback_requests" });
    const name = limitName(limit);
    if (names.has(name)) problems.push({ path: at("name"), message: `limit name "${name}" is already used by limits[${names.get(name)}]; give one a name` });
    names.set(name, i);
  });
  return problems;
}

function limitName(limit: LimitConfig): string {
  if (limit.name) return limit.name;
  const algorithm = algorithmOf(limit);
  if (algorithm === "quota") return `${limit.requests}-per-${limit.period}`;
  if (algorithm === "concurrency") return `${limit.requests}-concurrent`;
  const window = typeof limit.window === "number" ? `${limit.window}ms` : String(limit.window);
  return `${limit.requests}-per-${window}`;
}

function makeLimiter(limit: LimitConfig, requests: number): Limiter {
  const algorithm = algorithmOf(limit);
  const windowMs = limit.window === undefined ? 0 : parseDuration(limit.window);
  switch (algorithm) {
    case "fixed_window":
      return fixedWindow(requests, windowMs);
    case "sliding_window":
      return slidingWindowCounter(requests, windowMs);
    case "sliding_log":
      return slidingLog(requests, windowMs);
    case "token_bucket":
      return tokenBucket(requests, windowMs, limit.burst ?? requests);
    case "leaky_bucket":
      return leakyBucket(requests, windowMs, parseDuration(limit.max_wait ?? "1s"));
    case "quota":
      return calendarQuota(requests, new CalendarPeriod(limit.period!, limit.time_zone ?? "UTC"));
    case "concurrency":
      return concurrency(requests);
  }
}

/** The RateLimit-Policy item of a limit (structured field: sf-String with parameters). */
function policyItem(limit: LimitConfig, name: string): string {
  const algorithm = algorithmOf(limit);
  if (algorithm === "concurrency") return `"${name}";q=${limit.requests};qu="concurrent-requests"`;
  if (algorithm === "quota") return limit.period === "day" ? `"${name}";q=${limit.requests};w=86400` : `"${name}";q=${limit.requests}`;
  const seconds = Math.max(1, Math.round(parseDuration(limit.window!) / 1000));
  return `"${name}";q=${limit.requests};w=${seconds}`;
}


export const rateLimitPolicy: PolicyFactory<RateLimitConfig> = {
  type: "rate-limit",
  description: "Limit requests per route, consumer, client IP, header or claim (429 with RateLimit headers); quotas; concurrency.",
  schema: {
    type: "object",
    additionalProperties: false,
    required: ["limits"],
    properties: {
      name: { type: "string", minLength: 1, description: "Identifies this policy's counters; default its config path. Policies with one name share counters." },
      key: {
        anyOf: [{ type: "string" }, { type: "array", items: { type: "string" } }],
        "x-expects": "a key source or a list of them (route, consumer, client_ip, header:<name>, claim:<name>)",
        description: "What requests are counted by; default client_ip.",
      },
      limits: { type: "array", minItems: 1, items: limitSchema },
      headers: { enum: ["ietf", "legacy", "both", "none"], description: "Headers on responses: ietf (RateLimit, RateLimit-Policy; default), legacy (X-RateLimit-*), both, none." },
    },
  },
  validate,
  create(config, context): Policy {
    const sources = config.key === undefined ? ["client_ip"] : Array.isArray(config.key) ? config.key : [config.key];
    const keyOf = compileKey(sources.map((s) => compileKeySource(s) as Exclude<ReturnType<typeof compileKeySource>, Error>));
    const id = config.name ?? context.path;
    const limits: CompiledLimit[] = config.limits
      .map((limit, index) => {
        const name = limitName(limit);
        return {
          index,
          name,
          requests: limit.requests,
          limiter: makeLimiter(limit, limit.requests),
          fallback: makeLimiter(limit, limit.fallback_requests ?? limit.requests),
          failClosed: limit.on_store_error === "closed",
          policyItem: policyItem(limit, name),
          order: ORDER[algorithmOf(limit)],
        };
      })
      .sort((a, b) => a.order - b.order || a.index - b.index);
    const keyPrefixes = limits.map((limit) => `rl/${id}/${limit.index}/`);
    const headerMode = config.headers ?? "ietf";
    const ietf = headerMode === "ietf" || headerMode === "both";
    const legacy = headerMode === "legacy" || headerMode === "both";
    const policyHeader = config.limits.map((limit) => policyItem(limit, limitName(limit))).join(", ");
    const local = new LocalCounters();
    // Per-request state of this policy (several rate-limit policies may see one request):
    // the concurrency slots to give back on completion, the verdicts its headers report.
    const RELEASES = `rate-limit:${id}:releases`;
    const VERDICTS = `rate-limit:${id}:verdicts`;
    let store: Store | null = null;
    const getStore = () => (store ??= context.store());

    /** Adds the limit headers for the verdicts so far to `headers`. */
    const addHeaders = (headers: Headers, verdicts: (Verdict | undefined)[]) => {
      if (ietf) {
        headers.set("ratelimit-policy", policyHeader);
        let value = "";
        for (let i = 0; i < limits.length; i++) {
          const v = verdicts[i];
          if (!v) continue;
          const item = v.resetMs > 0 ? `"${limits[i]!.name}";r=${v.remaining};t=${Math.ceil(v.resetMs / 1000)}` : `"${limits[i]!.name}";r=${v.remaining}`;
          value = value === "" ? item : `${value}, ${item}`;
        }
        if (value !== "") headers.set("ratelimit", value);
      }
      if (legacy) {
        let tightest = -1;
        for (let i = 0; i < limits.length; i++) {
          const v = verdicts[i];
          if (v && (tightest < 0 || v.remaining < verdicts[tightest]!.remaining)) tightest = i;
        }
        if (tightest >= 0) {
          const v = verdicts[tightest]!;
          headers.set("x-ratelimit-limit", String(limits[tightest]!.requests));
          headers.set("x-ratelimit-remaining", String(v.remaining));
          headers.set("x-ratelimit-reset", String(Math.ceil(v.resetMs / 1000)));
        }
      }
    };

    /** Gives back what admitted limits took (a later limit refused, or the store failed closed). */
    const undoAll = (exchange: Exchange, verdicts: (Verdict | undefined)[]) => {
      exchange.state.delete(RELEASES);
      for (const v of verdicts) if (v?.admitted && v.undo) void v.undo().catch(() => {});
    };


    /** The 503 of a limit that fails closed. */
    const unavailable = (exchange: Exchange, verdicts: (Verdict | undefined)[]) => {
      undoAll(exchange, verdicts);
      recordDecision(exchange, "rate-limit", "reject:store_unavailable");
      return problem({
        status: 503,
        kind: "rate-limit-unavailable",
        detail: "The rate limit cannot be checked right now.",
        requestId: exchange.requestId,
        headers: { "retry-after": "1" },
      });
    };

    /** Records limit `i`'s verdict; the 429 when it refuses. */
    const settle = (exchange: Exchange, i: number, verdict: Verdict, verdicts: (Verdict | undefined)[]): Response | undefined => {
      const limit = limits[i]!;
      verdicts[i] = verdict;
      if (!verdict.admitted) {
        undoAll(exchange, verdicts);
        recordDecision(exchange, "rate-limit", `reject:${limit.limiter.releasesOnComplete ? "concurrency" : "limit"}`);
        const headers = new Headers({ "retry-after": String(Math.max(1, Math.ceil(verdict.retryAfterMs / 1000))) });
        addHeaders(headers, verdicts);
        return problem({
          status: 429,
          kind: "rate-limited",
          detail: `Limit "${limit.name}" is exhausted; retry after the time in Retry-After.`,
          requestId: exchange.requestId,
          headers,
        });
      }
      if (limit.limiter.releasesOnComplete && verdict.undo) {
        const releases = (exchange.state.get(RELEASES) as (() => Promise<unknown>)[] | undefined) ?? [];
        releases.push(verdict.undo);
        exchange.state.set(RELEASES, releases);
      }
      return undefined;
    };

    // Failing open: the worker's own counters decide; if even those are full, the request passes.
    const passed = (limit: CompiledLimit): Verdict => ({ admitted: true, remaining: limit.requests, resetMs: 0, retryAfterMs: 0, delayMs: 0, undo: null });
    const fallbackNow = (limit: CompiledLimit, key: string, now: number): Verdict => {
      try {
        return limit.fallback.checkNow!(local, key, now);
      } catch {
        return passed(limit);
      }
    };
    const fallback = async (limit: CompiledLimit, key: string, now: number): Promise<Verdict> => {
      try {
        return await limit.fallback.check(local, key, now);
      } catch {
        return passed(limit);
      }
    };

    /** Every limit has a synchronous form: with the embedded store no step waits on a promise. */
    const allSync = limits.every((limit) => limit.limiter.checkNow && limit.fallback.checkNow);

    const checkNow = (exchange: Exchange, store: SyncCounters): Response | undefined => {
      const key = keyOf(exchange);
      const now = Date.now();
      const verdicts: (Verdict | undefined)[] = new Array(limits.length);
      for (let i = 0; i < limits.length; i++) {
        const limit = limits[i]!;
        const counterKey = keyPrefixes[i] + key;
        let verdict: Verdict;
        try {
          verdict = limit.limiter.checkNow!(store, counterKey, now);
        } catch {
          if (limit.failClosed) return unavailable(exchange, verdicts);
          recordDecision(exchange, "rate-limit", "fallback");
          verdict = fallbackNow(limit, counterKey, now);
        }
        const refused = settle(exchange, i, verdict, verdicts);
        if (refused) return refused;
      }
      if (ietf || legacy) exchange.state.set(VERDICTS, verdicts);
      return undefined;
    };

    const check = async (exchange: Exchange, store: Store): Promise<Response | undefined> => {
      const key = keyOf(exchange);
      const now = Date.now();
      const verdicts: (Verdict | undefined)[] = new Array(limits.length);
      let delayMs = 0;
      for (let i = 0; i < limits.length; i++) {
        const limit = limits[i]!;
        const counterKey = keyPrefixes[i] + key;
        let verdict: Verdict;
        try {
          if (!store.available) throw new Error("store unavailable");
          verdict = await limit.limiter.check(store, counterKey, now);
        } catch {
          if (limit.failClosed) return unavailable(exchange, verdicts);
          recordDecision(exchange, "rate-limit", "fallback");
          verdict = await fallback(limit, counterKey, now);
        }
        const refused = settle(exchange, i, verdict, verdicts);
        if (refused) return refused;
        if (verdict.delayMs > delayMs) delayMs = verdict.delayMs;
      }
      if (ietf || legacy) exchange.state.set(VERDICTS, verdicts);
      if (delayMs > 0) {
        recordDecision(exchange, "rate-limit", "delayed");
        await Bun.sleep(delayMs);
      }
      return undefined;
    };

    const policy: Policy = {
      type: "rate-limit",
      onRequest(exchange: Exchange) {
        const store = getStore();
        return allSync && isSync(store) && store.available ? checkNow(exchange, store) : check(exchange, store);
      },
    };
    if (ietf || legacy) {
      // Set on the response itself: cheaper than collecting them in exchange.responseHeaders.
      policy.onResponse = (exchange: Exchange, response: Response) => {
        const verdicts = exchange.state.get(VERDICTS) as (Verdict | undefined)[] | undefined;
        if (!verdicts) return response;
        try {
          addHeaders(response.headers, verdicts);
          return response;
        } catch {
          // Immutable headers (a fetch Response a policy returned): copy once.
          const copy = new Response(response.body, { status: response.status, statusText: response.statusText, headers: new Headers(response.headers) });
          addHeaders(copy.headers, verdicts);
          return copy;
        }
      };
    }
    // Only concurrency limits need the completion hook; without one the request pays nothing for it.
    if (limits.some((limit) => limit.limiter.releasesOnComplete)) {
      policy.onComplete = (exchange: Exchange) => {
        const releases = exchange.state.get(RELEASES) as (() => Promise<unknown>)[] | undefined;
        if (!releases) return;
        exchange.state.delete(RELEASES);
        for (const release of releases) void release().catch(() => {});
      };
    }
    return policy;
  },
};

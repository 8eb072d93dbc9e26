/**
 * An http upstream at run time: its targets grouped by priority, the balancer of each
 * group, the hash key of consistent hashing, an optional upstream-wide circuit breaker,
 * retries and the settings of its health checks.
 */
import type { Exchange } from "../core/exchange.ts";
import type { UpstreamTls } from "../config/pem.ts";
import type { Timeouts } from "../router/types.ts";
import type { ConcurrencyLimiter } from "./concurrency.ts";
import type { Balancer, BalancerName, PickHints } from "./balancers/index.ts";
import { BREAKER_CELLS, CircuitBreaker, type BreakerSettings } from "./circuit-breaker.ts";
import { now32 } from "./clock.ts";
import type { RetryBudget, RetrySettings } from "./retry.ts";
import type { DiscoveredTargets } from "./dns/targets.ts";
import type { TargetRuntime, TargetSpec, TargetStatus } from "./target.ts";

/** Compiled `health_check.active` settings. */
export interface ActiveCheckSettings {
  type: "http" | "https" | "tcp";
  /** Path (and query) requested by http(s) probes. */
  path: string;
  /** Host header of http(s) probes; null: the target's. */
  host: string | null;
  intervalMs: number;
  timeoutMs: number;
  /** Statuses that count as healthy. */
  expectedStatuses: ReadonlySet<number>;
  healthyThreshold: number;
  unhealthyThreshold: number;
}

/** One priority level: its targets and their balancer. */
export interface PriorityLevel {
  priority: number;
  targets: TargetRuntime[];
  balancer: Balancer;
  /** Reused for the available targets of each pick (picks are synchronous). */
  scratch: TargetRuntime[];
}

/** Everything an http upstream is made of, compiled. */
export interface HttpUpstreamParts {
  name: string;
  targets: TargetRuntime[];
  levels: PriorityLevel[];
  /** Builds targets and levels with this upstream's settings (for `replaceTargets`). */
  build: (specs: readonly TargetSpec[]) => { targets: TargetRuntime[]; levels: PriorityLevel[] };
  balancer: BalancerName;
  hashKey: ((exchange: Exchange) => string | null) | null;
  timeouts: Partial<Timeouts>;
  failureStatuses: ReadonlySet<number>;
  breaker: { settings: BreakerSettings; cells: Int32Array; offset: number } | null;
  retry: RetrySettings | null;
  budget: RetryBudget | null;
  activeCheck: ActiveCheckSettings | null;
  /** `health_check.share: cluster`: active health verdicts are shared with the other nodes. */
  shareHealth: boolean;
  concurrency: ConcurrencyLimiter | null;
  tls: UpstreamTls | null;
}

/** Cells of an upstream-wide circuit breaker. */
export const UPSTREAM_CELLS = BREAKER_CELLS;

export class HttpUpstream {
  readonly kind = "http";
  readonly name: string;
  /** The targets, in config order (replaced as a whole by `replaceTargets`). */
  targets: TargetRuntime[];
  levels: PriorityLevel[];
  readonly balancerName: BalancerName;
  readonly timeouts: Partial<Timeouts>;
  readonly failureStatuses: ReadonlySet<number>;
  /** Upstream-wide circuit breaker (scope `upstream`), else null. */
  readonly breaker: CircuitBreaker | null;
  readonly retry: RetrySettings | null;
  readonly budget: RetryBudget | null;
  readonly activeCheck: ActiveCheckSettings | null;
  /** `health_check.share: cluster`: active health verdicts are shared with the other nodes. */
  readonly shareHealth: boolean;
  /** At most N requests in flight to this upstream (see concurrency.ts), null: no limit. */
  readonly concurrency: ConcurrencyLimiter | null;
  /** TLS toward https targets (CA to verify them, client certificate to present); null: defaults. */
  readonly tls: UpstreamTls | null;
  /** DNS discovery of the targets' host names (`discovery`), else null. */
  discovery: DiscoveredTargets | null = null;
  readonly #hashKey: ((exchange: Exchange) => string | null) | null;
  readonly #hints: PickHints = { hashKey: null };
  readonly #build: HttpUpstreamParts["build"];
  readonly #listeners: ((upstream: HttpUpstream) => void)[] = [];

  constructor(parts: HttpUpstreamParts) {
    this.name = parts.name;
    this.targets = parts.targets;
    this.levels = parts.levels;
    this.balancerName = parts.balancer;
    this.timeouts = parts.timeouts;
    this.failureStatuses = parts.failureStatuses;
    this.breaker = parts.breaker ? new CircuitBreaker(parts.breaker.cells, parts.breaker.offset, parts.breaker.settings, { upstream: parts.name, target: null }) : null;
    this.retry = parts.retry;
    this.budget = parts.budget;
    this.activeCheck = parts.activeCheck;
    this.shareHealth = parts.shareHealth;
    this.concurrency = parts.concurrency;
    this.tls = parts.tls;
    this.#hashKey = parts.hashKey;
    this.#build = parts.build;
  }

  /**
   * Replaces the targets (service discovery: a DNS name resolved to new addresses). A
   * target whose URL stays keeps its node-wide state (it is keyed by URL); requests in
   * flight finish on the targets they picked. Listeners (the supervisor's health checks)
   * are told.
   */
  replaceTargets(specs: readonly TargetSpec[]): void {
    if (specs.length === 0) throw new Error(`upstream "${this.name}": replaceTargets needs at least one target`);
    const built = this.#build(specs);
    this.targets = built.targets;
    this.levels = built.levels;
    for (const listener of this.#listeners) listener(this);
  }

  /** Calls `listener` after each `replaceTargets`. */
  onTargetsChange(listener: (upstream: HttpUpstream) => void): void {
    this.#listeners.push(listener);
  }

  /**
   * Picks a target for `exchange` (null: none needed for hashing) among the available
   * ones of the most preferred priority level that has any, avoiding `tried` when
   * another is available. Null when no target is available at all.
   */
  choose(exchange: Exchange | null, tried: readonly TargetRuntime[] | null): TargetRuntime | null {
    const hints = this.#hints;
    hints.hashKey = this.#hashKey && exchange ? this.#hashKey(exchange) : null;
    for (let pass = tried === null ? 1 : 0; pass < 2; pass++) {
      for (const level of this.levels) {
        const available = level.scratch;
        available.length = 0;
        for (const target of level.targets) {
          if (pass === 0 && tried!.includes(target)) continue;
          if (target.available()) available.push(target);
        }
        if (available.length > 0) return level.balancer.pick(available, hints) as TargetRuntime;
      }
    }
    return null;
  }

  /** Picks a target with no request context (the first available by the balancer). */
  pick(): TargetRuntime {
    return this.choose(null, null) ?? this.targets[0]!;
  }

  /**
   * Milliseconds until an open circuit lets a trial through, when circuits are why no
   * target is available; null when something else is (health, ejection).
   */
  retryAfterMs(): number | null {
    const now = now32();
    let soonest: number | null = null;
    for (const target of this.targets) {
      if (!target.breaker || target.breaker.stateAt(now) !== "open") continue;
      const wait = target.breaker.retryAfterMs(now);
      soonest = soonest === null ? wait : Math.min(soonest, wait);
    }
    return soonest;
  }

  /** Gives back the in-flight counts a process that ended left behind (see TargetRuntime.releaseInFlightOf). */
  releaseInFlightOf(pid: number): number {
    let released = 0;
    for (const target of this.targets) released += target.releaseInFlightOf(pid);
    return released;
  }

  /** The node-wide state of this upstream and its targets (reads only). */
  status(): UpstreamStatus {
    const now = now32();
    return {
      balancer: this.balancerName,
      circuit: this.breaker?.stateAt(now) ?? null,
      targets: this.targets.map((target) => target.status(now)),
    };
  }
}

/** An upstream's state as `GET /upstreams` shows it. */
export interface UpstreamStatus {
  balancer: string;
  /** The upstream-wide circuit breaker's state, null without one. */
  circuit: "closed" | "open" | "half_open" | null;
  targets: TargetStatus[];
}

/**
 * The balancer interface: every algorithm is a small module that picks one target out of
 * those currently available. Health, ejection and circuit state live in the targets
 * (src/upstream/target-state.ts); a balancer never sees an unavailable target.
 */

/** What a balancer knows of a target. */
export interface BalancedTarget {
  /** Position of the target in its upstream's list (stable for one config generation). */
  readonly index: number;
  /** Relative share of traffic (1..1000). */
  readonly weight: number;
  /** Identity used by consistent hashing (the target URL). */
  readonly key: string;
  /** Requests in flight to this target on the whole node (every worker process). */
  inFlight(): number;
}

/** Per-request input of a pick. */
export interface PickHints {
  /** The hash key of the request (consistent hashing); null when it has none. */
  hashKey: string | null;
}

/** Picks one target out of a non-empty list of available ones. */
export interface Balancer {
  /**
   * `available` is non-empty and holds only targets that may take a request now; the
   * balancer returns one of them. Called on the hot path: no allocation.
   */
  pick(available: readonly BalancedTarget[], hints: PickHints): BalancedTarget;
}

/** Makes a balancer for one priority level of an upstream (all its targets, available or not). */
export type BalancerFactory = (targets: readonly BalancedTarget[], random?: () => number) => Balancer;

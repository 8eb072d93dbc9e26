/**
 * The balancers by config name.
 */
import { consistentHash } from "./consistent-hash.ts";
import { leastConnections } from "./least-connections.ts";
import { powerOfTwoChoices } from "./p2c.ts";
import { roundRobin } from "./round-robin.ts";
import type { BalancerFactory } from "./types.ts";
import { weightedRoundRobin } from "./weighted-round-robin.ts";

export type { BalancedTarget, Balancer, BalancerFactory, PickHints } from "./types.ts";

/** Every balancer, by its `balancer:` name in the config. */
export const BALANCERS = {
  round_robin: roundRobin,
  weighted_round_robin: weightedRoundRobin,
  least_connections: leastConnections,
  consistent_hash: consistentHash,
  p2c: powerOfTwoChoices,
} as const satisfies Record<string, BalancerFactory>;

export type BalancerName = keyof typeof BALANCERS;

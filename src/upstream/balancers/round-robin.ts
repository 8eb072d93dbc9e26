/**
 * Round robin: each available target in turn, weights ignored.
 */
import type { Balancer, BalancerFactory } from "./types.ts";

/** Cycles through the available targets; a target that becomes unavailable is simply skipped. */
export const roundRobin: BalancerFactory = (): Balancer => {
  let next = 0;
  return {
    pick(available) {
      if (next >= available.length) next = 0;
      return available[next++]!;
    },
  };
};

/**
 * Smooth weighted round robin (the nginx algorithm): over any run of sum-of-weights picks
 * each target gets exactly its weight's share, and picks of a heavy target are spread
 * out instead of coming in bursts. Equal weights give plain round robin.
 */
import type { Balancer, BalancerFactory } from "./types.ts";

/** Keeps one running score per target (by index); only available targets take part. */
export const weightedRoundRobin: BalancerFactory = (targets): Balancer => {
  let size = 0;
  for (const target of targets) size = Math.max(size, target.index + 1);
  const current = new Float64Array(size);
  return {
    pick(available) {
      if (available.length === 1) return available[0]!;
      let total = 0;
      let best = available[0]!;
      let bestScore = -Infinity;
      for (const target of available) {
        total += target.weight;
        const score = (current[target.index]! += target.weight);
        if (score > bestScore) {
          bestScore = score;
          best = target;
        }
      }
      current[best.index]! -= total;
      return best;
    },
  };
};

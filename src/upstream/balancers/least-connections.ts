/**
 * Least connections: the target with the fewest requests in flight relative to its
 * weight. In-flight counts are node-wide (shared by every worker process), so two
 * workers do not both send to the target that each of them alone thinks is idle.
 * Ties go round robin, so an idle upstream still spreads its requests.
 */
import type { Balancer, BalancerFactory } from "./types.ts";

export const leastConnections: BalancerFactory = (): Balancer => {
  let rotation = 0;
  return {
    pick(available) {
      const count = available.length;
      if (count === 1) return available[0]!;
      if (++rotation >= count) rotation = 0;
      let best = available[rotation]!;
      let bestLoad = best.inFlight() / best.weight;
      for (let step = 1; step < count; step++) {
        let i = rotation + step;
        if (i >= count) i -= count;
        const target = available[i]!;
        const load = target.inFlight() / target.weight;
        if (load < bestLoad) {
          best = target;
          bestLoad = load;
        }
      }
      return best;
    },
  };
};

/**
 * Power of two choices: two distinct targets at random, the less loaded one (in-flight
 * requests relative to weight, node-wide) wins. Nearly as good as least connections with
 * two reads instead of a scan, and it never herds every worker onto one idle target.
 */
import type { Balancer, BalancerFactory } from "./types.ts";

export const powerOfTwoChoices: BalancerFactory = (_targets, random = Math.random): Balancer => ({
  pick(available) {
    const count = available.length;
    if (count === 1) return available[0]!;
    const first = Math.floor(random() * count) % count;
    // The second is drawn from the others, so the two are always distinct.
    let second = Math.floor(random() * (count - 1)) % (count - 1);
    if (second >= first) second++;
    const a = available[first]!;
    const b = available[second]!;
    return b.inFlight() / b.weight < a.inFlight() / a.weight ? b : a;
  },
});

/**
 * Consistent hashing on a ring: each target owns `POINTS_PER_WEIGHT × weight` points; a
 * request goes to the owner of the first point at or after its key's hash. Adding or
 * removing a target moves only the keys of the points it gains or loses; a target that
 * becomes unavailable hands its keys to the next owners on the ring and gets exactly
 * them back when it returns.
 */
import type { BalancedTarget, Balancer, BalancerFactory } from "./types.ts";

/** Ring points per unit of weight: enough for an even spread of keys over a few targets. */
const POINTS_PER_WEIGHT = 160;

/** A 32-bit hash of a string, identical in every process and run. */
export function hash32(text: string): number {
  return Bun.hash.xxHash32(text) >>> 0;
}

export const consistentHash: BalancerFactory = (targets): Balancer => {
  const points: { hash: number; target: BalancedTarget }[] = [];
  for (const target of targets) {
    for (let i = 0; i < POINTS_PER_WEIGHT * target.weight; i++) points.push({ hash: hash32(`${target.key}#${i}`), target });
  }
  // Ties (rare) are broken by key, so that the ring does not depend on config order.
  points.sort((a, b) => a.hash - b.hash || (a.target.key < b.target.key ? -1 : a.target.key > b.target.key ? 1 : 0));
  const hashes = Uint32Array.from(points, (p) => p.hash);
  const owners = points.map((p) => p.target);
  let fallback = 0;
  return {
    pick(available, hints) {
      if (available.length === 1 || hints.hashKey === null || owners.length === 0) {
        if (hints.hashKey !== null || available.length === 1) return available[0]!;
        // No key: spread such requests round robin.
        if (++fallback >= available.length) fallback = 0;
        return available[fallback]!;
      }
      const start = firstAtOrAfter(hashes, hash32(hints.hashKey));
      for (let step = 0; step < owners.length; step++) {
        const owner = owners[(start + step) % owners.length]!;
        if (available.includes(owner)) return owner;
      }
      return available[0]!;
    },
  };
};

/** Index of the first ring point whose hash is >= `value` (0 past the end: the ring wraps). */
function firstAtOrAfter(hashes: Uint32Array, value: number): number {
  let low = 0;
  let high = hashes.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (hashes[mid]! < value) low = mid + 1;
    else high = mid;
  }
  return low === hashes.length ? 0 : low;
}

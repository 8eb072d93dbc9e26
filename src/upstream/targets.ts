/**
 * Target selection for an http upstream: smooth weighted round robin (equal weights
 * give plain round robin). The traffic-management work replaces this with the full
 * set of balancers behind one interface.
 */
import type { Target } from "./types.ts";

/** Returns a `pick()` that cycles through targets in proportion to their weights. */
export function createTargetPicker(targets: readonly Target[]): () => Target {
  if (targets.length === 1) {
    const only = targets[0]!;
    return () => only;
  }
  const total = targets.reduce((sum, t) => sum + t.weight, 0);
  const current = targets.map(() => 0);
  return () => {
    let best = 0;
    for (let i = 0; i < targets.length; i++) {
      current[i]! += targets[i]!.weight;
      if (current[i]! > current[best]!) best = i;
    }
    current[best]! -= total;
    return targets[best]!;
  };
}

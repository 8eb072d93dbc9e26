/**
 * Adding registry snapshots up: the supervisor merges the snapshots of all workers (and
 * the totals of retired workers) into one set of families, series by series. Values of
 * series with the same family and label values are summed slot by slot, which is right
 * for counters, histograms and additive gauges (in-flight requests).
 */
import type { FamilyInfo, RegistrySnapshot } from "./registry.ts";

/** A merged family: its description and series keyed by their label values. */
export interface MergedFamily extends FamilyInfo {
  series: Map<string, { labels: string[]; values: number[] }>;
}

/** Merged families by name, in the order first seen. */
export type MergedMetrics = Map<string, MergedFamily>;

/**
 * Adds `snapshot` into `into`. With `onlyMonotonic`, gauges are skipped (used for the
 * totals of retired workers, whose gauges no longer mean anything). A family whose type,
 * labels or buckets disagree with what is already there (a worker of another version)
 * is skipped rather than mixed.
 */
export function mergeSnapshot(into: MergedMetrics, snapshot: RegistrySnapshot, onlyMonotonic = false): void {
  for (const family of snapshot) {
    if (onlyMonotonic && family.type === "gauge") continue;
    let target = into.get(family.name);
    if (!target) {
      target = { name: family.name, help: family.help, type: family.type, labelNames: [...family.labelNames], buckets: [...family.buckets], series: new Map() };
      into.set(family.name, target);
    } else if (!sameShape(target, family)) {
      continue;
    }
    for (const [labels, values] of family.series) {
      const key = labels.join("\u0000");
      const existing = target.series.get(key);
      if (!existing) {
        target.series.set(key, { labels: [...labels], values: [...values] });
      } else {
        const n = Math.min(existing.values.length, values.length);
        for (let i = 0; i < n; i++) existing.values[i]! += values[i]!;
      }
    }
  }
}

/** A deep copy, so a base (retired totals) can be merged onto without changing it. */
export function cloneMerged(source: MergedMetrics): MergedMetrics {
  const copy: MergedMetrics = new Map();
  for (const [name, family] of source) {
    const series = new Map<string, { labels: string[]; values: number[] }>();
    for (const [key, s] of family.series) series.set(key, { labels: [...s.labels], values: [...s.values] });
    copy.set(name, { ...family, series });
  }
  return copy;
}

function sameShape(a: FamilyInfo, b: FamilyInfo): boolean {
  return (
    a.type === b.type &&
    a.labelNames.length === b.labelNames.length &&
    a.labelNames.every((l, i) => l === b.labelNames[i]) &&
    a.buckets.length === b.buckets.length &&
    a.buckets.every((x, i) => x === b.buckets[i])
  );
}

/**
 * The Prometheus text exposition format, version 0.0.4: one `# HELP` and one `# TYPE`
 * line per family, then its samples; histograms as cumulative `_bucket{le=...}` series
 * ending in `le="+Inf"`, plus `_sum` and `_count`.
 */
import type { MergedMetrics } from "./merge.ts";

/** The Content-Type of a scrape answer. */
export const EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Renders merged families; `comments` become `# ` lines at the top. */
export function renderExposition(metrics: MergedMetrics, comments: readonly string[] = []): string {
  const lines: string[] = [];
  for (const comment of comments) lines.push(`# ${comment.replace(/\n/g, " ")}`);
  for (const family of metrics.values()) {
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`);
    lines.push(`# TYPE ${family.name} ${family.type}`);
    const names = family.labelNames;
    for (const { labels, values } of family.series.values()) {
      const pairs = names.map((name, i) => `${name}="${escapeLabelValue(labels[i] ?? "")}"`);
      if (family.type !== "histogram") {
        lines.push(`${family.name}${braces(pairs)} ${formatValue(values[0] ?? 0)}`);
        continue;
      }
      const buckets = family.buckets;
      let cumulative = 0;
      for (let i = 0; i <= buckets.length; i++) {
        cumulative += values[i] ?? 0;
        const le = i < buckets.length ? formatValue(buckets[i]!) : "+Inf";
        lines.push(`${family.name}_bucket${braces([...pairs, `le="${le}"`])} ${formatValue(cumulative)}`);
      }
      lines.push(`${family.name}_sum${braces(pairs)} ${formatValue(values[buckets.length + 1] ?? 0)}`);
      lines.push(`${family.name}_count${braces(pairs)} ${formatValue(values[buckets.length + 2] ?? 0)}`);
    }
  }
  return lines.join("\n") + "\n";
}

function braces(pairs: string[]): string {
  return pairs.length === 0 ? "" : `{${pairs.join(",")}}`;
}

/** Label values escape backslash, double quote and line feed. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** HELP text escapes backslash and line feed. */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/** Go-style float text: `+Inf`, `-Inf`, `NaN`, otherwise the shortest decimal form. */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

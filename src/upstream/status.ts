/**
 * The node's upstream state as operators see it: `GET /upstreams` on the admin listener
 * and the log lines of state changes.
 */
import type { Logger } from "../observability/logger.ts";
import type { UpstreamEventSink } from "./events.ts";
import type { CompiledUpstream } from "./types.ts";
import type { UpstreamStatus } from "./upstream.ts";

/**
 * `GET /upstreams`: every http upstream with the node-wide state of its targets. `extra`
 * adds fields to a target's entry (where its health verdict came from, in a cluster).
 */
export function upstreamsStatus(
  upstreams: ReadonlyMap<string, CompiledUpstream>,
  extra: (upstream: string, target: string) => Record<string, unknown> | null = () => null,
): { upstreams: Record<string, UpstreamStatus> } {
  const out: Record<string, UpstreamStatus> = {};
  for (const [name, upstream] of upstreams) {
    if (upstream.kind !== "http") continue;
    const status = upstream.status();
    status.targets = status.targets.map((target) => ({ ...target, ...extra(name, target.url) }));
    out[name] = status;
  }
  return { upstreams: out };
}

/** States that mean a target or upstream takes less traffic: logged as warnings. */
const DEGRADED = new Set(["unhealthy", "ejected", "open"]);

/** Writes upstream state changes to `log` (warnings for degradations, info for recoveries). */
export function upstreamEventLogger(log: Logger): UpstreamEventSink {
  return (message, fields) => {
    if (DEGRADED.has(String(fields.state))) log.warn(message, fields);
    else log.info(message, fields);
  };
}

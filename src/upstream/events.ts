/**
 * Where upstream state changes are reported (target ejected, circuit opened, target
 * unhealthy, ...). Each change is reported once per node: by the process whose atomic
 * update made it.
 *
 * This is also the seam for sharing state between nodes: a sink that publishes each
 * change on a Store channel (src/store/types.ts), and a subscriber that applies other
 * nodes' changes to the local cells (TargetRuntime.setActiveDown, an ejection, an open
 * circuit), would give a cluster one health view without touching the request path.
 */

/** Receives one state change: a message and its fields (upstream, target, state, reason). */
export type UpstreamEventSink = (message: string, fields: Record<string, unknown>) => void;

let sink: UpstreamEventSink = () => {};

/** Reports a state change. */
export function upstreamEvent(message: string, fields: Record<string, unknown>): void {
  sink(message, fields);
}

/** Sets where state changes go (a worker's or the supervisor's logger); returns the previous sink. */
export function setUpstreamEventSink(next: UpstreamEventSink): UpstreamEventSink {
  const previous = sink;
  sink = next;
  return previous;
}

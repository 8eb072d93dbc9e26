/**
 * Where upstream state changes are reported (target ejected, circuit opened, target
 * unhealthy, ...). Each change is reported once per node: by the process whose atomic
 * update made it.
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

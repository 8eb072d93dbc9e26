/**
 * Messages between the supervisor and its workers over Bun's IPC channel.
 */
import type { WorkerMetricsSnapshot } from "../observability/metrics/request-metrics.ts";

/** Supervisor → worker. */
export type ToWorker =
  /** Serve (or switch to) this config; the worker compiles it itself. */
  | { type: "config"; generation: number; file: string; text: string }
  /**
   * Stop accepting, finish in-flight requests (up to the grace), then exit 0. With
   * `handoffMs`, keep accepting that long first while every response closes its connection
   * (used when other workers take over; a shutdown closes the listeners at once).
   */
  | { type: "drain"; handoffMs?: number }
  /** Send a metrics snapshot now, answering with the same `id`. */
  | { type: "metrics"; id: number }
  /** Say whether the store of the served config is available, answering with the same `id`. */
  | { type: "store"; id: number }
  /** A message published on the node's store bus (by any worker), for local subscribers. */
  | { type: "published"; channel: string; message: string };

/** Worker → supervisor. */
export type FromWorker =
  | { type: "hello" }
  | { type: "ready"; generation: number; listeners: { name: string; url: string }[] }
  | { type: "reloaded"; generation: number }
  /** Draining: the listeners are closed; only requests in flight are finished now. */
  | { type: "closed" }
  | { type: "failed"; generation: number; errors: string[] }
  /** A metrics snapshot: the answer to a scrape (`id`), or the final one of a draining worker (`id` null). */
  | { type: "metrics"; id: number | null; snapshot: WorkerMetricsSnapshot }
  /** The answer to a store question: the store type of the served config and whether it can serve now. */
  | { type: "store"; id: number; store: StoreStatus }
  /** Publish on the node's store bus: the supervisor sends it to every live worker. */
  | { type: "publish"; channel: string; message: string };

/** A store's availability as one process sees it. */
export interface StoreStatus {
  type: string;
  available: boolean;
}

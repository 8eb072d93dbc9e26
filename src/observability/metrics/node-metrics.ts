/**
 * The node's metrics, kept by the supervisor: the last snapshot of every worker process,
 * the totals of workers that are gone, and the supervisor's own counters. `render` adds
 * them up into one exposition.
 *
 * Why totals never go backwards: a worker's counters are folded into the retired totals
 * when it exits, from the last snapshot it sent (a draining worker sends a final one after
 * its last request; a killed worker's requests since its last snapshot are lost). A
 * worker that does not answer a scrape in time is counted from its last snapshot.
 */
import type { CompiledUpstream } from "../../upstream/types.ts";
import { VERSION } from "../../version.ts";
import { renderExposition } from "./exposition.ts";
import { cloneMerged, mergeSnapshot, type MergedMetrics } from "./merge.ts";
import { sampleProcess, type ProcessSample, type WorkerMetricsSnapshot } from "./request-metrics.ts";
import { Registry } from "./registry.ts";

/** How long a scrape waits for each worker's snapshot, in ms. */
export const SCRAPE_TIMEOUT_MS = 1_000;
/** How long after a worker's exit a late final snapshot of it is still taken, in ms. */
const EXITED_GRACE_MS = 5_000;

/** What the supervisor knows at scrape time. */
export interface NodeState {
  /** Pids of every worker process alive now (serving, starting or draining). */
  live: number[];
  /** Pids of those that answered this scrape. */
  answered: ReadonlySet<number>;
  /** Workers the current config asks for. */
  workers: number;
  generation: number;
  restarts: number;
  /** The upstreams of the current config, whose node-wide target state is exported. */
  upstreams?: ReadonlyMap<string, CompiledUpstream>;
  /** The store as the supervisor sees it (available only when every serving worker says so). */
  store?: { type: string; available: boolean };
}

/** The supervisor's side of metrics. */
export class NodeMetrics {
  /** Counters and histograms of workers that exited. */
  #retired: MergedMetrics = new Map();
  readonly #last = new Map<number, WorkerMetricsSnapshot>();
  /**
   * Workers that exited recently, by pid, with their exit time (ms, performance.now()):
   * IPC may deliver a final snapshot after the exit is seen, so they are folded into the
   * retired totals only after EXITED_GRACE_MS; until then a late snapshot replaces theirs.
   */
  readonly #exited = new Map<number, { snapshot: WorkerMetricsSnapshot; at: number }>();
  readonly #reloads = { success: 0, failure: 0 };

  /** A worker sent a snapshot (an answer to a scrape or its final one). */
  workerReported(pid: number, snapshot: WorkerMetricsSnapshot): void {
    const exited = this.#exited.get(pid);
    if (exited) exited.snapshot = snapshot;
    else this.#last.set(pid, snapshot);
  }

  /** A worker exited: its last counters join the retired totals. */
  workerExited(pid: number): void {
    const last = this.#last.get(pid);
    this.#last.delete(pid);
    const empty: WorkerMetricsSnapshot = { families: [], process: { pid, residentBytes: 0, cpuSeconds: 0 } };
    this.#exited.set(pid, { snapshot: last ?? empty, at: performance.now() });
  }

  /** A config reload finished. */
  reloaded(ok: boolean): void {
    if (ok) this.#reloads.success++;
    else this.#reloads.failure++;
  }

  /** The merged exposition of the node. */
  /** Requests answered by the node, by status class, as of the last `render`. */
  get requestCounts(): Record<string, number> {
    return this.#requestCounts;
  }

  #requestCounts: Record<string, number> = { total: 0 };

  render(state: NodeState): string {
    const now = performance.now();
    for (const [pid, exited] of this.#exited) {
      if (now - exited.at < EXITED_GRACE_MS) continue;
      mergeSnapshot(this.#retired, exited.snapshot.families, true);
      this.#exited.delete(pid);
    }
    const merged = cloneMerged(this.#retired);
    for (const exited of this.#exited.values()) mergeSnapshot(merged, exited.snapshot.families, true);
    const processes: (ProcessSample & { role: string })[] = [{ ...sampleProcess(), role: "supervisor" }];
    let stale = 0;
    for (const pid of state.live) {
      const last = this.#last.get(pid);
      if (!state.answered.has(pid)) stale++;
      if (!last) continue;
      mergeSnapshot(merged, last.families);
      processes.push({ ...last.process, role: "worker" });
    }
    mergeSnapshot(merged, this.#own(state, processes).snapshot());
    this.#requestCounts = countByStatusClass(merged.get("turnpike_http_requests_total"));
    const comments = [`turnpike ${VERSION}: ${state.answered.size} of ${state.live.length} worker processes answered this scrape`];
    if (stale > 0) {
      comments.push(`${stale} worker process(es) did not answer within ${SCRAPE_TIMEOUT_MS} ms; their last snapshot (if any) is used`);
    }
    return renderExposition(merged, comments);
  }

  /** The supervisor's own families, built fresh for one scrape. */
  #own(state: NodeState, processes: (ProcessSample & { role: string })[]): Registry {
    const registry = new Registry(Number.MAX_SAFE_INTEGER);
    const reloads = registry.counter("turnpike_config_reloads_total", "Config reloads, by result.", ["result"]);
    reloads.series("success").add(this.#reloads.success);
    reloads.series("failure").add(this.#reloads.failure);
    registry.gauge("turnpike_config_generation", "The config generation being served (1 at start, +1 per successful reload).").series().set(state.generation);
    registry.counter("turnpike_worker_restarts_total", "Worker processes that died and were replaced.").series().add(state.restarts);
    registry.gauge("turnpike_workers", "Worker processes the current config asks for.").series().set(state.workers);
    registry.gauge("turnpike_workers_scraped", "Worker processes that answered this scrape in time.").series().set(state.answered.size);
    registry.gauge("turnpike_build_info", "Always 1; the version as a label.", ["version"]).series(VERSION).set(1);
    const rss = registry.gauge("turnpike_process_resident_memory_bytes", "Resident memory of each gateway process, in bytes.", ["pid", "role"]);
    const cpu = registry.counter("turnpike_process_cpu_seconds_total", "User and system CPU time of each gateway process, in seconds.", ["pid", "role"]);
    for (const p of processes) {
      rss.series(String(p.pid), p.role).set(p.residentBytes);
      cpu.series(String(p.pid), p.role).add(p.cpuSeconds);
    }
    if (state.store) {
      registry
        .gauge("turnpike_store_available", "1 when the store can serve on every serving worker, else 0 (rate limits follow their on_store_error).", ["type"])
        .series(state.store.type)
        .set(state.store.available ? 1 : 0);
    }
    if (state.upstreams) addUpstreamState(registry, state.upstreams);
    return registry;
  }
}

/** Sums `turnpike_http_requests_total` over routes and methods, by status class and in all. */
function countByStatusClass(family: MergedMetrics extends Map<string, infer F> ? F | undefined : never): Record<string, number> {
  const counts: Record<string, number> = { total: 0 };
  if (!family) return counts;
  const classIndex = family.labelNames.indexOf("status_class");
  for (const series of family.series.values()) {
    const value = series.values[0] ?? 0;
    counts.total! += value;
    const statusClass = classIndex >= 0 ? series.labels[classIndex] : undefined;
    if (statusClass) counts[statusClass] = (counts[statusClass] ?? 0) + value;
  }
  return counts;
}

/** Circuit states as gauge values. */
const CIRCUIT_VALUES = { closed: 0, open: 1, half_open: 2 } as const;

/**
 * The node-wide state of every target, read from shared memory by the supervisor (so each
 * target is counted once, not once per worker).
 */
function addUpstreamState(registry: Registry, upstreams: ReadonlyMap<string, CompiledUpstream>): void {
  const labels = ["upstream", "target"];
  const healthy = registry.gauge("turnpike_upstream_target_healthy", "1 when the active health check finds the target healthy (always 1 without active checks), else 0.", labels);
  const ejected = registry.gauge("turnpike_upstream_target_ejected", "1 while passive checks (outlier detection) eject the target, else 0.", labels);
  const available = registry.gauge("turnpike_upstream_target_available", "1 when the target would get requests now (healthy, not ejected, circuit not open).", labels);
  const inFlight = registry.gauge("turnpike_upstream_target_in_flight", "Requests in flight to the target on the node.", labels);
  const circuit = registry.gauge("turnpike_upstream_circuit_state", "Circuit breaker state: 0 closed, 1 open, 2 half-open; target is empty for an upstream-wide breaker.", labels);
  for (const [name, upstream] of upstreams) {
    if (upstream.kind !== "http") continue;
    const status = upstream.status();
    if (status.circuit !== null) circuit.series(name, "").set(CIRCUIT_VALUES[status.circuit]);
    for (const target of status.targets) {
      healthy.series(name, target.url).set(target.healthy ? 1 : 0);
      ejected.series(name, target.url).set(target.ejected ? 1 : 0);
      available.series(name, target.url).set(target.available ? 1 : 0);
      inFlight.series(name, target.url).set(target.in_flight);
      if (target.circuit !== null) circuit.series(name, target.url).set(CIRCUIT_VALUES[target.circuit]);
    }
  }
}

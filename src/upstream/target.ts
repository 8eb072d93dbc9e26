/**
 * A target at run time: its address, its place in the upstream (weight, priority) and its
 * node-wide state: requests in flight, active health, passive ejection and circuit breaker.
 *
 * Node-wide cells of a target (see node-cells.ts), in up to three blocks: its own (the
 * in-flight count and the active health written by the supervisor's health checks), the
 * outlier detector's and the circuit breaker's.
 */
import type { BalancedTarget } from "./balancers/types.ts";
import { Admission, BREAKER_CELLS, CircuitBreaker, type BreakerSettings } from "./circuit-breaker.ts";
import { now32 } from "./clock.ts";
import { upstreamEvent } from "./events.ts";
import type { CellBlock, NodeCells } from "./node-cells.ts";
import { OUTLIER_CELLS, OutlierDetector, type OutlierSettings } from "./outlier.ts";
import type { Target } from "./types.ts";

const IN_FLIGHT = 0;
const ACTIVE_DOWN = 1;
const TARGET_CELLS = 2;

/** Where a target is declared and how it takes part. */
export interface TargetSpec {
  /** The target URL as given (normalised), its identity in status pages and metrics. */
  url: string;
  origin: string;
  basePath: string;
  host: string;
  weight: number;
  /** 0 for primaries; backups have higher numbers and get traffic only when no lower level has an available target. */
  priority: number;
  /** For a target found by DNS discovery over https: the name to verify its certificate against. */
  serverName?: string | null;
}

/** A target with node-wide state. */
export class TargetRuntime implements Target, BalancedTarget {
  readonly url: string;
  readonly key: string;
  readonly origin: string;
  readonly basePath: string;
  readonly host: string;
  readonly weight: number;
  readonly priority: number;
  readonly serverName: string | null;
  readonly outlier: OutlierDetector | null;
  readonly breaker: CircuitBreaker | null;
  readonly #cells: Int32Array;
  readonly #base: number;
  /** This process's share of the in-flight count, given back by the supervisor if the process dies. */
  readonly #mine: CellBlock;
  readonly #key: string;
  readonly #nodeCells: NodeCells;
  /** The cells that, all zero, mean "available": active health, ejection, breaker state. */
  readonly #ejectedCells: Int32Array;
  readonly #ejectedCell: number;
  readonly #breakerCells: Int32Array;
  readonly #breakerCell: number;

  constructor(
    spec: TargetSpec,
    readonly index: number,
    readonly upstream: string,
    cells: NodeCells,
    outlier: OutlierSettings | null,
    breaker: BreakerSettings | null,
  ) {
    this.url = spec.url;
    this.key = spec.url;
    this.origin = spec.origin;
    this.basePath = spec.basePath;
    this.host = spec.host;
    this.weight = spec.weight;
    this.priority = spec.priority;
    this.serverName = spec.serverName ?? null;
    const key = `upstream:${upstream}\ntarget:${spec.url}`;
    const own = cells.block(`${key}\nstate`, TARGET_CELLS);
    this.#key = key;
    this.#nodeCells = cells;
    this.#mine = cells.block(inFlightKey(key, process.pid), 1);
    this.#cells = own.cells;
    this.#base = own.offset;
    const labels = { upstream, target: spec.url };
    const outlierBlock = outlier ? cells.block(`${key}\noutlier`, OUTLIER_CELLS) : null;
    const breakerBlock = breaker ? cells.block(`${key}\nbreaker`, BREAKER_CELLS) : null;
    this.outlier = outlierBlock ? new OutlierDetector(outlierBlock.cells, outlierBlock.offset, outlier!, labels) : null;
    this.breaker = breakerBlock ? new CircuitBreaker(breakerBlock.cells, breakerBlock.offset, breaker!, labels) : null;
    // Without an outlier detector or a breaker, the fast check reads the health cell in their place.
    this.#ejectedCells = outlierBlock?.cells ?? own.cells;
    this.#ejectedCell = outlierBlock ? outlierBlock.offset : own.offset + ACTIVE_DOWN;
    this.#breakerCells = breakerBlock?.cells ?? own.cells;
    this.#breakerCell = breakerBlock ? breakerBlock.offset : own.offset + ACTIVE_DOWN;
  }

  /** Requests in flight to this target on the node. */
  inFlight(): number {
    return this.#cells[this.#base + IN_FLIGHT]!;
  }

  /** A request to this target starts. */
  begin(): void {
    Atomics.add(this.#cells, this.#base + IN_FLIGHT, 1);
    Atomics.add(this.#mine.cells, this.#mine.offset, 1);
  }

  /** A request to this target ended (its response body finished, failed or was dropped). */
  end(): void {
    Atomics.sub(this.#cells, this.#base + IN_FLIGHT, 1);
    Atomics.sub(this.#mine.cells, this.#mine.offset, 1);
  }

  /**
   * Takes out of the node-wide in-flight count what process `pid` still counted (it
   * ended, perhaps killed mid-request), so that least connections does not shun this
   * target forever. Called by the supervisor when a worker exits.
   */
  releaseInFlightOf(pid: number): number {
    const key = inFlightKey(this.#key, pid);
    const theirs = this.#nodeCells.block(key, 1);
    const left = Atomics.exchange(theirs.cells, theirs.offset, 0);
    if (left !== 0) Atomics.sub(this.#cells, this.#base + IN_FLIGHT, left);
    this.#nodeCells.release?.(key);
    return left;
  }

  /** True when the active health check reports the target down. */
  activeDown(): boolean {
    return this.#cells[this.#base + ACTIVE_DOWN] !== 0;
  }

  /** Sets the active health state (the supervisor's health checks); true when it changed. */
  setActiveDown(down: boolean): boolean {
    const value = down ? 1 : 0;
    return Atomics.exchange(this.#cells, this.#base + ACTIVE_DOWN, value) !== value;
  }

  /** True when the target may take a request now (healthy, not ejected, circuit not open). */
  available(): boolean {
    // The common case, three reads: nothing is wrong.
    if ((this.#cells[this.#base + ACTIVE_DOWN]! | this.#ejectedCells[this.#ejectedCell]! | this.#breakerCells[this.#breakerCell]!) === 0) return true;
    if (this.#cells[this.#base + ACTIVE_DOWN] !== 0) return false;
    const now = now32();
    if (this.outlier?.ejected(now)) return false;
    return this.breaker === null || this.breaker.admits(now);
  }

  /** Takes a breaker admission for a picked target (`Admission`); `refused` when a half-open circuit has no trial left. */
  admit(): number {
    return this.breaker === null ? Admission.normal : this.breaker.acquire(now32());
  }

  /**
   * Records the outcome of a request: `failed` true for a connection error, a timeout or
   * a failure status; null when it had no outcome (the client left).
   */
  record(admission: number, failed: boolean | null, now: number): void {
    if (failed !== null) this.outlier?.record(failed, now);
    this.breaker?.record(admission, failed, now);
  }

  /** The node-wide state, for status pages and metrics (reads only). */
  status(now: number): TargetStatus {
    const healthy = !this.activeDown();
    const ejected = this.outlier?.ejectedAt(now) ?? false;
    const circuit = this.breaker?.stateAt(now) ?? null;
    return {
      url: this.url,
      weight: this.weight,
      priority: this.priority,
      healthy,
      ejected,
      circuit,
      in_flight: Math.max(0, this.inFlight()),
      available: healthy && !ejected && circuit !== "open",
    };
  }

  /** Reports an active health change (called by whoever changed it). */
  reportHealth(healthy: boolean, reason: string): void {
    upstreamEvent(healthy ? "target healthy" : "target unhealthy", { upstream: this.upstream, target: this.url, state: healthy ? "healthy" : "unhealthy", reason });
  }
}

/** Key of the cell counting one process's requests in flight to a target. */
function inFlightKey(targetKey: string, pid: number): string {
  return `${targetKey}\nin-flight-of:${pid}`;
}

/** A target's state as `GET /upstreams` shows it. */
export interface TargetStatus {
  url: string;
  weight: number;
  priority: number;
  /** The active health check's view (true without active checks). */
  healthy: boolean;
  /** Ejected by passive checks (outlier detection). */
  ejected: boolean;
  /** Circuit breaker state, null without a per-target breaker. */
  circuit: "closed" | "open" | "half_open" | null;
  in_flight: number;
  /** Would get requests now. */
  available: boolean;
}

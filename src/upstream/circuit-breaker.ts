/**
 * A circuit breaker over node-wide cells, for one target or a whole upstream.
 *
 * closed → open when, within a window, the failures reach a count or (with enough
 * requests) a ratio; timeouts and connection errors are failures. While open no request
 * is sent; after `openMs` the first process to notice moves it to half-open, where up to
 * `halfOpenRequests` trial requests go through: a successful trial closes the circuit, a
 * failed one opens it again. Trials that decide nothing within another `openMs` (their
 * worker died) are given back, so a circuit cannot stay half-open for ever.
 *
 * State changes are compare-and-swap on shared cells, so every worker agrees, and only
 * the process that made a change reports it.
 */
import { after, since } from "./clock.ts";
import { upstreamEvent } from "./events.ts";

/** Compiled `circuit_breaker` settings. */
export interface BreakerSettings {
  scope: "target" | "upstream";
  /** Failures within the window that open the circuit (0: not used). */
  failures: number;
  /** Failure share (0..1] within the window that opens it once `minRequests` were seen (0: not used). */
  failureRatio: number;
  minRequests: number;
  windowMs: number;
  openMs: number;
  halfOpenRequests: number;
}

export const BreakerState = { closed: 0, open: 1, halfOpen: 2, /** transient while a process sets the state up */ changing: 3 } as const;

/** Cells used by one breaker, from its base. */
const STATE = 0;
const UNTIL = 1;
const WINDOW_START = 2;
const WINDOW_REQUESTS = 3;
const WINDOW_FAILURES = 4;
const TRIALS = 5;
export const BREAKER_CELLS = 6;

/** What a request was admitted as. */
export const Admission = { refused: 0, normal: 1, trial: 2 } as const;

export class CircuitBreaker {
  constructor(
    private readonly cells: Int32Array,
    private readonly base: number,
    readonly settings: BreakerSettings,
    private readonly labels: { upstream: string; target: string | null },
  ) {}

  /** The state with time applied (an expired open state reads as half-open); does not change cells. */
  stateAt(now: number): "closed" | "open" | "half_open" {
    const state = this.cells[this.base + STATE]!;
    if (state === BreakerState.closed) return "closed";
    if (state === BreakerState.halfOpen) return "half_open";
    if (state === BreakerState.open && since(now, this.cells[this.base + UNTIL]!) >= 0) return "half_open";
    return "open";
  }

  /** True when a request could be admitted now (no trial is taken). */
  admits(now: number): boolean {
    const c = this.cells;
    const b = this.base;
    const state = c[b + STATE]!;
    if (state === BreakerState.closed) return true;
    if (state === BreakerState.open) {
      if (since(now, c[b + UNTIL]!) < 0) return false;
      this.#toHalfOpen(now);
      return c[b + STATE] === BreakerState.halfOpen && c[b + TRIALS]! < this.settings.halfOpenRequests;
    }
    if (state === BreakerState.halfOpen) {
      const trials = c[b + TRIALS]!;
      if (trials < this.settings.halfOpenRequests) return true;
      // Every trial is taken and none decided within openMs: give them back.
      const deadline = c[b + UNTIL]!;
      if (since(now, deadline) < 0) return false;
      if (Atomics.compareExchange(c, b + UNTIL, deadline, after(now, this.settings.openMs)) === deadline) Atomics.store(c, b + TRIALS, 0);
      return c[b + TRIALS]! < this.settings.halfOpenRequests;
    }
    return false;
  }

  /** Admits one request: `normal` when closed, `trial` when half-open with a trial left, else `refused`. */
  acquire(now: number): number {
    const c = this.cells;
    const b = this.base;
    if (c[b + STATE] === BreakerState.closed) return Admission.normal;
    if (!this.admits(now)) return Admission.refused;
    if (c[b + STATE] !== BreakerState.halfOpen) return c[b + STATE] === BreakerState.closed ? Admission.normal : Admission.refused;
    if (Atomics.add(c, b + TRIALS, 1) < this.settings.halfOpenRequests) return Admission.trial;
    Atomics.sub(c, b + TRIALS, 1);
    return Admission.refused;
  }

  /** Milliseconds until the circuit lets a trial through (0 when it does now). */
  retryAfterMs(now: number): number {
    const state = this.cells[this.base + STATE];
    if (state !== BreakerState.open && state !== BreakerState.halfOpen) return this.settings.openMs;
    return Math.max(0, -since(now, this.cells[this.base + UNTIL]!));
  }

  /**
   * Records the outcome of a request admitted as `admission`. `failed` null means it
   * ended without an outcome (the client left): a trial is given back.
   */
  record(admission: number, failed: boolean | null, now: number): void {
    const c = this.cells;
    const b = this.base;
    if (admission === Admission.trial) {
      if (failed === null) {
        Atomics.sub(c, b + TRIALS, 1);
      } else if (failed) {
        this.#open(BreakerState.halfOpen, now, "a trial request failed");
      } else if (Atomics.compareExchange(c, b + STATE, BreakerState.halfOpen, BreakerState.changing) === BreakerState.halfOpen) {
        Atomics.store(c, b + WINDOW_START, 0);
        Atomics.store(c, b + STATE, BreakerState.closed);
        upstreamEvent("circuit closed", { ...this.labels, state: "closed", reason: "a trial request succeeded" });
      }
      return;
    }
    if (failed === null || c[b + STATE] !== BreakerState.closed) return;
    const s = this.settings;
    const start = c[b + WINDOW_START]!;
    if (start === 0 || since(now, start) >= s.windowMs) {
      if (Atomics.compareExchange(c, b + WINDOW_START, start, now) === start) {
        Atomics.store(c, b + WINDOW_REQUESTS, 0);
        Atomics.store(c, b + WINDOW_FAILURES, 0);
      }
    }
    const requests = Atomics.add(c, b + WINDOW_REQUESTS, 1) + 1;
    if (!failed) return;
    const failures = Atomics.add(c, b + WINDOW_FAILURES, 1) + 1;
    if (s.failures > 0 && failures >= s.failures) {
      this.#open(BreakerState.closed, now, `${failures} failures within ${s.windowMs} ms`);
    } else if (s.failureRatio > 0 && requests >= s.minRequests && failures / requests >= s.failureRatio) {
      this.#open(BreakerState.closed, now, `${failures} of ${requests} requests failed within ${s.windowMs} ms`);
    }
  }

  /** Opens the circuit if it is still in state `from` (only one process wins). */
  #open(from: number, now: number, reason: string): void {
    const c = this.cells;
    const b = this.base;
    if (Atomics.compareExchange(c, b + STATE, from, BreakerState.changing) !== from) return;
    Atomics.store(c, b + UNTIL, after(now, this.settings.openMs));
    Atomics.store(c, b + STATE, BreakerState.open);
    upstreamEvent("circuit opened", { ...this.labels, state: "open", reason, open_ms: this.settings.openMs });
  }

  #toHalfOpen(now: number): void {
    const c = this.cells;
    const b = this.base;
    if (Atomics.compareExchange(c, b + STATE, BreakerState.open, BreakerState.changing) !== BreakerState.open) return;
    Atomics.store(c, b + TRIALS, 0);
    // While half-open, UNTIL is when undecided trials are given back.
    Atomics.store(c, b + UNTIL, after(now, this.settings.openMs));
    Atomics.store(c, b + STATE, BreakerState.halfOpen);
    upstreamEvent("circuit half-open", { ...this.labels, state: "half_open", trials: this.settings.halfOpenRequests });
  }
}

/**
 * Passive health checks (outlier detection) over node-wide cells: a target whose
 * requests fail (connection errors, timeouts, configured statuses) too often in a row or
 * in too large a share is ejected for a while: `ejectionMs` the first time, one more
 * `ejectionMs` for each further ejection without a success in between, at most
 * `maxEjectionMs`. Every worker of the node sees the ejection.
 */
import { after, since } from "./clock.ts";
import { upstreamEvent } from "./events.ts";

/** Compiled `health_check.passive` settings. */
export interface OutlierSettings {
  /** Failures in a row that eject (0: not used). */
  consecutiveFailures: number;
  /** Failure share within the window that ejects once `minRequests` were seen (0: not used). */
  failureRatio: number;
  minRequests: number;
  windowMs: number;
  ejectionMs: number;
  maxEjectionMs: number;
}

const EJECTED = 0;
const UNTIL = 1;
const EJECTIONS = 2;
const CONSECUTIVE = 3;
const WINDOW_START = 4;
const WINDOW_REQUESTS = 5;
const WINDOW_FAILURES = 6;
export const OUTLIER_CELLS = 7;

const IN = 0;
const OUT = 1;
const CHANGING = 2;

export class OutlierDetector {
  constructor(
    private readonly cells: Int32Array,
    private readonly base: number,
    readonly settings: OutlierSettings,
    private readonly labels: { upstream: string; target: string },
  ) {}

  /** True while ejected (an ejection whose time is over ends here, once, for the node). */
  ejected(now: number): boolean {
    const c = this.cells;
    const b = this.base;
    const state = c[b + EJECTED]!;
    if (state === IN) return false;
    if (state === CHANGING || since(now, c[b + UNTIL]!) < 0) return true;
    if (Atomics.compareExchange(c, b + EJECTED, OUT, IN) === OUT) {
      upstreamEvent("target returned", { ...this.labels, state: "in", reason: "ejection time over" });
    }
    return c[b + EJECTED] !== IN;
  }

  /** True while ejected, read-only (for status pages). */
  ejectedAt(now: number): boolean {
    const state = this.cells[this.base + EJECTED]!;
    return state === CHANGING || (state === OUT && since(now, this.cells[this.base + UNTIL]!) < 0);
  }

  /** Records one request's outcome. */
  record(failed: boolean, now: number): void {
    const c = this.cells;
    const b = this.base;
    const s = this.settings;
    if (s.failureRatio > 0) {
      const start = c[b + WINDOW_START]!;
      if (start === 0 || since(now, start) >= s.windowMs) {
        if (Atomics.compareExchange(c, b + WINDOW_START, start, now) === start) {
          Atomics.store(c, b + WINDOW_REQUESTS, 0);
          Atomics.store(c, b + WINDOW_FAILURES, 0);
        }
      }
    }
    if (!failed) {
      // Plain reads first: a healthy target's cells are not written on every request.
      if (c[b + CONSECUTIVE] !== 0) Atomics.store(c, b + CONSECUTIVE, 0);
      if (c[b + EJECTIONS] !== 0 && c[b + EJECTED] === IN) Atomics.store(c, b + EJECTIONS, 0);
      if (s.failureRatio > 0) Atomics.add(c, b + WINDOW_REQUESTS, 1);
      return;
    }
    const consecutive = Atomics.add(c, b + CONSECUTIVE, 1) + 1;
    if (s.consecutiveFailures > 0 && consecutive >= s.consecutiveFailures) {
      this.#eject(now, `${consecutive} failures in a row`);
      return;
    }
    if (s.failureRatio > 0) {
      const requests = Atomics.add(c, b + WINDOW_REQUESTS, 1) + 1;
      const failures = Atomics.add(c, b + WINDOW_FAILURES, 1) + 1;
      if (requests >= s.minRequests && failures / requests >= s.failureRatio) {
        this.#eject(now, `${failures} of ${requests} requests failed within ${s.windowMs} ms`);
      }
    }
  }

  #eject(now: number, reason: string): void {
    const c = this.cells;
    const b = this.base;
    if (Atomics.compareExchange(c, b + EJECTED, IN, CHANGING) !== IN) return;
    const count = Atomics.add(c, b + EJECTIONS, 1) + 1;
    const ms = Math.min(this.settings.ejectionMs * count, this.settings.maxEjectionMs);
    Atomics.store(c, b + UNTIL, after(now, ms));
    Atomics.store(c, b + CONSECUTIVE, 0);
    Atomics.store(c, b + WINDOW_START, 0);
    Atomics.store(c, b + EJECTED, OUT);
    upstreamEvent("target ejected", { ...this.labels, state: "ejected", reason, ejection_ms: ms });
  }
}

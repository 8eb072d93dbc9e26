/**
 * Times kept in node-wide Int32 cells: wall-clock milliseconds truncated to 32 bits. Every
 * process of a node computes the same value, and differences are right as long as the
 * spans compared are shorter than 24 days (ejection, open and window times are far shorter).
 */

/** Now, in wrapped 32-bit milliseconds; never 0 (0 marks "no time set" in cells). */
export function now32(): number {
  return Date.now() | 0 || 1;
}

/** Milliseconds from `then` to `now` (negative when `then` is in the future). */
export function since(now: number, then: number): number {
  return (now - then) | 0;
}

/** `now` plus `ms`, wrapped; never 0. */
export function after(now: number, ms: number): number {
  return (now + ms) | 0 || 1;
}

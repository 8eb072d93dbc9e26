/**
 * The limit algorithms, each a `Limiter` over shared counters (the store, or local
 * counters when the store cannot serve). One parameterised implementation each:
 *
 * - fixedWindow: a counter per window aligned to the epoch; exact.
 * - slidingWindowCounter: the current window's count plus the previous window's, weighted
 *   by how much of it still overlaps the sliding window (an approximation that smooths
 *   the burst at window edges); refused requests are not counted.
 * - slidingLog: exact "at most N in any window": N slots, each taken by one request for
 *   one window; costs up to N store calls per request, so only for low limits.
 * - tokenBucket: GCRA over one word (the theoretical arrival time, µs): `requests` per
 *   `window` refill, up to `burst` at once.
 * - leakyBucket: requests leave at `requests` per `window`; one that would wait longer than
 *   `maxWait` is refused, others are delayed until their turn.
 * - calendarQuota: a durable counter per calendar period (day, month) in a time zone.
 * - concurrency: requests in flight; released when the response is handed over.
 *
 * Window counters and quotas pass their limit to `increment`, so that a batching store
 * (Hazelcast in `batched` mode) can size the blocks of counts it takes; the exact log and
 * concurrency do not, as they need every count exact.
 */
import { DURABLE_PREFIX, type Store, type WindowCount } from "../../store/types.ts";
import type { CalendarPeriod } from "./calendar.ts";

/** What a limiter needs of a store. */
export type Counters = Pick<Store, "increment" | "count" | "readWord" | "compareAndSetWord">;

/**
 * Counters that also answer synchronously (the embedded store, local counters): the
 * common algorithms then run without a promise per step. Throws like the async calls.
 */
export interface SyncCounters extends Counters {
  /** `now`: the caller's clock reading (ms since the epoch), saving a second one. */
  incrementNow(key: string, delta: number, windowMs: number, now?: number): WindowCount;
  countNow(key: string, now?: number): number;
}

/** True when `counters` offers the synchronous calls. */
export function isSync(counters: Counters): counters is SyncCounters {
  return typeof (counters as Partial<SyncCounters>).incrementNow === "function";
}

/** A limiter's answer for one request. */
export interface Verdict {
  admitted: boolean;
  /** Requests still allowed now (after this one, if admitted). */
  remaining: number;
  /** ms until the limit is whole again (0: not time-based, e.g. concurrency). */
  resetMs: number;
  /** When refused: ms after which a retry may be admitted. */
  retryAfterMs: number;
  /** Admitted with a wait (leaky bucket): ms to hold the request before forwarding it. */
  delayMs: number;
  /** Gives back what an admitted request took, when a later limit refuses it (or it completes, for concurrency). */
  undo: (() => Promise<unknown>) | null;
}

export interface Limiter {
  /** `key` already names the policy, the limit and the caller. */
  check(counters: Counters, key: string, now: number): Promise<Verdict>;
  /** The same decision made synchronously (algorithms that need no compare-and-set loop). */
  checkNow?(counters: SyncCounters, key: string, now: number): Verdict;
  /** True when `undo` must run when the request completes (concurrency). */
  readonly releasesOnComplete: boolean;
}

function verdict(admitted: boolean, remaining: number, resetMs: number, retryAfterMs = 0, undo: Verdict["undo"] = null, delayMs = 0): Verdict {
  return { admitted, remaining: Math.max(0, Math.floor(remaining)), resetMs: Math.max(0, resetMs), retryAfterMs: Math.max(0, retryAfterMs), delayMs, undo };
}

export function fixedWindow(limit: number, windowMs: number): Limiter {
  const judge = (count: number, left: number) => verdict(count <= limit, limit - count, left, left);
  return {
    releasesOnComplete: false,
    async check(counters, key, now) {
      const start = now - (now % windowMs);
      const left = start + windowMs - now;
      return judge((await counters.increment(`${key}@${start}`, 1, left, limit)).count, left);
    },
    checkNow(counters, key, now) {
      const start = now - (now % windowMs);
      const left = start + windowMs - now;
      return judge(counters.incrementNow(`${key}@${start}`, 1, left, now).count, left);
    },
  };
}

export function slidingWindowCounter(limit: number, windowMs: number): Limiter {
  /** The decision from the current window's count (this request included) and the previous one's. */
  const judge = (count: number, previous: number, start: number, now: number) => {
    const overlap = 1 - (now - start) / windowMs;
    const estimate = previous * overlap + count;
    const untilEnd = start + windowMs - now;
    if (estimate <= limit) return verdict(true, limit - estimate, untilEnd);
    // Wait until the previous window's weight has fallen enough, or the window ends.
    const excess = estimate - limit + 1;
    const retry = previous > 0 && count - 1 < limit ? Math.min(untilEnd, (excess / previous) * windowMs) : untilEnd;
    return verdict(false, 0, untilEnd, retry);
  };
  return {
    releasesOnComplete: false,
    // The current window's counter also serves as the previous one during the next window;
    // a refused request is taken off again.
    async check(counters, key, now) {
      const start = now - (now % windowMs);
      const ttl = start + 2 * windowMs - now;
      const { count } = await counters.increment(`${key}@${start}`, 1, ttl, limit);
      const result = judge(count, await counters.count(`${key}@${start - windowMs}`), start, now);
      if (!result.admitted) await counters.increment(`${key}@${start}`, -1, ttl);
      return result;
    },
    checkNow(counters, key, now) {
      const start = now - (now % windowMs);
      const ttl = start + 2 * windowMs - now;
      const { count } = counters.incrementNow(`${key}@${start}`, 1, ttl, now);
      const result = judge(count, counters.countNow(`${key}@${start - windowMs}`, now), start, now);
      if (!result.admitted) counters.incrementNow(`${key}@${start}`, -1, ttl, now);
      return result;
    },
  };
}

export function slidingLog(limit: number, windowMs: number): Limiter {
  return {
    releasesOnComplete: false,
    async check(counters, key, now) {
      let soonest = windowMs;
      for (let slot = 0; slot < limit; slot++) {
        const { count, resetMs } = await counters.increment(`${key}#${slot}`, 1, windowMs);
        // A count of 1 means the slot was free (absent or expired) and is now this request's.
        if (count === 1) {
          let free = 0;
          for (let other = slot + 1; other < limit; other++) if ((await counters.count(`${key}#${other}`)) === 0) free++;
          return verdict(true, free, windowMs);
        }
        if (resetMs > 0 && resetMs < soonest) soonest = resetMs;
      }
      void now;
      return verdict(false, 0, soonest, soonest);
    },
  };
}

/** Compare-and-set retries before a bucket gives up (contention on one key). */
const MAX_CAS_ATTEMPTS = 64;

export function tokenBucket(limit: number, windowMs: number, burst: number): Limiter {
  const interval = (windowMs * 1000) / limit; // µs per token
  const tolerance = burst * interval;
  return {
    releasesOnComplete: false,
    async check(counters, key, now) {
      const nowUs = now * 1000;
      for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
        const tat = await counters.readWord(key);
        const next = Math.max(tat, nowUs) + interval;
        const ahead = next - nowUs;
        if (ahead > tolerance) {
          const retryMs = (ahead - tolerance) / 1000;
          return verdict(false, 0, (Math.max(tat, nowUs) - nowUs) / 1000, retryMs);
        }
        const ttl = Math.ceil(ahead / 1000) + 1000;
        if (await counters.compareAndSetWord(key, tat, Math.round(next), ttl)) {
          return verdict(true, (tolerance - ahead) / interval, ahead / 1000);
        }
      }
      return verdict(false, 0, interval / 1000, interval / 1000);
    },
  };
}

export function leakyBucket(limit: number, windowMs: number, maxWaitMs: number): Limiter {
  const interval = (windowMs * 1000) / limit; // µs between two departures
  const maxWaitUs = maxWaitMs * 1000;
  return {
    releasesOnComplete: false,
    async check(counters, key, now) {
      const nowUs = now * 1000;
      for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
        const last = await counters.readWord(key);
        const departure = last === 0 ? nowUs : Math.max(nowUs, last + interval);
        const wait = departure - nowUs;
        if (wait > maxWaitUs) return verdict(false, 0, wait / 1000, (wait - maxWaitUs) / 1000);
        const ttl = Math.ceil((wait + interval) / 1000) + 1000;
        if (await counters.compareAndSetWord(key, last, Math.round(departure), ttl)) {
          return verdict(true, (maxWaitUs - wait) / interval, (wait + interval) / 1000, 0, null, wait / 1000);
        }
      }
      return verdict(false, 0, interval / 1000, interval / 1000);
    },
  };
}

export function calendarQuota(limit: number, period: CalendarPeriod): Limiter {
  const judge = (counters: Counters, durableKey: string, count: number, left: number) =>
    count <= limit ? verdict(true, limit - count, left, 0, () => counters.increment(durableKey, -1, left)) : verdict(false, 0, left, left);
  // A refused request does not use up quota: it is taken off again.
  return {
    releasesOnComplete: false,
    async check(counters, key, now) {
      const { start, end } = period.boundsAt(now);
      const durableKey = `${DURABLE_PREFIX}${key}@${start}`;
      const left = end - now;
      const result = judge(counters, durableKey, (await counters.increment(durableKey, 1, left, limit)).count, left);
      if (!result.admitted) await counters.increment(durableKey, -1, left);
      return result;
    },
    checkNow(counters, key, now) {
      const { start, end } = period.boundsAt(now);
      const durableKey = `${DURABLE_PREFIX}${key}@${start}`;
      const left = end - now;
      const result = judge(counters, durableKey, counters.incrementNow(durableKey, 1, left, now).count, left);
      if (!result.admitted) counters.incrementNow(durableKey, -1, left, now);
      return result;
    },
  };
}

/** Retry-After of a refused concurrent request: in-flight requests end at unknown times. */
const CONCURRENCY_RETRY_MS = 1000;

export function concurrency(limit: number): Limiter {
  const judge = (counters: Counters, key: string, count: number) =>
    count <= limit ? verdict(true, limit - count, 0, 0, () => counters.increment(key, -1, 0)) : verdict(false, 0, 0, CONCURRENCY_RETRY_MS);
  return {
    releasesOnComplete: true,
    async check(counters, key) {
      const result = judge(counters, key, (await counters.increment(key, 1, 0)).count);
      if (!result.admitted) await counters.increment(key, -1, 0);
      return result;
    },
    checkNow(counters, key) {
      const result = judge(counters, key, counters.incrementNow(key, 1, 0).count);
      if (!result.admitted) counters.incrementNow(key, -1, 0);
      return result;
    },
  };
}

/**
 * Window counters on a Hazelcast IMap, exact without Java code on the members.
 *
 * A counter is one entry whose value is `"<count>:<expiresAtMs>"`. An increment is a
 * compare-and-swap: `putIfAbsent` creates the entry (with the window as TTL) or returns
 * the current value, `replaceIfSame` swaps in the new count only if nobody changed it
 * meanwhile, and a lost race retries with the value it lost to. `replaceIfSame` clears the
 * entry's TTL on the member, so the expiry also lives in the value (an entry past it counts
 * as absent) and a `setTtl` sent after each swap lets the member drop it later.
 *
 * Within one process, increments of one key that arrive while a swap is in flight wait
 * and go together in the next swap, each getting its own count (base + running sum), so a
 * hot key costs one swap per round trip per process instead of one per request, and
 * counts stay exact: every count is handed out once across the cluster.
 *
 * Batched mode adds leases: a process that needs a count takes a block of counts in one
 * swap and hands them out locally without a round trip until the block is used up or its
 * window ends. No count is handed out twice, so a limit never admits more than its value;
 * counts taken but not used (at most one block per process) are refused early instead.
 * A block is `floor(share × limit ÷ processes)`, so all blocks together hold at most
 * `share` (1 % by default) of the limit: the limit admits between 99 % and 100 % of its
 * value under load. A key whose block would be one count or less is exact (strict).
 */
import type { WindowCount } from "./types.ts";

/** The member operations counters need; the Hazelcast store passes its IMap through this. */
export interface CounterMap {
  putIfAbsent(key: string, value: string, ttlMs: number): Promise<string | null>;
  replaceIfSame(key: string, oldValue: string, newValue: string): Promise<boolean>;
  setTtl(key: string, ttlMs: number): Promise<unknown>;
  get(key: string): Promise<string | null>;
}

/**
 * The TTL given to the member for an entry that must live at least `ms`: members keep
 * TTLs in whole seconds (a TTL under one second expires the entry at once), so it is
 * rounded up with a second to spare. The expiry in the value decides; this frees memory.
 */
export function memberTtl(ms: number): number {
  return ms > 0 ? Math.ceil(ms / 1000) * 1000 + 1000 : 0;
}

/** Whether a parsed entry still counts at `now` (an expiry of 0 never ends). */
export function isLive(entry: { expiresAt: number } | null, now: number): boolean {
  return entry !== null && (entry.expiresAt === 0 || entry.expiresAt > now);
}

/** Milliseconds left until `expiresAt` (0 when it never expires). */
function left(expiresAt: number, now: number): number {
  return expiresAt === 0 ? 0 : Math.max(0, expiresAt - now);
}

/** Retries of one swap before giving up (each lost race means another process progressed). */
const MAX_ATTEMPTS = 64;

interface Waiter {
  delta: number;
  resolve(count: WindowCount): void;
  reject(error: unknown): void;
}

/** Counts a process may still hand out without asking the member. */
interface Lease {
  next: number;
  last: number;
  expiresAt: number;
}

interface KeyState {
  /** The last value seen on the member (a good guess for the next swap). */
  raw: string | null;
  queue: Waiter[];
  running: boolean;
  lease: Lease | null;
  /** Extra counts the next swap should take for a lease (batched mode). */
  leaseSize: number;
  /** When this process last used the key (idle keys are forgotten by sweep). */
  usedAt: number;
}

/** Local state of a key unused this long is dropped (an unused lease goes with it). */
const IDLE_MS = 60_000;

/** Parses `"<count>:<expiresAt>"`; null for anything else. */
export function parseCounter(raw: string | null): { count: number; expiresAt: number } | null {
  if (raw === null) return null;
  const colon = raw.indexOf(":");
  if (colon < 0) return null;
  const count = Number(raw.slice(0, colon));
  const expiresAt = Number(raw.slice(colon + 1));
  return Number.isFinite(count) && Number.isFinite(expiresAt) ? { count, expiresAt } : null;
}

/** Counters of one store: strict or batched. */
export class Counters {
  readonly #map: CounterMap;
  readonly #batched: boolean;
  readonly #share: number;
  /** How many gateway processes share the cluster (from the store's heartbeats); 0: not known yet. */
  readonly #processes: () => number;
  readonly #keys = new Map<string, KeyState>();
  readonly #now: () => number;

  constructor(map: CounterMap, options: { batched: boolean; share: number; processes: () => number; now?: () => number }) {
    this.#map = map;
    this.#batched = options.batched;
    this.#share = options.share;
    this.#processes = options.processes;
    this.#now = options.now ?? Date.now;
  }

  /** Adds `delta` to `key` (see Store.increment). */
  increment(key: string, delta: number, windowMs: number, limit?: number): Promise<WindowCount> {
    const state = this.#state(key);
    const now = this.#now();
    state.usedAt = now;
    // Only counters that grow within a window are leased; counters without a window
    // (in-flight counts, which go down again) stay exact.
    if (this.#batched && delta > 0 && windowMs > 0) {
      const lease = state.lease;
      if (lease && isLive(lease, now) && lease.next + delta - 1 <= lease.last) {
        const count = lease.next + delta - 1;
        lease.next += delta;
        return Promise.resolve({ count, resetMs: left(lease.expiresAt, now) });
      }
      state.lease = null;
      state.leaseSize = limit !== undefined ? this.#blockSize(limit) : 0;
    }
    return new Promise<WindowCount>((resolve, reject) => {
      state.queue.push({ delta, resolve, reject });
      if (!state.running) void this.#drain(key, state, windowMs);
    });
  }

  /** Current count of `key` on the member (taken but unused leases included). */
  async count(key: string): Promise<number> {
    const parsed = parseCounter(await this.#map.get(key));
    return parsed && isLive(parsed, this.#now()) ? parsed.count : 0;
  }

  /** Forgets what this process knows of `key` (after a delete). */
  forget(key: string): void {
    const state = this.#keys.get(key);
    if (!state) return;
    state.raw = null;
    state.lease = null;
    if (!state.running) this.#keys.delete(key);
  }

  /** Drops local state of counters whose window ended; called now and then by the store. */
  sweep(): void {
    const now = this.#now();
    for (const [key, state] of this.#keys) {
      if (state.running) continue;
      if (!isLive(parseCounter(state.raw), now) || now - state.usedAt > IDLE_MS) this.#keys.delete(key);
    }
  }

  /** Forgets everything (the member went away: its data may be gone too). */
  reset(): void {
    for (const state of this.#keys.values()) {
      state.raw = null;
      state.lease = null;
    }
  }

  #blockSize(limit: number): number {
    const processes = this.#processes();
    if (processes < 1) return 0;
    const size = Math.floor((this.#share * limit) / processes);
    return size > 1 ? size : 0;
  }

  #state(key: string): KeyState {
    let state = this.#keys.get(key);
    if (!state) {
      state = { raw: null, queue: [], running: false, lease: null, leaseSize: 0, usedAt: this.#now() };
      this.#keys.set(key, state);
    }
    return state;
  }

  /** Runs swaps for `key` until no increment waits; each swap serves every waiter present. */
  async #drain(key: string, state: KeyState, windowMs: number): Promise<void> {
    state.running = true;
    try {
      while (state.queue.length > 0) {
        // Increments that queued behind the swap that took a lease are served from it
        // first: a new lease while one is unused would leave counts that nobody hands out.
        this.#serveFromLease(state);
        if (state.queue.length === 0) break;
        const batch = state.queue;
        state.queue = [];
        let total = 0;
        for (const waiter of batch) total += waiter.delta;
        const extra = this.#batched && total > 0 && state.leaseSize > total ? state.leaseSize - total : 0;
        try {
          const { before, after, expiresAt } = await this.#add(key, state, total + extra, windowMs);
          const now = this.#now();
          const resetMs = left(expiresAt, now);
          let running = before;
          for (const waiter of batch) {
            running += waiter.delta;
            waiter.resolve({ count: running, resetMs });
          }
          if (extra > 0) state.lease = { next: running + 1, last: after, expiresAt };
        } catch (error) {
          state.raw = null;
          for (const waiter of batch) waiter.reject(error);
        }
      }
    } finally {
      state.running = false;
    }
  }

  /** Resolves queued increments (in order) from the key's lease while it has counts left. */
  #serveFromLease(state: KeyState): void {
    const lease = state.lease;
    if (!lease) return;
    const now = this.#now();
    if (!isLive(lease, now)) {
      state.lease = null;
      return;
    }
    while (state.queue.length > 0) {
      const waiter = state.queue[0]!;
      if (waiter.delta <= 0 || lease.next + waiter.delta - 1 > lease.last) break;
      state.queue.shift();
      lease.next += waiter.delta;
      waiter.resolve({ count: lease.next - 1, resetMs: left(lease.expiresAt, now) });
    }
    if (lease.next > lease.last) state.lease = null;
  }

  /** One compare-and-swap loop adding `amount`; returns the counts before and after. */
  async #add(key: string, state: KeyState, amount: number, windowMs: number): Promise<{ before: number; after: number; expiresAt: number }> {
    let current = state.raw;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const now = this.#now();
      if (current === null) {
        const expiresAt = windowMs > 0 ? now + windowMs : 0;
        const fresh = `${amount}:${expiresAt}`;
        const existing = await this.#map.putIfAbsent(key, fresh, memberTtl(windowMs));
        if (existing === null) {
          state.raw = fresh;
          return { before: 0, after: amount, expiresAt };
        }
        current = existing;
        continue;
      }
      const parsed = parseCounter(current);
      // An entry past its expiry (or unreadable) starts a new window.
      const live = isLive(parsed, now);
      const before = live ? parsed!.count : 0;
      const expiresAt = live ? parsed!.expiresAt : windowMs > 0 ? now + windowMs : 0;
      const next = `${before + amount}:${expiresAt}`;
      if (await this.#map.replaceIfSame(key, current, next)) {
        state.raw = next;
        // The swap cleared the member's TTL: set it again, one window longer than the
        // value's own expiry, so a late setTtl from an older window can never cut a newer
        // window short (the value's expiry decides; the TTL only frees memory).
        if (expiresAt !== 0) this.#map.setTtl(key, memberTtl(expiresAt - now + windowMs)).catch(() => {});
        return { before, after: before + amount, expiresAt };
      }
      // Lost the race (or the guess was stale): putIfAbsent reads what is there (or
      // creates the entry if it expired meanwhile) in one round trip.
      current = null;
    }
    throw new Error(`counter ${key}: too much contention (${MAX_ATTEMPTS} attempts)`);
  }
}

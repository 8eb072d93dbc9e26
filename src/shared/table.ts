/**
 * A fixed-size hash table of slots in memory shared by processes (see ./index.ts for the
 * API summary). Every slot is 64 bytes:
 *
 *     int32   [0]    state: 0 empty, 1 busy (being claimed or reset), 2 live
 *     int32   [1]    counter value (Atomics.add)
 *     int32   [2..3] 64-bit hash of the key (two 32-bit xxHash32 with different seeds)
 *     float64 [2]    expiry, ms since the epoch (0: never)
 *     int64   [3]    compare-and-set word (Atomics.compareExchange)
 *     int32   [8..15] spare words of a block (`block`), zero when the slot is given to a key
 *
 * The hot path (counters) uses no BigInt: the expiry is a float64 written only while the
 * slot is held busy (or by a successful compare-and-set), read without a lock; aligned
 * 8-byte accesses are single loads and stores on x86-64 and arm64, and the state word's
 * atomic store orders them.
 *
 * Keys are found by linear probing from their hash over at most MAX_PROBES slots. A slot
 * never becomes empty again: a deleted or expired slot stays live (so probe chains stay
 * intact) and is reused by the next key that needs room. A slot is claimed or reset under
 * its state word (compare-and-exchange live → busy), held for a few stores only.
 */

/** Returned when no slot is left within a key's probe range. */
export const FULL = "full" as const;
export type Full = typeof FULL;

/** A counter's value and when it expires (ms since the epoch, 0: never). */
export interface CounterValue {
  value: number;
  expiresAt: number;
}

/** The outcome of `addIfBelow`. */
export interface BoundedAdd extends CounterValue {
  /** True when the add was made (the value stayed within the limit). */
  admitted: boolean;
}

const MAGIC = 0x54504b53; // "TPKS"
const LAYOUT_VERSION = 2;
/** Header words before the first slot (64 bytes). */
const HEADER_WORDS = 16;
const SLOT_WORDS = 16;
const SLOT_BYTES = SLOT_WORDS * 4;
/** Where a slot's spare words start, and how many there are (see `block`). */
const BLOCK_OFFSET = 8;
export const BLOCK_WORDS = SLOT_WORDS - BLOCK_OFFSET;

const EMPTY = 0;
const BUSY = 1;
const LIVE = 2;

/** Slots examined for one key before the table counts as full around it. */
const MAX_PROBES = 64;
/** A slot busy longer than this belongs to a process that died while holding it. */
const STALE_BUSY_MS = 100;
/** Seeds of the two 32-bit hashes that make a key's 64-bit hash. */
const HIGH_SEED = 0x2545f491;
const LOW_SEED = 0x9e3779b9;
/** Bound on compare-and-set retries under contention. */
const MAX_RETRIES = 10_000;

/** Bytes needed for a table of `slots` slots (`slots` is rounded up to a power of two). */
export function tableBytes(slots: number): number {
  return HEADER_WORDS * 4 + roundUpToPowerOfTwo(slots) * SLOT_BYTES;
}

function roundUpToPowerOfTwo(n: number): number {
  let size = 16;
  while (size < n) size *= 2;
  return size;
}

/** The hash table over one shared buffer. Cheap to construct; all state is in the buffer. */
export class SharedTable {
  readonly #words: Int32Array;
  readonly #wide: BigInt64Array;
  readonly #float: Float64Array;
  readonly #mask: number;
  /** Number of slots. */
  readonly slots: number;

  /**
   * Views `buffer` as a table; `initialize` writes the header (the creator does that once,
   * every other process checks it).
   */
  constructor(buffer: ArrayBuffer | SharedArrayBuffer, initialize: boolean) {
    this.#words = new Int32Array(buffer);
    this.#wide = new BigInt64Array(buffer);
    this.#float = new Float64Array(buffer);
    if (initialize) {
      const slots = roundUpToPowerOfTwo(Math.floor((buffer.byteLength - HEADER_WORDS * 4) / SLOT_BYTES));
      if (tableBytes(slots) > buffer.byteLength) throw new Error("shared table: buffer too small");
      this.#words[1] = LAYOUT_VERSION;
      this.#words[2] = slots;
      this.#words[3] = SLOT_WORDS;
      Atomics.store(this.#words, 0, MAGIC);
    } else if (Atomics.load(this.#words, 0) !== MAGIC || this.#words[1] !== LAYOUT_VERSION || this.#words[3] !== SLOT_WORDS) {
      throw new Error("shared table: the shared memory has another layout (a different Turnpike version?)");
    }
    this.slots = this.#words[2]!;
    if (tableBytes(this.slots) > buffer.byteLength) throw new Error("shared table: header names more slots than the memory holds");
    this.#mask = this.slots - 1;
  }

  /**
   * Adds `delta` to the counter `key`, creating it (value 0, expiring `ttlMs` from `now`;
   * 0: never) when absent or expired. The expiry is not extended. Returns the new value.
   */
  add(key: string, delta: number, ttlMs: number, now = Date.now()): CounterValue | Full {
    const base = this.#slotFor(key, ttlMs, now, true);
    if (base < 0) return FULL;
    const value = Atomics.add(this.#words, base + 1, delta) + delta;
    return { value, expiresAt: this.#float[(base >> 1) + 2]! };
  }

  /**
   * Adds `delta` only if the result stays at or below `limit` (for concurrency limits:
   * `addIfBelow(key, 1, max, 0)` to enter, `add(key, -1, 0)` to leave).
   */
  addIfBelow(key: string, delta: number, limit: number, ttlMs: number, now = Date.now()): BoundedAdd | Full {
    const base = this.#slotFor(key, ttlMs, now, true);
    if (base < 0) return FULL;
    const words = this.#words;
    const expiresAt = this.#float[(base >> 1) + 2]!;
    for (let i = 0; i < MAX_RETRIES; i++) {
      const current = Atomics.load(words, base + 1);
      if (current + delta > limit) return { admitted: false, value: current, expiresAt };
      if (Atomics.compareExchange(words, base + 1, current, current + delta) === current) {
        return { admitted: true, value: current + delta, expiresAt };
      }
    }
    return { admitted: false, value: Atomics.load(words, base + 1), expiresAt };
  }

  /** The counter `key`, undefined when absent or expired. */
  read(key: string, now = Date.now()): CounterValue | undefined {
    const base = this.#slotFor(key, 0, now, false);
    if (base < 0) return undefined;
    return { value: Atomics.load(this.#words, base + 1), expiresAt: this.#float[(base >> 1) + 2]! };
  }

  /** The compare-and-set word of `key`: 0 when absent or expired. */
  readWord(key: string, now = Date.now()): number {
    const base = this.#slotFor(key, 0, now, false);
    if (base < 0) return 0;
    return Number(Atomics.load(this.#wide, (base >> 1) + 3));
  }

  /**
   * Sets the word of `key` to `next` if it equals `expected` (an absent or expired key's
   * word is 0); true when this call set it. Words are integers within ±2^53. A successful
   * set with `ttlMs` > 0 moves the key's expiry to `now + ttlMs`.
   */
  compareAndSetWord(key: string, expected: number, next: number, ttlMs: number, now = Date.now()): boolean | Full {
    const base = this.#slotFor(key, ttlMs, now, true);
    if (base < 0) return FULL;
    const index = (base >> 1) + 3;
    const want = BigInt(expected);
    if (Atomics.compareExchange(this.#wide, index, want, BigInt(next)) !== want) return false;
    if (ttlMs > 0) this.#float[(base >> 1) + 2] = now + ttlMs;
    return true;
  }

  /**
   * Raw words for hot paths: the BLOCK_WORDS spare int32 words of `key`'s slot (created,
   * never expiring, all zero when absent), used with Atomics as
   * `words[offset] .. words[offset + BLOCK_WORDS - 1]`. The same key gives the same words
   * in every process. Looked up once (e.g. at config load); each later use costs one
   * atomic operation, no hashing. Null when the table is full around the key.
   */
  block(key: string): { words: Int32Array; offset: number } | null {
    const base = this.#slotFor(key, 0, Date.now(), true);
    return base < 0 ? null : { words: this.#words, offset: base + BLOCK_OFFSET };
  }

  /** Removes `key` (its slot becomes free for reuse). */
  delete(key: string): void {
    const base = this.#slotFor(key, 0, Date.now(), false);
    if (base < 0) return;
    if (!this.#lock(base)) return;
    this.#float[(base >> 1) + 2] = 1;
    Atomics.store(this.#words, base, LIVE);
  }

  /** Slots in use (live and not expired) at `now`; walks the whole table. */
  used(now = Date.now()): number {
    let count = 0;
    for (let slot = 0; slot < this.slots; slot++) {
      const base = HEADER_WORDS + slot * SLOT_WORDS;
      if (Atomics.load(this.#words, base) === EMPTY) continue;
      const expiresAt = this.#float[(base >> 1) + 2]!;
      if (expiresAt === 0 || expiresAt > now) count++;
    }
    return count;
  }

  /**
   * The int32 index of `key`'s slot, or -1 when it is absent (`create` false) or the
   * table is full around it. With `create`, an absent or expired key gets a fresh slot
   * (value and word 0, expiry `now + ttlMs`, 0: never).
   */
  #slotFor(key: string, ttlMs: number, now: number, create: boolean): number {
    const high = Bun.hash.xxHash32(key, HIGH_SEED) | 0;
    const low = Bun.hash.xxHash32(key, LOW_SEED) | 0;
    const start = low & this.#mask;
    const words = this.#words;
    for (let attempt = 0; attempt < 8; attempt++) {
      let reusable = -1;
      let base = -1;
      let empty = -1;
      for (let probe = 0; probe < MAX_PROBES; probe++) {
        const slotBase = HEADER_WORDS + ((start + probe) & this.#mask) * SLOT_WORDS;
        let state = Atomics.load(words, slotBase);
        if (state === BUSY) state = this.#waitWhileBusy(slotBase);
        if (state === EMPTY) {
          empty = slotBase;
          break;
        }
        if (words[slotBase + 2] === high && words[slotBase + 3] === low) {
          base = slotBase;
          break;
        }
        if (reusable < 0 && isExpired(this.#float[(slotBase >> 1) + 2]!, now)) reusable = slotBase;
      }
      if (base >= 0) {
        if (!isExpired(this.#float[(base >> 1) + 2]!, now)) return base;
        if (!create) return -1;
        // Expired: start a new life for the same key.
        if (this.#reset(base, true, high, low, ttlMs, now)) return base;
        continue;
      }
      if (!create) return -1;
      if (reusable >= 0) {
        if (this.#reset(reusable, false, high, low, ttlMs, now)) return reusable;
        continue;
      }
      if (empty >= 0) {
        if (Atomics.compareExchange(words, empty, EMPTY, BUSY) !== EMPTY) continue;
        words[empty + 2] = high;
        words[empty + 3] = low;
        this.#initialize(empty, ttlMs, now);
        return empty;
      }
      return -1;
    }
    return -1;
  }

  /**
   * Locks a live, expired slot and gives it to the key hashed `high`/`low` (a fresh counter
   * and word). With `sameKey`, only if the slot still belongs to that key. False when someone
   * else got there first (the caller looks again).
   */
  #reset(base: number, sameKey: boolean, high: number, low: number, ttlMs: number, now: number): boolean {
    if (!this.#lock(base)) return false;
    const words = this.#words;
    const stillExpired = isExpired(this.#float[(base >> 1) + 2]!, now);
    const stillOwned = !sameKey || (words[base + 2] === high && words[base + 3] === low);
    if (!stillExpired || !stillOwned) {
      Atomics.store(words, base, LIVE);
      return false;
    }
    words[base + 2] = high;
    words[base + 3] = low;
    this.#initialize(base, ttlMs, now);
    return true;
  }

  /** Fills a slot held busy by this process and publishes it live. */
  #initialize(base: number, ttlMs: number, now: number): void {
    for (let i = BLOCK_OFFSET; i < SLOT_WORDS; i++) Atomics.store(this.#words, base + i, 0);
    Atomics.store(this.#words, base + 1, 0);
    Atomics.store(this.#wide, (base >> 1) + 3, 0n);
    this.#float[(base >> 1) + 2] = ttlMs > 0 ? now + ttlMs : 0;
    Atomics.store(this.#words, base, LIVE);
  }

  /** Takes a live slot's lock (live → busy); false if it is not live. */
  #lock(base: number): boolean {
    for (let i = 0; i < MAX_RETRIES; i++) {
      const state = Atomics.compareExchange(this.#words, base, LIVE, BUSY);
      if (state === LIVE) return true;
      if (state === EMPTY) return false;
      this.#waitWhileBusy(base);
    }
    return false;
  }

  /**
   * Spins until a busy slot is released. A slot busy for longer than STALE_BUSY_MS was
   * left by a process that died holding it: it is released as expired.
   */
  #waitWhileBusy(base: number): number {
    const words = this.#words;
    let deadline = 0;
    for (let i = 1; ; i++) {
      const state = Atomics.load(words, base);
      if (state !== BUSY) return state;
      if ((i & 1023) !== 0) continue;
      const now = performance.now();
      if (deadline === 0) deadline = now + STALE_BUSY_MS;
      else if (now > deadline) {
        this.#float[(base >> 1) + 2] = 1;
        Atomics.compareExchange(words, base, BUSY, LIVE);
      }
    }
  }
}

function isExpired(expiresAt: number, now: number): boolean {
  return expiresAt !== 0 && expiresAt <= now;
}

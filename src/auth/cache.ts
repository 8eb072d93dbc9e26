/**
 * A bounded in-memory cache with a lifetime per entry, for verified credentials
 * (keyed by a hash of the credential, never the credential itself). When full, the
 * oldest inserted entry goes first; expired entries are dropped when met.
 */

/** A cache of at most `capacity` entries; times in milliseconds from `now()`. */
export class ExpiringCache<V> {
  readonly #entries = new Map<string, { value: V; expiresAt: number }>();

  constructor(
    readonly capacity: number,
    readonly now: () => number = Date.now,
  ) {}

  /** The value for `key` if present and not expired. */
  get(key: string): V | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  /** Stores `value` until `expiresAt` (ms, same clock as `now`); ignored when already expired. */
  set(key: string, value: V, expiresAt: number): void {
    if (this.capacity <= 0 || expiresAt <= this.now()) return;
    this.#entries.delete(key);
    if (this.#entries.size >= this.capacity) {
      // Map keeps insertion order: the first key is the oldest entry.
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    this.#entries.set(key, { value, expiresAt });
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  get size(): number {
    return this.#entries.size;
  }

  clear(): void {
    this.#entries.clear();
  }
}

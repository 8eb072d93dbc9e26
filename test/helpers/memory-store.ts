/**
 * Test helper: a Store kept in the memory of one process, for unit tests of policies. Expired entries are dropped when read and
 * swept when the map grows past `sweepAt` entries, so memory stays bounded by live keys.
 */
import type { Store, Subscriber, WindowCount } from "../../src/store/types.ts";

interface Entry {
  value: string;
  /** Milliseconds since the epoch when the entry expires; Infinity: never. */
  expiresAt: number;
}

/** A process-local Store. `now` returns milliseconds (replaceable in tests). */
export class MemoryStore implements Store {
  readonly kind = "memory";
  readonly available = true;
  readonly #entries = new Map<string, Entry>();
  readonly #channels = new Map<string, Set<Subscriber>>();
  readonly #now: () => number;
  #sweepAt: number;

  constructor(now: () => number = Date.now, sweepAt = 10_000) {
    this.#now = now;
    this.#sweepAt = sweepAt;
  }

  #live(key: string): Entry | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= this.#now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry;
  }

  #put(key: string, value: string, ttlMs: number): void {
    this.#entries.set(key, { value, expiresAt: ttlMs > 0 ? this.#now() + ttlMs : Infinity });
    if (this.#entries.size >= this.#sweepAt) {
      const now = this.#now();
      for (const [k, entry] of this.#entries) if (entry.expiresAt <= now) this.#entries.delete(k);
      // Keep sweeps rare when most entries are alive.
      this.#sweepAt = Math.max(this.#sweepAt, this.#entries.size * 2);
    }
  }

  async increment(key: string, delta: number, windowMs: number): Promise<WindowCount> {
    const entry = this.#live(key);
    if (entry === undefined) {
      this.#put(key, String(delta), windowMs);
      return { count: delta, resetMs: windowMs };
    }
    const count = Number(entry.value) + delta;
    entry.value = String(count);
    return { count, resetMs: entry.expiresAt === Infinity ? 0 : Math.max(0, entry.expiresAt - this.#now()) };
  }

  async count(key: string): Promise<number> {
    const entry = this.#live(key);
    return entry === undefined ? 0 : Number(entry.value) || 0;
  }

  async get(key: string): Promise<string | undefined> {
    return this.#live(key)?.value;
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    this.#put(key, value, ttlMs);
  }

  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    if (this.#live(key) !== undefined) return false;
    this.#put(key, value, ttlMs);
    return true;
  }

  async readWord(key: string): Promise<number> {
    return Number(this.#live(`word:${key}`)?.value ?? 0);
  }

  async compareAndSetWord(key: string, expected: number, next: number, ttlMs: number): Promise<boolean> {
    if ((await this.readWord(key)) !== expected) return false;
    this.#put(`word:${key}`, String(next), ttlMs);
    return true;
  }

  async delete(key: string): Promise<void> {
    this.#entries.delete(`word:${key}`);
    this.#entries.delete(key);
  }

  async publish(channel: string, message: string): Promise<void> {
    for (const subscriber of this.#channels.get(channel) ?? []) subscriber(message);
  }

  subscribe(channel: string, subscriber: Subscriber): () => void {
    let set = this.#channels.get(channel);
    if (!set) this.#channels.set(channel, (set = new Set()));
    set.add(subscriber);
    return () => set!.delete(subscriber);
  }

  async close(): Promise<void> {
    this.#entries.clear();
    this.#channels.clear();
  }
}

/**
 * Counters private to this worker process: what a limit set to fail open counts with
 * while the store cannot serve (its `fallback_requests` then apply per worker).
 */
import { FULL, privateTable, type SharedTable } from "../../shared/index.ts";
import { StoreUnavailableError, type WindowCount } from "../../store/types.ts";
import type { SyncCounters } from "./algorithms.ts";

export class LocalCounters implements SyncCounters {
  readonly #table: SharedTable;

  constructor(slots = 16_384) {
    this.#table = privateTable(slots);
  }

  async increment(key: string, delta: number, windowMs: number): Promise<WindowCount> {
    return this.incrementNow(key, delta, windowMs);
  }

  incrementNow(key: string, delta: number, windowMs: number, now = Date.now()): WindowCount {
    const result = this.#table.add(key, delta, windowMs, now);
    if (result === FULL) throw new StoreUnavailableError("local fallback counters are full");
    return { count: result.value, resetMs: result.expiresAt === 0 ? 0 : result.expiresAt - now };
  }

  async count(key: string): Promise<number> {
    return this.countNow(key);
  }

  countNow(key: string, now = Date.now()): number {
    return this.#table.read(key, now)?.value ?? 0;
  }

  async readWord(key: string): Promise<number> {
    return this.#table.readWord(key);
  }

  async compareAndSetWord(key: string, expected: number, next: number, ttlMs: number): Promise<boolean> {
    const result = this.#table.compareAndSetWord(key, expected, next, ttlMs);
    if (result === FULL) throw new StoreUnavailableError("local fallback counters are full");
    return result;
  }
}

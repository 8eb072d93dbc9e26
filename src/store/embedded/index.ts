/**
 * The embedded store: shared state for the worker processes of one node, with nothing to
 * run beside the gateway.
 *
 * - counters and words live in node shared memory (src/shared): exact across workers,
 *   well under a microsecond per operation, lost when the gateway stops;
 * - counters and words whose key starts with `durable/` (quotas) are also written to the
 *   state file every `flush_interval` and restored into memory when the gateway starts:
 *   a restart loses at most the increments of the last interval;
 * - values (with ttl and set-if-absent) live in the state file (SQLite), so they survive
 *   restarts;
 * - publish/subscribe goes through the supervisor to every worker (./bus.ts).
 */
import { isAbsolute, resolve } from "node:path";
import { durationSchema, parseDuration } from "../../core/units.ts";
import { FULL, nodeTable, type SharedTable } from "../../shared/index.ts";
import { DURABLE_PREFIX, StoreUnavailableError, type Store, type Subscriber, type WindowCount } from "../types.ts";
import { publishOnBus, subscribeOnBus } from "./bus.ts";
import { StateFile, type DurableEntry } from "./state-file.ts";

/** `store.embedded` as written in the config. */
export interface EmbeddedStoreConfig {
  state_dir?: string;
  flush_interval?: string | number;
  memory_slots?: number;
}

/** The embedded store's settings after compilation. */
export interface EmbeddedStoreSettings {
  /** Absolute path of the state directory. */
  stateDir: string;
  /** ms between two writes of durable counters. */
  flushIntervalMs: number;
  /** Slots of node shared memory (read when the gateway starts). */
  memorySlots: number;
}

/** Default state directory, relative to the config file's folder. */
export const DEFAULT_STATE_DIR = "turnpike-state";

export const embeddedStoreSchema = {
  type: "object",
  additionalProperties: false,
  description: "The embedded store (one node): counters in shared memory, durable state in a file.",
  properties: {
    state_dir: { type: "string", minLength: 1, description: `Folder of the state file (quotas, values), relative to the config file; default ${DEFAULT_STATE_DIR}.` },
    flush_interval: { ...durationSchema, description: "How often durable counters (quotas) are written to the state file; default 1s." },
    memory_slots: { type: "integer", minimum: 1024, maximum: 16_777_216, description: "Keys node shared memory holds at once (64 bytes each); default 65536; read at start." },
  },
} as const;

/** Compiles `store.embedded`; `baseDir` is the config file's folder. */
export function compileEmbeddedSettings(config: EmbeddedStoreConfig | undefined, baseDir: string): EmbeddedStoreSettings {
  const dir = config?.state_dir ?? DEFAULT_STATE_DIR;
  return {
    stateDir: isAbsolute(dir) ? dir : resolve(baseDir, dir),
    flushIntervalMs: Math.max(10, parseDuration(config?.flush_interval ?? "1s")),
    memorySlots: config?.memory_slots ?? 65_536,
  };
}

/** The embedded Store. Several instances in one process share the same memory and file. */
export class EmbeddedStore implements Store {
  readonly kind = "embedded";
  readonly available = true;
  readonly #table: SharedTable;
  readonly #file: StateFile;
  /** Durable keys changed since the last flush. */
  readonly #dirty = new Set<string>();
  readonly #unsubscribers = new Set<() => void>();
  #timer: ReturnType<typeof setInterval> | null = null;
  #closed = false;

  constructor(readonly settings: EmbeddedStoreSettings, table: SharedTable = nodeTable()) {
    this.#table = table;
    this.#file = new StateFile(settings.stateDir);
  }

  async increment(key: string, delta: number, windowMs: number): Promise<WindowCount> {
    return this.incrementNow(key, delta, windowMs);
  }

  /** `increment`, answered synchronously (node memory needs no wait); for hot paths. */
  incrementNow(key: string, delta: number, windowMs: number, now = Date.now()): WindowCount {
    const result = this.#table.add(key, delta, windowMs, now);
    if (result === FULL) throw new StoreUnavailableError("node shared memory is full (raise store.embedded.memory_slots)");
    if (key.startsWith(DURABLE_PREFIX)) this.#markDirty(key);
    return { count: result.value, resetMs: result.expiresAt === 0 ? 0 : Math.max(0, result.expiresAt - now) };
  }

  async count(key: string): Promise<number> {
    return this.countNow(key);
  }

  /** `count`, answered synchronously. */
  countNow(key: string, now = Date.now()): number {
    return this.#table.read(key, now)?.value ?? 0;
  }

  async readWord(key: string): Promise<number> {
    return this.#table.readWord(key);
  }

  async compareAndSetWord(key: string, expected: number, next: number, ttlMs: number): Promise<boolean> {
    const result = this.#table.compareAndSetWord(key, expected, next, ttlMs);
    if (result === FULL) throw new StoreUnavailableError("node shared memory is full (raise store.embedded.memory_slots)");
    if (result && key.startsWith(DURABLE_PREFIX)) this.#markDirty(key);
    return result;
  }

  async get(key: string): Promise<string | undefined> {
    return this.#file.get(key, Date.now());
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    this.#file.set(key, value, ttlMs > 0 ? Date.now() + ttlMs : 0);
  }

  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    return this.#file.setIfAbsent(key, value, ttlMs > 0 ? now + ttlMs : 0, now);
  }

  async delete(key: string): Promise<void> {
    this.#table.delete(key);
    this.#dirty.delete(key);
    this.#file.delete(key);
  }

  async publish(channel: string, message: string): Promise<void> {
    publishOnBus(channel, message);
  }

  subscribe(channel: string, subscriber: Subscriber): () => void {
    const stop = subscribeOnBus(channel, subscriber);
    const unsubscribe = () => {
      stop();
      this.#unsubscribers.delete(unsubscribe);
    };
    this.#unsubscribers.add(unsubscribe);
    return unsubscribe;
  }

  /** Writes the durable counters changed since the last write (also on close). */
  flush(): void {
    if (this.#dirty.size === 0) return;
    const now = Date.now();
    const entries: DurableEntry[] = [];
    for (const key of this.#dirty) {
      const counter = this.#table.read(key, now);
      if (!counter) continue;
      entries.push({ key, value: counter.value, word: this.#table.readWord(key, now), expiresAt: counter.expiresAt });
    }
    this.#file.save(entries, now);
    this.#dirty.clear();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    for (const unsubscribe of [...this.#unsubscribers]) unsubscribe();
    try {
      this.flush();
    } finally {
      this.#file.close();
    }
  }

  #markDirty(key: string): void {
    this.#dirty.add(key);
    if (this.#timer || this.#closed) return;
    this.#timer = setInterval(() => {
      try {
        this.flush();
      } catch {
        // A busy or unwritable file: the keys are written at the next interval or on close.
      }
    }, this.settings.flushIntervalMs);
    this.#timer.unref?.();
  }
}

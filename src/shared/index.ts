/**
 * Node-wide shared memory: counters and compare-and-set words that every worker process
 * of one node sees at once, at the cost of a few atomic operations (no IPC, no syscall).
 * Use it for state that must agree across workers: in-flight counts, concurrency limits,
 * circuit-breaker and health state, rate-limit counters.
 *
 * How it works: the supervisor creates a file in /dev/shm (`createNodeMemory`, before it
 * starts workers; removed on shutdown) and names it in the environment; each worker maps
 * it with libc `mmap(MAP_SHARED)` through bun:ffi (`nodeTable()`). The memory outlives
 * worker restarts and reloads; it is lost when the gateway stops (durable state belongs in
 * the store). A process started without a supervisor (unit tests) gets a private table.
 *
 * API (`nodeTable()` returns a `SharedTable`; keys are any strings; times in ms since the
 * epoch; every call is synchronous and atomic across processes):
 *
 *     const table = nodeTable();
 *     // Counter with expiry: created at 0 when absent/expired, expiry fixed at creation.
 *     table.add("rl:/api:10.0.0.1", 1, 60_000)        // → { value, expiresAt } | FULL
 *     table.read("rl:/api:10.0.0.1")                  // → { value, expiresAt } | undefined
 *     // Bounded counter (concurrency limit): add only if the result stays ≤ limit.
 *     table.addIfBelow("inflight:orders", 1, 100, 0)  // → { admitted, value, expiresAt } | FULL
 *     table.add("inflight:orders", -1, 0)             // leave
 *     // Compare-and-set word (integer within ±2^53), 0 when absent; ttl 0: never expires.
 *     table.readWord("breaker:orders")                // → number
 *     table.compareAndSetWord("breaker:orders", 0, 2, 0) // → true | false | FULL
 *     table.delete("breaker:orders")
 *     // Raw block of BLOCK_WORDS int32 words for hot paths (looked up once, then Atomics).
 *     const { words, offset } = table.block("upstream:api:target:http://10.0.0.5")!
 *
 * Limits: the table has a fixed number of slots (`DEFAULT_SLOTS`, 64 bytes each). A key
 * looks at most 64 slots from its hash; when all are live and unexpired the call returns
 * `FULL` and nothing is stored: callers choose what that means (fail open or closed).
 * Keys are told apart by a 64-bit hash only. Slots of expired or deleted keys are reused.
 * A counter that a crashed worker had incremented (an in-flight count) is not decremented
 * for it: give such counters a ttl, or key them by something that ends.
 */
import { statSync } from "node:fs";
import { dirname } from "node:path";
import { createSharedFile, defaultSharedPath, mapSharedFile, removeSharedFile, removeStaleSharedFiles, SHARED_MEMORY_ENV } from "./memory.ts";
import { SharedTable, tableBytes } from "./table.ts";

export { BLOCK_WORDS, FULL, SharedTable, type BoundedAdd, type CounterValue, type Full } from "./table.ts";

/** Slots of the node table: 65,536 × 64 bytes = 4 MiB (pages are used as they are touched). */
export const DEFAULT_SLOTS = 65_536;

/** The shared memory a supervisor created for its workers. */
export interface NodeMemory {
  path: string;
  table: SharedTable;
  /** Removes the file (call on shutdown). */
  remove(): void;
}

let current: SharedTable | null = null;

/**
 * Creates the node's shared memory (supervisor, before starting workers), and names it in
 * `process.env` so that workers spawned with this environment, and `nodeTable()` in this
 * process, map the same memory.
 */
export function createNodeMemory(slots = DEFAULT_SLOTS, path = defaultSharedPath()): NodeMemory {
  // Files of supervisors that were killed (SIGKILL, a crash) would pile up in /dev/shm.
  removeStaleSharedFiles(dirname(path));
  const buffer = createSharedFile(path, tableBytes(slots));
  const table = new SharedTable(buffer, true);
  process.env[SHARED_MEMORY_ENV] = path;
  current = table;
  return { path, table, remove: () => removeSharedFile(path) };
}

/**
 * The node-wide table of this process: the supervisor's shared memory when this process
 * was started with one (`TURNPIKE_SHARED_MEMORY`), otherwise a private in-process table.
 */
export function nodeTable(): SharedTable {
  if (current) return current;
  const path = process.env[SHARED_MEMORY_ENV];
  if (path) {
    const buffer = mapSharedFile(path, statSync(path).size);
    current = new SharedTable(buffer, false);
  } else {
    current = new SharedTable(new SharedArrayBuffer(tableBytes(DEFAULT_SLOTS)), true);
  }
  return current;
}

/** Maps an existing shared memory file (e.g. in a test that plays the worker). */
export function openSharedTable(path: string): SharedTable {
  return new SharedTable(mapSharedFile(path, statSync(path).size), false);
}

/** A private table of `slots` slots, for tests. */
export function privateTable(slots = 1024): SharedTable {
  return new SharedTable(new SharedArrayBuffer(tableBytes(slots)), true);
}

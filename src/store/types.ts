/**
 * Shared state: the one interface both stores implement. The embedded store is shared by
 * every worker process of one node; the Hazelcast store by every node of a cluster.
 * Limits, quotas, nonces and health/breaker state reach shared state only through this.
 *
 * Durability: counters and words whose key starts with `DURABLE_PREFIX` must survive a
 * restart of the gateway (quotas). The embedded store keeps other counters and words in
 * node memory, lost on restart; a store whose state outlives the gateway (Hazelcast)
 * treats every key alike.
 */

/** Keys starting with this survive a gateway restart (see above), e.g. `durable/quota/...`. */
export const DURABLE_PREFIX = "durable/";

/** Result of an increment within a window. */
export interface WindowCount {
  /** Count in the window after this increment. */
  count: number;
  /** Milliseconds until the window's counter expires (0 when unknown). */
  resetMs: number;
}

/** A message received on a channel. */
export type Subscriber = (message: string) => void;

export interface Store {
  /** `embedded` or `hazelcast`, for logs and metrics. */
  readonly kind: string;

  /**
   * Adds `delta` to the counter `key`, creating it with expiry `windowMs` when absent
   * (the expiry is not extended by later increments; 0: never expires), and returns the
   * new count. Atomic across every process sharing the store. Counters, words and values
   * are kept apart by callers: give each its own keys.
   *
   * `limit` (optional) is the count above which the caller refuses. A store that batches
   * (the Hazelcast store in `batched` mode) uses it to size what a process may take ahead
   * of time; a store that does not batch ignores it. Without it every increment is exact.
   */
  increment(key: string, delta: number, windowMs: number, limit?: number): Promise<WindowCount>;

  /** Current value of a counter, 0 when absent or expired. */
  count(key: string): Promise<number>;

  /** Reads a value, undefined when absent or expired. */
  get(key: string): Promise<string | undefined>;

  /** Writes a value that expires after `ttlMs` (0: never). */
  set(key: string, value: string, ttlMs: number): Promise<void>;

  /**
   * Writes a value only when `key` is absent; true when this call wrote it. Used for
   * nonces (anti-replay) and leader election: exactly one caller across all processes wins.
   */
  setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean>;

  /**
   * Reads the integer word `key` (0 when absent or expired). Words hold integers within
   * ±2^53, e.g. a time in microseconds (token and leaky buckets keep one per key).
   */
  readWord(key: string): Promise<number>;

  /**
   * Sets the word `key` to `next` if it currently equals `expected` (an absent or expired
   * word equals 0) and returns true; false when another writer changed it first. With
   * `ttlMs` > 0 a successful set makes the word expire `ttlMs` from now (0: never).
   * Atomic across every process sharing the store.
   */
  compareAndSetWord(key: string, expected: number, next: number, ttlMs: number): Promise<boolean>;

  /** Removes a key (counter, word or value). */
  delete(key: string): Promise<void>;

  /** Delivers `message` to every subscriber of `channel` in every process (including this one). */
  publish(channel: string, message: string): Promise<void>;

  /** Subscribes to a channel; returns a function that unsubscribes. */
  subscribe(channel: string, subscriber: Subscriber): () => void;

  /** True while the store can serve (the embedded store always; Hazelcast when connected). */
  readonly available: boolean;

  /** Releases connections, timers and files. */
  close(): Promise<void>;
}

/**
 * Thrown by a store operation that cannot be served (no connection, no room left in
 * memory). Callers decide what that means for the request (fail open or closed).
 */
export class StoreUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StoreUnavailableError";
  }
}

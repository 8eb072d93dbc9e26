/**
 * Shared state: the one interface both stores implement. The embedded store is shared by
 * every worker process of one node; the Hazelcast store by every node of a cluster.
 * Limits, quotas, nonces and health/breaker state reach shared state only through this.
 */

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
   * (the expiry is not extended by later increments), and returns the new count.
   * Atomic across every process sharing the store.
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

  /** Removes a key (counter or value). */
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

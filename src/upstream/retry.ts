/**
 * Retry settings, the retry budget and the backoff between attempts.
 */

/** Compiled `retries` settings of an upstream. */
export interface RetrySettings {
  /** Retries after the first attempt (so at most attempts + 1 calls). */
  attempts: number;
  /** Methods that may be retried (upper case). */
  methods: ReadonlySet<string>;
  /** Upstream statuses that are retried. */
  statuses: ReadonlySet<number>;
  onConnectFailure: boolean;
  onReset: boolean;
  onTimeout: boolean;
  /** First backoff and its cap, in ms; the wait before retry n is random in [0, min(max, base × 2^n)]. */
  backoffMs: number;
  maxBackoffMs: number;
  /** Retries may be at most this share of requests (within RETRY_BUDGET_WINDOW_MS)... */
  budgetRatio: number;
  /** ...but this many per second are always allowed. */
  budgetMinPerSecond: number;
  /** Request bodies up to this size (bytes) are kept so they can be sent again; 0: requests with a body are not retried. */
  bufferBody: number;
}

/** The span over which the retry budget compares retries with requests, in ms. */
export const RETRY_BUDGET_WINDOW_MS = 10_000;

/**
 * The retry budget of one upstream in one worker process: retries may not exceed
 * `ratio` of the requests of the last 10 to 20 seconds (two windows, the previous one
 * counting in full), plus a small floor so that a quiet upstream can still retry.
 * Each worker keeps its own budget, so the node as a whole keeps the same ratio.
 */
export class RetryBudget {
  #windowStart = 0;
  #requests = 0;
  #retries = 0;
  #previousRequests = 0;
  #previousRetries = 0;

  constructor(
    private readonly ratio: number,
    private readonly minPerSecond: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Counts a request (its first attempt). */
  request(): void {
    this.#roll();
    this.#requests++;
  }

  /** True (and counted) when one more retry fits the budget. */
  tryRetry(): boolean {
    this.#roll();
    const requests = this.#requests + this.#previousRequests;
    const retries = this.#retries + this.#previousRetries;
    const allowed = Math.max(this.ratio * requests, (this.minPerSecond * RETRY_BUDGET_WINDOW_MS) / 1000);
    if (retries + 1 > allowed) return false;
    this.#retries++;
    return true;
  }

  #roll(): void {
    const now = this.now();
    if (now - this.#windowStart < RETRY_BUDGET_WINDOW_MS) return;
    const skipped = now - this.#windowStart >= 2 * RETRY_BUDGET_WINDOW_MS;
    this.#previousRequests = skipped ? 0 : this.#requests;
    this.#previousRetries = skipped ? 0 : this.#retries;
    this.#requests = 0;
    this.#retries = 0;
    this.#windowStart = now;
  }
}

/** Milliseconds to wait before retry number `retry` (0-based): full jitter under an exponential cap. */
export function backoffDelay(settings: RetrySettings, retry: number, random: () => number = Math.random): number {
  const cap = Math.min(settings.maxBackoffMs, settings.backoffMs * 2 ** Math.min(retry, 30));
  return Math.floor(random() * cap);
}

/** Methods that are safe to repeat (RFC 9110 §9.2.2). */
export const IDEMPOTENT_METHODS = ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"];

/**
 * Concurrency limits: at most `max` requests in flight on a route or an upstream, an
 * optional FIFO queue of bounded length where requests wait up to a timeout for a
 * slot, then a fast 503 with Retry-After.
 *
 * A request holds its slot until its response body has been sent (or the client went
 * away), so long downloads and server-sent events count for as long as they stream.
 *
 * The slot count lives behind `SlotCounter`. `nodeSlots` counts for the whole node: a
 * counter in the node's shared memory that every worker process updates atomically, so
 * `max: 20` means 20 across all workers. Releases then happen in other processes too,
 * so a limiter over it polls for a free slot while requests wait in its queue. Each
 * worker also counts its own holds there, so that when a worker dies with requests in
 * flight the supervisor gives their slots back (`reclaim`). `localSlots` counts for one
 * process (unit tests, and the fallback when the shared table is full).
 */
import type { Exchange } from "../core/exchange.ts";
import { problem } from "../core/problem.ts";
import { nodeTable, type SharedTable } from "../shared/index.ts";

/** `concurrency` as written in config (on a route or an upstream). */
export interface ConcurrencyConfig {
  /** Most requests in flight at once. */
  max: number;
  /** Requests that may wait for a slot, and how long each may wait. */
  queue?: { size: number; timeout?: number | string };
  /** Value of the Retry-After header of the 503 (default 1s). */
  retry_after?: number | string;
}

/** A counter of slots in use, bounded by a maximum. */
export interface SlotCounter {
  /** Takes a slot if one is free. */
  tryAcquire(): boolean;
  /** Gives a slot back. */
  release(): void;
  /** Slots in use now. */
  readonly inUse: number;
  /** True when releases may happen in other processes (the limiter then polls). */
  readonly shared: boolean;
  /** Gives back the slots a dead process (by pid) still held; node-wide counters only. */
  reclaim?(pid: number): void;
}

/**
 * Slots counted node-wide under `key` in the node's shared memory (mapped on first use):
 * one word of a shared block holds the total, and each process counts its own holds in
 * a block of its own, so that `reclaim` can give back those of a process that died. Each
 * take or give-back is a few atomic operations, no hashing. If the shared table has no
 * room for the key, the count falls back to this process.
 */
export function nodeSlots(key: string, max: number, table: () => SharedTable = nodeTable): SlotCounter {
  const totalKey = `concurrency\n${key}`;
  const ownKeyOf = (pid: number) => `concurrency\n${key}\npid:${pid}`;
  let total: { words: Int32Array; offset: number } | null = null;
  let own: { words: Int32Array; offset: number } | null = null;
  let fallback: SlotCounter | null = null;
  /** Maps the blocks on first use; false when the table is full (then `fallback` counts). */
  const ready = (): boolean => {
    if (total && own) return true;
    if (fallback) return false;
    const shared = table();
    total = shared.block(totalKey);
    own = shared.block(ownKeyOf(process.pid));
    if (total && own) return true;
    fallback = localSlots(max);
    return false;
  };
  return {
    tryAcquire() {
      if (!ready()) return fallback!.tryAcquire();
      const { words, offset } = total!;
      for (;;) {
        const inUse = Atomics.load(words, offset);
        if (inUse >= max) return false;
        if (Atomics.compareExchange(words, offset, inUse, inUse + 1) === inUse) break;
      }
      Atomics.add(own!.words, own!.offset, 1);
      return true;
    },
    release() {
      if (!ready()) return fallback!.release();
      Atomics.sub(total!.words, total!.offset, 1);
      Atomics.sub(own!.words, own!.offset, 1);
    },
    get inUse() {
      return ready() ? Atomics.load(total!.words, total!.offset) : fallback!.inUse;
    },
    shared: true,
    reclaim(pid) {
      if (!ready()) return;
      const dead = table().block(ownKeyOf(pid));
      if (!dead) return;
      const held = Atomics.exchange(dead.words, dead.offset, 0);
      if (held > 0) Atomics.sub(total!.words, total!.offset, held);
      table().delete(ownKeyOf(pid));
    },
  };
}

/** Slots counted in this process only. */
export function localSlots(max: number): SlotCounter {
  let inUse = 0;
  return {
    tryAcquire() {
      if (inUse >= max) return false;
      inUse++;
      return true;
    },
    release() {
      if (inUse > 0) inUse--;
    },
    get inUse() {
      return inUse;
    },
    shared: false,
  };
}

/** How often waiting requests look for a slot freed by another process, in ms. */
const SHARED_POLL_MS = 5;

interface Waiter {
  resolve(granted: boolean): void;
  timer: ReturnType<typeof setTimeout> | null;
  /** Set once answered (granted, timed out, or the client left). */
  done: boolean;
  onAbort: (() => void) | null;
  signal: AbortSignal | null;
}

/** Settings of a limiter, compiled from `ConcurrencyConfig`. */
export interface ConcurrencyOptions {
  /** What is limited, for the 503 detail and the shared key: `route "api"` or `upstream "orders"`. */
  scope: string;
  max: number;
  queueSize: number;
  /** Longest wait in the queue, in ms (0: until a slot frees). */
  queueTimeoutMs: number;
  /** Retry-After of the 503, in whole seconds. */
  retryAfterSeconds: number;
}

/** One limit (a route's or an upstream's) with its queue. */
export class ConcurrencyLimiter {
  readonly #waiters: Waiter[] = [];
  /** Index of the first live entry of `#waiters` (a queue without O(n) shifts). */
  #head = 0;
  #poll: ReturnType<typeof setInterval> | null = null;

  constructor(readonly options: ConcurrencyOptions, readonly slots: SlotCounter = nodeSlots(options.scope, options.max)) {}

  /** Requests waiting in this process. */
  get queued(): number {
    return this.#waiters.length - this.#head;
  }

  /**
   * Takes a slot: `true` at once when one is free, otherwise a promise that settles
   * `true` when a slot is handed over, or `false` when the queue is full, the wait
   * timed out, or `signal` (the client) aborted.
   */
  acquire(signal: AbortSignal | null): boolean | Promise<boolean> {
    if (this.queued === 0 && this.slots.tryAcquire()) return true;
    if (this.queued >= this.options.queueSize) return false;
    if (signal?.aborted) return false;
    return new Promise<boolean>((resolve) => {
      const waiter: Waiter = { resolve, timer: null, done: false, onAbort: null, signal };
      if (this.options.queueTimeoutMs > 0) {
        waiter.timer = setTimeout(() => this.#settle(waiter, false), this.options.queueTimeoutMs);
      }
      if (signal) {
        waiter.onAbort = () => this.#settle(waiter, false);
        signal.addEventListener("abort", waiter.onAbort, { once: true });
      }
      this.#waiters.push(waiter);
      if (this.slots.shared && this.#poll === null) this.#poll = setInterval(() => this.#handOver(), SHARED_POLL_MS);
    });
  }

  /** Gives a slot back and lets the longest-waiting request have it. */
  release(): void {
    this.slots.release();
    this.#handOver();
  }

  /** The 503 a refused request gets. */
  refusal(exchange: Exchange): Response {
    const { scope, max, queueSize } = this.options;
    const queue = queueSize > 0 ? ` and ${queueSize} waiting` : "";
    return problem({
      status: 503,
      kind: "concurrency-limit",
      detail: `Too many requests in flight on ${scope} (limit ${max}${queue}); retry later.`,
      requestId: exchange.requestId,
      headers: { "retry-after": String(this.options.retryAfterSeconds) },
    });
  }

  #handOver(): void {
    while (this.queued > 0) {
      const waiter = this.#waiters[this.#head]!;
      if (waiter.done) {
        this.#dequeue();
        continue;
      }
      if (!this.slots.tryAcquire()) return;
      this.#dequeue();
      this.#settle(waiter, true);
    }
  }

  #dequeue(): void {
    this.#head++;
    if (this.#head === this.#waiters.length) {
      this.#waiters.length = 0;
      this.#head = 0;
      if (this.#poll !== null) {
        clearInterval(this.#poll);
        this.#poll = null;
      }
    } else if (this.#head > 1024 && this.#head * 2 > this.#waiters.length) {
      this.#waiters.splice(0, this.#head);
      this.#head = 0;
    }
  }

  #settle(waiter: Waiter, granted: boolean): void {
    if (waiter.done) return;
    waiter.done = true;
    if (waiter.timer) clearTimeout(waiter.timer);
    if (waiter.onAbort) waiter.signal?.removeEventListener("abort", waiter.onAbort);
    waiter.resolve(granted);
    // A waiter that gave up leaves its entry behind; drop finished ones at the head now.
    if (!granted) this.#handOver();
  }
}

/**
 * Takes a slot of every limiter in order (route, then upstream); on a refusal gives
 * back those already taken and returns the limiter that refused (null: all taken).
 * Synchronous while every slot is free at once; a promise once a request has to queue.
 */
export function acquireAll(
  limiters: readonly ConcurrencyLimiter[],
  signal: AbortSignal | null,
): ConcurrencyLimiter | null | Promise<ConcurrencyLimiter | null> {
  for (let i = 0; i < limiters.length; i++) {
    const outcome = limiters[i]!.acquire(signal);
    if (outcome === true) continue;
    if (outcome === false) return refuse(limiters, i);
    return outcome.then((granted) => (granted ? acquireRest(limiters, i + 1, signal) : refuse(limiters, i)));
  }
  return null;
}

async function acquireRest(limiters: readonly ConcurrencyLimiter[], from: number, signal: AbortSignal | null): Promise<ConcurrencyLimiter | null> {
  for (let i = from; i < limiters.length; i++) {
    const outcome = limiters[i]!.acquire(signal);
    if (outcome === true || (outcome !== false && (await outcome))) continue;
    return refuse(limiters, i);
  }
  return null;
}

/** Gives back the slots of the limiters before `refused`; returns the one that refused. */
function refuse(limiters: readonly ConcurrencyLimiter[], refused: number): ConcurrencyLimiter {
  for (let j = 0; j < refused; j++) limiters[j]!.release();
  return limiters[refused]!;
}

/**
 * Calls `release` once the response body has been sent, failed or been cancelled by
 * the client; at once for a response without a body.
 */
export function releaseAfterBody(response: Response, release: () => void): Response {
  const body = response.body;
  if (body === null) {
    release();
    return response;
  }
  let released = false;
  const once = () => {
    if (released) return;
    released = true;
    release();
  };
  const reader = body.getReader();
  const watched = new ReadableStream<Uint8Array>(
    {
      async pull(out) {
        try {
          const { done, value } = await reader.read();
          if (done) {
            once();
            out.close();
            return;
          }
          out.enqueue(value);
        } catch (error) {
          once();
          out.error(error);
        }
      },
      cancel(reason) {
        once();
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
  return new Response(watched, { status: response.status, statusText: response.statusText, headers: response.headers });
}

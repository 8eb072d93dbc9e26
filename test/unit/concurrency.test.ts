/**
 * The concurrency limiter on its own: FIFO hand-over of freed slots, a full queue
 * refuses at once, a waiter whose client leaves gives up its place, and the node-wide
 * counter gives back the slots of a dead process.
 */
import { expect, test } from "bun:test";
import { ConcurrencyLimiter, localSlots, nodeSlots } from "../../src/upstream/concurrency.ts";
import { privateTable } from "../../src/shared/index.ts";

const options = (max: number, queueSize: number, queueTimeoutMs = 0) => ({ scope: 'route "t"', max, queueSize, queueTimeoutMs, retryAfterSeconds: 1 });

test("freed slots go to waiters in arrival order; a full queue refuses at once", async () => {
  const limiter = new ConcurrencyLimiter(options(1, 2), localSlots(1));
  expect(limiter.acquire(null)).toBe(true);
  const order: string[] = [];
  const second = (limiter.acquire(null) as Promise<boolean>).then((ok) => order.push(`second ${ok}`));
  const third = (limiter.acquire(null) as Promise<boolean>).then((ok) => order.push(`third ${ok}`));
  expect(limiter.acquire(null)).toBe(false);
  expect(limiter.queued).toBe(2);
  limiter.release();
  await second;
  limiter.release();
  await third;
  expect(order).toEqual(["second true", "third true"]);
  limiter.release();
  expect(limiter.slots.inUse).toBe(0);
});

test("a waiter whose client aborts leaves the queue and gets false; the next one is served", async () => {
  const limiter = new ConcurrencyLimiter(options(1, 5), localSlots(1));
  expect(limiter.acquire(null)).toBe(true);
  const controller = new AbortController();
  const leaving = limiter.acquire(controller.signal) as Promise<boolean>;
  const staying = limiter.acquire(null) as Promise<boolean>;
  controller.abort();
  expect(await leaving).toBe(false);
  limiter.release();
  expect(await staying).toBe(true);
  expect(limiter.slots.inUse).toBe(1);
});

test("a waiter that waits longer than the queue timeout gets false", async () => {
  const limiter = new ConcurrencyLimiter(options(1, 5, 30), localSlots(1));
  expect(limiter.acquire(null)).toBe(true);
  expect(await (limiter.acquire(null) as Promise<boolean>)).toBe(false);
  expect(limiter.queued).toBe(0);
});

test("node-wide slots are counted in the shared table; reclaim gives back the holds of a dead process", () => {
  const table = privateTable();
  const slots = nodeSlots('route "shared"', 3, () => table);
  expect(slots.tryAcquire()).toBe(true);
  expect(slots.tryAcquire()).toBe(true);
  expect(slots.inUse).toBe(2);
  // This process "dies" holding two slots: the supervisor reclaims them by pid.
  slots.reclaim!(process.pid);
  expect(slots.inUse).toBe(0);
  expect(slots.tryAcquire()).toBe(true);
  expect(slots.tryAcquire()).toBe(true);
  expect(slots.tryAcquire()).toBe(true);
  expect(slots.tryAcquire()).toBe(false);
});

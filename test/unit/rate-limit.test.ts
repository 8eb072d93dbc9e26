/**
 * Rate-limit algorithms on the real shared table with a controlled clock, calendar
 * periods across daylight-saving changes, and the policy's keys and store-failure modes.
 */
import { describe, expect, test } from "bun:test";
import { NO_CONSUMERS } from "../../src/core/consumer.ts";
import type { Exchange } from "../../src/core/exchange.ts";
import {
  calendarQuota,
  concurrency,
  fixedWindow,
  leakyBucket,
  slidingLog,
  slidingWindowCounter,
  tokenBucket,
  type Counters,
  type Limiter,
} from "../../src/policies/rate-limit/algorithms.ts";
import { CalendarPeriod } from "../../src/policies/rate-limit/calendar.ts";
import { rateLimitPolicy } from "../../src/policies/rate-limit/index.ts";
import { FULL, privateTable, type SharedTable } from "../../src/shared/index.ts";
import { compileEmbeddedSettings, EmbeddedStore } from "../../src/store/embedded/index.ts";
import { exchangeFor, policyContext } from "../helpers/exchange.ts";

/** The shared table behind a store, read at a clock the test moves. */
class ClockCounters implements Counters {
  readonly table: SharedTable = privateTable(1024);
  now = 1_000_000_000_000;
  async increment(key: string, delta: number, windowMs: number) {
    const r = this.table.add(key, delta, windowMs, this.now);
    if (r === FULL) throw new Error("full");
    return { count: r.value, resetMs: r.expiresAt === 0 ? 0 : r.expiresAt - this.now };
  }
  async count(key: string) {
    return this.table.read(key, this.now)?.value ?? 0;
  }
  async readWord(key: string) {
    return this.table.readWord(key, this.now);
  }
  async compareAndSetWord(key: string, expected: number, next: number, ttlMs: number) {
    return this.table.compareAndSetWord(key, expected, next, ttlMs, this.now) === true;
  }
}

async function run(limiter: Limiter, counters: ClockCounters, times: number) {
  const out = [];
  for (let i = 0; i < times; i++) out.push(await limiter.check(counters, "k", counters.now));
  return out;
}

describe("algorithms", () => {
  test("fixed window: N per window, a new window starts afresh", async () => {
    const c = new ClockCounters();
    c.now = 1_000_000_000_000 + 400; // 400 ms into a 1 s window
    const first = await run(fixedWindow(3, 1000), c, 4);
    expect(first.map((v) => v.admitted)).toEqual([true, true, true, false]);
    expect(first.map((v) => v.remaining)).toEqual([2, 1, 0, 0]);
    expect(first[3]!.retryAfterMs).toBe(600);
    c.now += 600;
    expect((await run(fixedWindow(3, 1000), c, 1))[0]!.admitted).toBe(true);
  });

  test("sliding window counter: the previous window still counts by its overlap; refusals are not counted", async () => {
    const c = new ClockCounters();
    const limiter = slidingWindowCounter(10, 1000);
    c.now = 1_000_000_000_000 + 900;
    expect((await run(limiter, c, 12)).filter((v) => v.admitted)).toHaveLength(10);
    c.now += 200; // 100 ms into the next window: the previous 10 weigh 9
    expect((await run(limiter, c, 3)).map((v) => v.admitted)).toEqual([true, false, false]);
    c.now += 500; // 600 ms in: they weigh 4, plus 1 counted
    expect((await run(limiter, c, 6)).map((v) => v.admitted)).toEqual([true, true, true, true, true, false]);
  });

  test("sliding log: exactly N in any window, retry when the oldest leaves", async () => {
    const c = new ClockCounters();
    const limiter = slidingLog(3, 1000);
    const t0 = c.now;
    for (const offset of [0, 100, 200]) {
      c.now = t0 + offset;
      expect((await run(limiter, c, 1))[0]!.admitted).toBe(true);
    }
    c.now = t0 + 300;
    const refused = (await run(limiter, c, 1))[0]!;
    expect(refused.admitted).toBe(false);
    expect(refused.retryAfterMs).toBe(700);
    c.now = t0 + 1000; // the first slot is free again, the others not
    expect((await run(limiter, c, 2)).map((v) => v.admitted)).toEqual([true, false]);
  });

  test("token bucket: a burst at once, then one per interval", async () => {
    const c = new ClockCounters();
    const limiter = tokenBucket(1, 1000, 3);
    const burst = await run(limiter, c, 4);
    expect(burst.map((v) => v.admitted)).toEqual([true, true, true, false]);
    expect(burst.map((v) => v.remaining)).toEqual([2, 1, 0, 0]);
    expect(burst[3]!.retryAfterMs).toBe(1000);
    c.now += 1000;
    expect((await run(limiter, c, 2)).map((v) => v.admitted)).toEqual([true, false]);
    c.now += 10_000; // full again, never more than the burst
    expect((await run(limiter, c, 4)).map((v) => v.admitted)).toEqual([true, true, true, false]);
  });

  test("leaky bucket: requests are spaced by the interval, up to max_wait, then refused", async () => {
    const c = new ClockCounters();
    const limiter = leakyBucket(2, 1000, 1000); // one every 500 ms
    const queued = await run(limiter, c, 4);
    expect(queued.map((v) => v.admitted)).toEqual([true, true, true, false]);
    expect(queued.slice(0, 3).map((v) => v.delayMs)).toEqual([0, 500, 1000]);
    expect(queued[3]!.retryAfterMs).toBe(500);
    c.now += 1000;
    expect((await run(limiter, c, 1))[0]!.delayMs).toBe(500);
  });

  test("quota: counts per calendar period; refusals do not use it; undo gives back", async () => {
    const c = new ClockCounters();
    const limiter = calendarQuota(2, new CalendarPeriod("day", "UTC"));
    const day = await run(limiter, c, 3);
    expect(day.map((v) => v.admitted)).toEqual([true, true, false]);
    await day[1]!.undo!();
    expect((await run(limiter, c, 2)).map((v) => v.admitted)).toEqual([true, false]);
    c.now += 86_400_000;
    expect((await run(limiter, c, 1))[0]!.admitted).toBe(true);
  });

  test("concurrency: slots are taken and given back", async () => {
    const c = new ClockCounters();
    const limiter = concurrency(2);
    const held = await run(limiter, c, 3);
    expect(held.map((v) => v.admitted)).toEqual([true, true, false]);
    await held[0]!.undo!();
    expect((await run(limiter, c, 2)).map((v) => v.admitted)).toEqual([true, false]);
  });
});

describe("calendar periods", () => {
  test("a Berlin day across the spring DST change is 23 hours, starting at local midnight", () => {
    const period = new CalendarPeriod("day", "Europe/Berlin");
    const bounds = period.boundsAt(Date.parse("2026-03-29T12:00:00Z"));
    expect(new Date(bounds.start).toISOString()).toBe("2026-03-28T23:00:00.000Z");
    expect(new Date(bounds.end).toISOString()).toBe("2026-03-29T22:00:00.000Z");
  });

  test("a month in a zone east of UTC starts before midnight UTC", () => {
    const period = new CalendarPeriod("month", "Europe/Berlin");
    const bounds = period.boundsAt(Date.parse("2026-11-30T23:30:00Z")); // already December in Berlin
    expect(new Date(bounds.start).toISOString()).toBe("2026-11-30T23:00:00.000Z");
    expect(new Date(bounds.end).toISOString()).toBe("2026-12-31T23:00:00.000Z");
    const newYork = new CalendarPeriod("day", "America/New_York").boundsAt(Date.parse("2026-11-01T12:00:00Z")); // fall back: 25 h
    expect(newYork.end - newYork.start).toBe(25 * 3_600_000);
  });
});

describe("rate-limit policy", () => {
  const create = (config: Record<string, unknown>, store?: EmbeddedStore) => rateLimitPolicy.create(config as never, policyContext(NO_CONSUMERS, store));
  const send = async (policy: ReturnType<typeof create>, init: Parameters<typeof exchangeFor>[1] = {}, consumer: Exchange["consumer"] = null) => {
    const exchange = exchangeFor("http://gw.test/limited", init);
    exchange.consumer = consumer;
    const answer = await policy.onRequest!(exchange);
    return { exchange, status: answer ? answer.status : 200, answer };
  };
  const consumer = (name: string, claims: Record<string, unknown> = {}): Exchange["consumer"] => ({
    name,
    roles: [],
    groups: [],
    scopes: [],
    claims,
    metadata: {},
    methods: ["api-key"],
  });

  test("counts per consumer and per claim, read from exchange.consumer", async () => {
    const byConsumer = create({ key: "consumer", limits: [{ requests: 1, window: "1h" }] });
    expect((await send(byConsumer, {}, consumer("alice"))).status).toBe(200);
    expect((await send(byConsumer, {}, consumer("alice"))).status).toBe(429);
    expect((await send(byConsumer, {}, consumer("bob"))).status).toBe(200);
    const byClaim = create({ key: ["claim:tenant", "route"], limits: [{ requests: 1, window: "1h" }] });
    expect((await send(byClaim, {}, consumer("alice", { tenant: "t1" }))).status).toBe(200);
    expect((await send(byClaim, {}, consumer("bob", { tenant: "t1" }))).status).toBe(429);
    expect((await send(byClaim, {}, consumer("carol", { tenant: "t2" }))).status).toBe(200);
  });

  test("a concurrency slot is given back when the request completes", async () => {
    const policy = create({ key: "client_ip", limits: [{ requests: 1, algorithm: "concurrency" }] });
    const first = await send(policy);
    expect(first.status).toBe(200);
    const answered = await policy.onResponse!(first.exchange, new Response("ok"));
    expect(answered.headers.get("ratelimit-policy")).toBe('"1-concurrent";q=1;qu="concurrent-requests"');
    expect(answered.headers.get("ratelimit")).toBe('"1-concurrent";r=0');
    expect((await send(policy)).status).toBe(429);
    policy.onComplete!(first.exchange, new Response("ok"));
    await Bun.sleep(10);
    expect((await send(policy)).status).toBe(200);
  });

  /** A real embedded store whose shared memory is full: every new key fails. */
  function fullStore(): EmbeddedStore {
    const table = privateTable(16);
    for (let i = 0; i < 16; i++) table.add(`filler-${i}`, 1, 0);
    return new EmbeddedStore(compileEmbeddedSettings({ state_dir: "/nonexistent-turnpike-state" }, "/"), table);
  }

  test("store failure, fail open: limited per worker by fallback_requests", async () => {
    const policy = create({ limits: [{ requests: 100, window: "1h", fallback_requests: 2 }] }, fullStore());
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await send(policy)).status);
    expect(statuses).toEqual([200, 200, 429]);
  });

  test("store failure, fail closed: 503 problem with Retry-After", async () => {
    const policy = create({ limits: [{ requests: 100, window: "1h", on_store_error: "closed" }] }, fullStore());
    const { answer } = await send(policy);
    expect(answer!.status).toBe(503);
    expect(answer!.headers.get("content-type")).toBe("application/problem+json");
    expect(answer!.headers.get("retry-after")).toBe("1");
    expect(((await answer!.json()) as { type: string }).type).toBe("urn:turnpike:problem:rate-limit-unavailable");
  });
});

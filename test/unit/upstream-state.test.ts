/**
 * Circuit breaker and outlier detection on shared cells, driven with explicit times: two
 * instances over the same cells stand for two worker processes.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { Admission, CircuitBreaker, type BreakerSettings } from "../../src/upstream/circuit-breaker.ts";
import { setUpstreamEventSink, type UpstreamEventSink } from "../../src/upstream/events.ts";
import { OutlierDetector, type OutlierSettings } from "../../src/upstream/outlier.ts";
import { backoffDelay, RetryBudget, type RetrySettings } from "../../src/upstream/retry.ts";

let events: string[] = [];
let previousSink: UpstreamEventSink;
beforeEach(() => {
  events = [];
  previousSink = setUpstreamEventSink((message) => events.push(message));
});
afterEach(() => setUpstreamEventSink(previousSink));

const labels = { upstream: "api", target: "http://a:1" };

describe("circuit breaker", () => {
  const settings: BreakerSettings = { scope: "target", failures: 3, failureRatio: 0, minRequests: 10, windowMs: 1000, openMs: 500, halfOpenRequests: 2 };
  const pair = () => {
    const cells = new Int32Array(new SharedArrayBuffer(64));
    return [new CircuitBreaker(cells, 4, settings, labels), new CircuitBreaker(cells, 4, settings, labels)] as const;
  };

  test("opens on the failure count within the window, seen by every instance, reported once", () => {
    const [a, b] = pair();
    a.record(Admission.normal, true, 1000);
    b.record(Admission.normal, true, 1100);
    expect(b.stateAt(1100)).toBe("closed");
    a.record(Admission.normal, true, 1200);
    expect(a.stateAt(1200)).toBe("open");
    expect(b.stateAt(1200)).toBe("open");
    expect(b.acquire(1300)).toBe(Admission.refused);
    expect(b.retryAfterMs(1300)).toBe(400);
    b.record(Admission.normal, true, 1300);
    expect(events).toEqual(["circuit opened"]);
  });

  test("failures spread over more than one window do not open it", () => {
    const [a] = pair();
    a.record(Admission.normal, true, 1000);
    a.record(Admission.normal, true, 1500);
    a.record(Admission.normal, true, 2100);
    expect(a.stateAt(2100)).toBe("closed");
  });

  test("half-open admits a limited number of trials; a success closes it", () => {
    const [a, b] = pair();
    for (const t of [1000, 1001, 1002]) a.record(Admission.normal, true, t);
    expect(a.acquire(1600)).toBe(Admission.trial);
    expect(b.acquire(1600)).toBe(Admission.trial);
    expect(a.acquire(1601)).toBe(Admission.refused);
    expect(b.stateAt(1601)).toBe("half_open");
    b.record(Admission.trial, false, 1650);
    expect(a.stateAt(1650)).toBe("closed");
    expect(a.acquire(1650)).toBe(Admission.normal);
    expect(events).toEqual(["circuit opened", "circuit half-open", "circuit closed"]);
  });

  test("a failed trial opens it again; an abandoned trial is given back", () => {
    const [a, b] = pair();
    for (const t of [1000, 1001, 1002]) a.record(Admission.normal, true, t);
    expect(a.acquire(1600)).toBe(Admission.trial);
    a.record(Admission.trial, null, 1610);
    expect(b.acquire(1620)).toBe(Admission.trial);
    b.record(Admission.trial, true, 1630);
    expect(a.stateAt(1630)).toBe("open");
    expect(a.retryAfterMs(1630)).toBe(500);
  });

  test("trials that never decide (their worker died) are given back after another open time", () => {
    const [a, b] = pair();
    for (const t of [1000, 1001, 1002]) a.record(Admission.normal, true, t);
    expect(a.acquire(1600)).toBe(Admission.trial);
    expect(a.acquire(1600)).toBe(Admission.trial);
    expect(b.acquire(1700)).toBe(Admission.refused);
    expect(b.acquire(2100)).toBe(Admission.trial);
    b.record(Admission.trial, false, 2110);
    expect(a.stateAt(2110)).toBe("closed");
  });

  test("a failure ratio opens it once enough requests were seen", () => {
    const cells = new Int32Array(new SharedArrayBuffer(64));
    const breaker = new CircuitBreaker(cells, 0, { ...settings, failures: 0, failureRatio: 0.5, minRequests: 4 }, labels);
    breaker.record(Admission.normal, false, 10);
    breaker.record(Admission.normal, true, 11);
    breaker.record(Admission.normal, false, 12);
    expect(breaker.stateAt(12)).toBe("closed");
    breaker.record(Admission.normal, true, 13);
    expect(breaker.stateAt(13)).toBe("open");
  });
});

describe("outlier detection", () => {
  const settings: OutlierSettings = { consecutiveFailures: 2, failureRatio: 0, minRequests: 10, windowMs: 1000, ejectionMs: 100, maxEjectionMs: 250 };
  const detector = () => new OutlierDetector(new Int32Array(new SharedArrayBuffer(64)), 0, settings, labels);

  test("failures in a row eject for the ejection time; a success in between resets the count", () => {
    const d = detector();
    d.record(true, 10);
    d.record(false, 11);
    d.record(true, 12);
    expect(d.ejected(12)).toBe(false);
    d.record(true, 13);
    expect(d.ejected(14)).toBe(true);
    expect(d.ejected(112)).toBe(true);
    expect(d.ejected(113)).toBe(false);
    expect(events).toEqual(["target ejected", "target returned"]);
  });

  test("each ejection in a row without a success lasts longer, up to the maximum", () => {
    const d = detector();
    const ejectAt = (t: number) => {
      d.record(true, t);
      d.record(true, t);
    };
    ejectAt(0);
    expect(d.ejected(99)).toBe(true);
    expect(d.ejected(100)).toBe(false);
    ejectAt(100);
    expect(d.ejected(299)).toBe(true);
    expect(d.ejected(300)).toBe(false);
    ejectAt(300);
    expect(d.ejected(549)).toBe(true);
    expect(d.ejected(550)).toBe(false);
    d.record(false, 551);
    ejectAt(600);
    expect(d.ejected(700)).toBe(false);
  });
});

describe("retries", () => {
  const retry = { backoffMs: 20, maxBackoffMs: 100 } as RetrySettings;

  test("backoff grows exponentially under a cap, with full jitter", () => {
    expect([0, 1, 2, 3, 10].map((n) => backoffDelay(retry, n, () => 0.999))).toEqual([19, 39, 79, 99, 99]);
    expect(backoffDelay(retry, 3, () => 0)).toBe(0);
  });

  test("the budget keeps retries to a share of requests", () => {
    let now = 0;
    const budget = new RetryBudget(0.1, 0, () => now);
    for (let i = 0; i < 100; i++) budget.request();
    let allowed = 0;
    for (let i = 0; i < 50; i++) if (budget.tryRetry()) allowed++;
    expect(allowed).toBe(10);
    now = 25_000;
    expect(budget.tryRetry()).toBe(false);
    budget.request();
    expect(budget.tryRetry()).toBe(false);
    const floor = new RetryBudget(0.1, 1, () => now);
    let floorAllowed = 0;
    for (let i = 0; i < 50; i++) if (floor.tryRetry()) floorAllowed++;
    expect(floorAllowed).toBe(10);
  });
});

/**
 * One suite for every balancer: what any balancer must do, then what each one promises.
 */
import { describe, expect, test } from "bun:test";
import { BALANCERS, type BalancedTarget, type BalancerName } from "../../src/upstream/balancers/index.ts";

/** A target whose in-flight count a test sets. */
interface FakeTarget extends BalancedTarget {
  load: number;
}

function targets(weights: number[], loads: number[] = []): FakeTarget[] {
  return weights.map((weight, index) => {
    const target: FakeTarget = { index, weight, key: `http://10.0.0.${index + 1}:8080`, load: loads[index] ?? 0, inFlight: () => target.load };
    return target;
  });
}

/** A repeatable "random" sequence for P2C. */
function sequence(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
}

const hints = (hashKey: string | null = null) => ({ hashKey });

describe.each(Object.keys(BALANCERS) as BalancerName[])("every balancer: %s", (name) => {
  const factory = BALANCERS[name];

  test("a single available target always gets the request", () => {
    const all = targets([1, 1, 1]);
    const balancer = factory(all, sequence(1));
    for (let i = 0; i < 20; i++) expect(balancer.pick([all[1]!], hints(`k${i}`))).toBe(all[1]!);
  });

  test("only available targets are picked", () => {
    const all = targets([1, 2, 3, 1]);
    const balancer = factory(all, sequence(2));
    const available = [all[0]!, all[2]!];
    for (let i = 0; i < 200; i++) expect(available).toContain(balancer.pick(available, hints(`key-${i}`)) as FakeTarget);
  });

  test("traffic (over many keys) reaches every available target", () => {
    const all = targets([1, 1, 1]);
    const balancer = factory(all, sequence(3));
    const seen = new Set<number>();
    for (let i = 0; i < 300; i++) seen.add(balancer.pick(all, hints(`user-${i}`)).index);
    expect([...seen].sort()).toEqual([0, 1, 2]);
  });

  test("a target that comes back gets traffic again", () => {
    const all = targets([1, 1]);
    const balancer = factory(all, sequence(4));
    for (let i = 0; i < 50; i++) expect(balancer.pick([all[0]!], hints(`user-${i}`))).toBe(all[0]!);
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) seen.add(balancer.pick(all, hints(`user-${i}`)).index);
    expect(seen.has(1)).toBe(true);
  });
});

describe("round_robin", () => {
  test("takes turns whatever the weights", () => {
    const all = targets([5, 1, 1]);
    const balancer = BALANCERS.round_robin(all);
    expect(Array.from({ length: 6 }, () => balancer.pick(all, hints()).index)).toEqual([0, 1, 2, 0, 1, 2]);
  });
});

describe("weighted_round_robin", () => {
  test("each target gets exactly its weight's share, spread out", () => {
    const all = targets([5, 1, 1]);
    const balancer = BALANCERS.weighted_round_robin(all);
    const picks = Array.from({ length: 7 }, () => balancer.pick(all, hints()).index);
    expect(picks).toEqual([0, 0, 1, 0, 2, 0, 0]);
    const counts = [0, 0, 0];
    for (let i = 0; i < 700; i++) counts[balancer.pick(all, hints()).index]!++;
    expect(counts).toEqual([500, 100, 100]);
  });

  test("the shares hold among the available targets", () => {
    const all = targets([3, 1, 2]);
    const balancer = BALANCERS.weighted_round_robin(all);
    const available = [all[0]!, all[2]!];
    const counts = [0, 0, 0];
    for (let i = 0; i < 500; i++) counts[balancer.pick(available, hints()).index]!++;
    expect(counts).toEqual([300, 0, 200]);
  });
});

describe("least_connections", () => {
  test("picks the target with the fewest requests in flight", () => {
    const all = targets([1, 1, 1], [4, 1, 3]);
    const balancer = BALANCERS.least_connections(all);
    for (let i = 0; i < 10; i++) expect(balancer.pick(all, hints()).index).toBe(1);
  });

  test("relative to weight", () => {
    const all = targets([1, 4], [2, 4]);
    const balancer = BALANCERS.least_connections(all);
    expect(balancer.pick(all, hints()).index).toBe(1);
  });

  test("ties take turns", () => {
    const all = targets([1, 1, 1]);
    const balancer = BALANCERS.least_connections(all);
    const seen = new Set(Array.from({ length: 3 }, () => balancer.pick(all, hints()).index));
    expect(seen.size).toBe(3);
  });

  test("follows loads as they change: each pick adds one in flight", () => {
    const all = targets([1, 1, 1], [0, 5, 5]);
    const balancer = BALANCERS.least_connections(all);
    for (let i = 0; i < 5; i++) (balancer.pick(all, hints()) as FakeTarget).load += 1;
    expect(all.map((t) => t.load)).toEqual([5, 5, 5]);
  });
});

describe("p2c", () => {
  test("never picks the most loaded target (of two distinct choices the lighter wins)", () => {
    const all = targets([1, 1, 1, 1], [1, 2, 9, 3]);
    const balancer = BALANCERS.p2c(all, sequence(7));
    for (let i = 0; i < 500; i++) expect(balancer.pick(all, hints()).index).not.toBe(2);
  });

  test("with two targets the less loaded always wins", () => {
    const all = targets([1, 1], [3, 1]);
    const balancer = BALANCERS.p2c(all, sequence(8));
    for (let i = 0; i < 100; i++) expect(balancer.pick(all, hints()).index).toBe(1);
  });
});

describe("consistent_hash", () => {
  const keys = Array.from({ length: 2000 }, (_, i) => `client-${i}`);
  const placement = (all: FakeTarget[], available = all) => {
    const balancer = BALANCERS.consistent_hash(all);
    return new Map(keys.map((key) => [key, balancer.pick(available, hints(key)).key]));
  };

  test("a key always goes to the same target", () => {
    const all = targets([1, 1, 1]);
    const balancer = BALANCERS.consistent_hash(all);
    for (const key of keys.slice(0, 50)) {
      const first = balancer.pick(all, hints(key));
      for (let i = 0; i < 5; i++) expect(balancer.pick(all, hints(key))).toBe(first);
    }
  });

  test("keys spread roughly evenly (each of 4 targets gets 15-35%)", () => {
    const counts = new Map<string, number>();
    for (const target of placement(targets([1, 1, 1, 1])).values()) counts.set(target, (counts.get(target) ?? 0) + 1);
    expect(counts.size).toBe(4);
    for (const count of counts.values()) {
      expect(count).toBeGreaterThan(keys.length * 0.15);
      expect(count).toBeLessThan(keys.length * 0.35);
    }
  });

  test("removing a target moves only its own keys", () => {
    const four = targets([1, 1, 1, 1]);
    const before = placement(four);
    const three = four.slice(0, 3).map((t, index) => ({ ...t, index, inFlight: () => 0 }));
    const after = placement(three);
    const removed = four[3]!.key;
    let moved = 0;
    for (const key of keys) {
      if (before.get(key) === removed) moved++;
      else expect(after.get(key)).toBe(before.get(key)!);
    }
    expect(moved).toBeGreaterThan(0);
  });

  test("adding a target takes keys only for itself, about its share", () => {
    const three = targets([1, 1, 1]);
    const four = targets([1, 1, 1, 1]);
    const before = placement(three);
    const after = placement(four);
    let moved = 0;
    for (const key of keys) {
      if (after.get(key) === before.get(key)) continue;
      moved++;
      expect(after.get(key)).toBe(four[3]!.key);
    }
    expect(moved).toBeGreaterThan(keys.length * 0.1);
    expect(moved).toBeLessThan(keys.length * 0.4);
  });

  test("an unavailable target's keys go elsewhere and come back when it returns", () => {
    const all = targets([1, 1, 1]);
    const before = placement(all);
    const during = placement(all, [all[0]!, all[2]!]);
    for (const key of keys) {
      if (before.get(key) !== all[1]!.key) expect(during.get(key)).toBe(before.get(key)!);
      else expect(during.get(key)).not.toBe(all[1]!.key);
    }
    expect(placement(all)).toEqual(before);
  });

  test("weights scale a target's share", () => {
    const all = targets([3, 1]);
    const counts = new Map<string, number>();
    for (const target of placement(all).values()) counts.set(target, (counts.get(target) ?? 0) + 1);
    expect(counts.get(all[0]!.key)!).toBeGreaterThan(counts.get(all[1]!.key)! * 2);
  });
});

/**
 * The one test suite every Store implementation passes. A store test file calls
 * `storeSuite("embedded", factory)`; the factory makes a store, and calling it twice
 * must give two stores that share state (as two worker processes or two nodes would).
 * Windows and ttls are short (a few hundred ms) and waits generous.
 */
import { afterAll, describe, expect, test } from "bun:test";
import type { Store } from "../src/store/types.ts";

/** Makes a store; stores made by one factory share state. */
export type StoreFactory = () => Promise<Store>;

export function storeSuite(name: string, factory: StoreFactory): void {
  describe(`store suite: ${name}`, () => {
    const made: Store[] = [];
    const make = async () => {
      const store = await factory();
      made.push(store);
      return store;
    };
    afterAll(async () => {
      for (const store of made.splice(0)) await store.close();
    });
    // Keys unique per run, so that stores with state left by an earlier run do not interfere.
    const run = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
    const key = (k: string) => `suite/${run}/${k}`;

    test("reports its kind and is available", async () => {
      const store = await make();
      expect(store.kind).toBe(name);
      expect(store.available).toBe(true);
    });

    test("increment counts from the delta and reports the time left in the window", async () => {
      const store = await make();
      const first = await store.increment(key("count"), 1, 60_000);
      expect(first.count).toBe(1);
      expect(first.resetMs).toBeGreaterThan(50_000);
      expect(first.resetMs).toBeLessThanOrEqual(60_000);
      expect((await store.increment(key("count"), 4, 60_000)).count).toBe(5);
      expect(await store.count(key("count"))).toBe(5);
      expect(await store.count(key("never-written"))).toBe(0);
      expect((await store.increment(key("count"), -2, 60_000)).count).toBe(3);
    });

    test("a window's counter expires and starts again from zero", async () => {
      const store = await make();
      expect((await store.increment(key("short"), 3, 300)).count).toBe(3);
      await Bun.sleep(700);
      expect(await store.count(key("short"))).toBe(0);
      expect((await store.increment(key("short"), 1, 300)).count).toBe(1);
    });

    test("concurrent increments from two stores are exact: every count from 1 to N once", async () => {
      const [a, b] = [await make(), await make()];
      const n = 400;
      const results = await Promise.all(Array.from({ length: n }, (_, i) => (i % 2 ? a : b).increment(key("race"), 1, 60_000)));
      const counts = results.map((r) => r.count).sort((x, y) => x - y);
      expect(counts).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      expect(await a.count(key("race"))).toBe(n);
    });

    test("values: set, get, ttl, delete", async () => {
      const store = await make();
      expect(await store.get(key("v"))).toBeUndefined();
      await store.set(key("v"), "hello", 0);
      expect(await store.get(key("v"))).toBe("hello");
      await store.set(key("v"), "again ✓", 0);
      expect(await store.get(key("v"))).toBe("again ✓");
      await store.delete(key("v"));
      expect(await store.get(key("v"))).toBeUndefined();
      await store.set(key("brief"), "x", 300);
      expect(await store.get(key("brief"))).toBe("x");
      await Bun.sleep(700);
      expect(await store.get(key("brief"))).toBeUndefined();
    });

    test("setIfAbsent: exactly one of many concurrent callers across two stores wins; an expired value can be taken again", async () => {
      const [a, b] = [await make(), await make()];
      const wins = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).setIfAbsent(key("nonce"), `caller-${i}`, 400)));
      expect(wins.filter(Boolean)).toHaveLength(1);
      const winner = wins.indexOf(true);
      expect(await b.get(key("nonce"))).toBe(`caller-${winner}`);
      expect(await a.setIfAbsent(key("nonce"), "late", 400)).toBe(false);
      await Bun.sleep(900);
      expect(await a.setIfAbsent(key("nonce"), "after-expiry", 400)).toBe(true);
      expect(await b.get(key("nonce"))).toBe("after-expiry");
    });

    test("words: compare-and-set from 0, conflicts lose, ttl expires back to 0", async () => {
      const [a, b] = [await make(), await make()];
      expect(await a.readWord(key("w"))).toBe(0);
      const now = Date.now() * 1000;
      expect(await a.compareAndSetWord(key("w"), 0, now, 60_000)).toBe(true);
      expect(await b.readWord(key("w"))).toBe(now);
      expect(await b.compareAndSetWord(key("w"), 0, 7, 60_000)).toBe(false);
      expect(await b.compareAndSetWord(key("w"), now, 7, 300)).toBe(true);
      expect(await a.readWord(key("w"))).toBe(7);
      await Bun.sleep(700);
      expect(await a.readWord(key("w"))).toBe(0);
      // Many concurrent increments by compare-and-set retry loops lose none.
      const bump = async (store: Store) => {
        for (let attempt = 0; attempt < 1000; attempt++) {
          const current = await store.readWord(key("cas-count"));
          if (await store.compareAndSetWord(key("cas-count"), current, current + 1, 0)) return;
        }
        throw new Error("no progress");
      };
      await Promise.all(Array.from({ length: 60 }, (_, i) => bump(i % 2 ? a : b)));
      expect(await a.readWord(key("cas-count"))).toBe(60);
      await a.delete(key("cas-count"));
      expect(await b.readWord(key("cas-count"))).toBe(0);
    });

    test("publish reaches every subscriber of the channel in every store, including the publisher's", async () => {
      const [a, b] = [await make(), await make()];
      const seenA: string[] = [];
      const seenB: string[] = [];
      const other: string[] = [];
      const stopA = a.subscribe(key("chan"), (m) => seenA.push(m));
      b.subscribe(key("chan"), (m) => seenB.push(m));
      b.subscribe(key("other"), (m) => other.push(m));
      await Bun.sleep(200);
      await a.publish(key("chan"), "one");
      await b.publish(key("chan"), "two");
      for (let i = 0; i < 100 && (seenA.length < 2 || seenB.length < 2); i++) await Bun.sleep(50);
      expect(seenA.sort()).toEqual(["one", "two"]);
      expect(seenB.sort()).toEqual(["one", "two"]);
      stopA();
      await b.publish(key("chan"), "three");
      for (let i = 0; i < 100 && seenB.length < 3; i++) await Bun.sleep(50);
      await Bun.sleep(200);
      expect(seenB).toContain("three");
      expect(seenA).not.toContain("three");
      expect(other).toEqual([]);
    });
  });
}

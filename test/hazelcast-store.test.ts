/**
 * The Hazelcast store against a real member: exact counts across processes (strict),
 * the batched bound, values and messages, and what happens when the member goes away,
 * comes back, or is not there at start-up.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { resolve } from "node:path";
import { createLogger, type Logger } from "../src/observability/logger.ts";
import { createHazelcastStore, StoreUnavailableError, type HazelcastMode, type HazelcastStore } from "../src/store/hazelcast.ts";
import { freePort } from "./helpers/gateway.ts";
import { hazelcastMissing, startMember, type Member } from "./helpers/hazelcast.ts";
import { storeSuite } from "./store-suite.ts";

// Members and gateways are real processes: generous limits for a busy machine.
setDefaultTimeout(120_000);

const FIXTURE = resolve(import.meta.dir, "fixtures/hazelcast-increments.ts");

/** A logger that keeps its lines, to count transition messages. */
function memoryLogger(): { log: Logger; lines: () => Record<string, unknown>[] } {
  const lines: string[] = [];
  const log = createLogger({}, "debug", (line) => void lines.push(line));
  return { log, lines: () => lines.map((line) => JSON.parse(line)) };
}

async function waitFor(what: string, condition: () => boolean, ms = 30_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(25);
  }
}

/** Runs `processes` separate processes, each with `perProcess` concurrent increments of `key`, started together. */
async function incrementsFromProcesses(member: Member, mode: HazelcastMode, key: string, processes: number, perProcess: number, limit: number): Promise<number[]> {
  const children = Array.from({ length: processes }, () => {
    const child = Bun.spawn(["bun", FIXTURE, member.address, mode, key, String(perProcess), String(limit), String(processes)], {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "inherit",
    });
    const state = { text: "", done: null as Promise<void> | null };
    state.done = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of child.stdout as unknown as AsyncIterable<Uint8Array>) state.text += decoder.decode(chunk, { stream: true });
    })();
    return { child, state };
  });
  // Each prints "ready" once connected and once it counts every process; then one line starts them all.
  await waitFor("every process to connect", () => children.every(({ state }) => state.text.includes("ready\n")), 60_000);
  for (const { child } of children) {
    child.stdin.write("go\n");
    await child.stdin.flush();
  }
  const counts: number[] = [];
  for (const { child, state } of children) {
    expect(await child.exited).toBe(0);
    await state.done;
    counts.push(...(JSON.parse(state.text.trim().split("\n").pop()!) as number[]));
  }
  return counts;
}

describe.skipIf(hazelcastMissing !== null)("Hazelcast store", () => {
  let member: Member;
  const stores: HazelcastStore[] = [];
  const open = (mode: HazelcastMode = "strict", log: Logger = createLogger({}, "error"), members = [member.address]) => {
    // A generous timeout: the machine running the tests may be busy.
    const store = createHazelcastStore({ members, mode, log, timeoutMs: 5_000 });
    stores.push(store);
    return store;
  };

  beforeAll(async () => {
    member = await startMember();
  }, 120_000);

  afterAll(async () => {
    for (const store of stores) await store.close();
    await member?.stop();
  });

  // Two stores made by this factory stand for two gateway processes (or nodes).
  storeSuite("hazelcast", async () => {
    const store = createHazelcastStore({ members: [member.address], mode: "strict", log: createLogger({}, "error"), timeoutMs: 5_000 });
    await waitFor("connection", () => store.available);
    return store;
  });

  test("strict mode: 3 processes × 400 concurrent increments get every count from 1 to 1200 once", async () => {
    const key = `strict-${crypto.randomUUID()}`;
    const counts = await incrementsFromProcesses(member, "strict", key, 3, 400, 1_000_000);
    expect(counts.filter((c) => c < 0)).toEqual([]);
    expect(counts.toSorted((a, b) => a - b)).toEqual(Array.from({ length: 1200 }, (_, i) => i + 1));
    const store = open();
    await waitFor("connection", () => store.available);
    expect(await store.count(key)).toBe(1200);
  });

  test("batched mode: a limit of 2000 hit by 3 processes × 1000 admits between 99% and 100% of it, never more", async () => {
    const key = `batched-${crypto.randomUUID()}`;
    const limit = 2000;
    const counts = await incrementsFromProcesses(member, "batched", key, 3, 1000, limit);
    expect(counts.filter((c) => c < 0)).toEqual([]);
    // No count is handed out twice, so no more than the limit can be admitted.
    expect(new Set(counts).size).toBe(counts.length);
    const admitted = counts.filter((c) => c <= limit).length;
    expect(admitted).toBeLessThanOrEqual(limit);
    expect(admitted).toBeGreaterThanOrEqual(limit * 0.99);
  });

  test("member killed: unavailable, operations fail fast, one log line per transition, recovery when it returns", async () => {
    const { log, lines } = memoryLogger();
    const store = open("strict", log);
    await waitFor("connection", () => store.available);
    const key = `degraded-${crypto.randomUUID()}`;
    expect((await store.increment(key, 1, 60_000)).count).toBe(1);

    await member.kill();
    await waitFor("the store to notice", () => !store.available);
    const failures = await Promise.allSettled(Array.from({ length: 50 }, () => store.increment(key, 1, 60_000)));
    for (const failure of failures) {
      expect(failure.status).toBe("rejected");
      expect((failure as PromiseRejectedResult).reason).toBeInstanceOf(StoreUnavailableError);
    }
    await expect(store.get("anything")).rejects.toBeInstanceOf(StoreUnavailableError);

    await member.restart();
    await waitFor("the store to reconnect by itself", () => store.available, 60_000);
    // The member restarted empty: counting starts again.
    expect((await store.increment(key, 1, 60_000)).count).toBe(1);
    const messages = lines().map((line) => line.msg);
    expect(messages.filter((m) => m === "lost the Hazelcast cluster; limits follow their fail mode until it is back")).toHaveLength(1);
    expect(messages.filter((m) => m === "Hazelcast cluster reachable again; limits are shared across the cluster")).toHaveLength(1);
  }, 120_000);

  test("member frozen: operations fail after the timeout, the store turns unavailable, and comes back when it thaws", async () => {
    const { log, lines } = memoryLogger();
    const store = open("strict", log);
    await waitFor("connection", () => store.available);
    const key = `frozen-${crypto.randomUUID()}`;
    expect((await store.increment(key, 1, 60_000)).count).toBe(1);
    member.pause();
    try {
      const startedAt = performance.now();
      await expect(store.increment(key, 1, 60_000)).rejects.toBeInstanceOf(StoreUnavailableError);
      // Bounded by the store's timeout (5 s here), not the client's two-minute default.
      expect(performance.now() - startedAt).toBeLessThan(20_000);
      // The client's heartbeat gives up on a member that answers nothing.
      await waitFor("the store to turn unavailable", () => !store.available, 60_000);
    } finally {
      member.resume();
    }
    await waitFor("the store to reconnect", () => store.available, 60_000);
    expect((await store.increment(key, 1, 60_000)).count).toBeGreaterThanOrEqual(2);
    expect(lines().filter((l) => l.msg === "lost the Hazelcast cluster; limits follow their fail mode until it is back")).toHaveLength(1);
  }, 150_000);

  test("cluster down at start-up: no throw, one warning, operations fail fast, close works", async () => {
    const { log, lines } = memoryLogger();
    const store = open("strict", log, [`127.0.0.1:${freePort()}`]);
    expect(store.available).toBe(false);
    await expect(store.increment("k", 1, 1_000)).rejects.toBeInstanceOf(StoreUnavailableError);
    await waitFor("the start-up warning", () => lines().some((l) => l.level === "warn"), 20_000);
    await Bun.sleep(500);
    const warnings = lines().filter((l) => l.level === "warn");
    expect(warnings).toHaveLength(1);
    expect(String(warnings[0]!.msg)).toContain("cannot reach the Hazelcast cluster");
    await store.close();
    expect(store.available).toBe(false);
  });
});

/**
 * The node-wide shared table: counters, expiry, reuse, the full outcome and
 * compare-and-set words, in one process and across real processes sharing /dev/shm.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { resolve } from "node:path";
import { createNodeMemory, FULL, privateTable, type NodeMemory } from "../../src/shared/index.ts";
import { removeStaleSharedFiles, SHARED_MEMORY_ENV } from "../../src/shared/memory.ts";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

describe("shared table", () => {
  test("counters start at zero, add, and expire at the time fixed at creation", () => {
    const table = privateTable();
    expect(table.read("a", 1000)).toBeUndefined();
    expect(table.add("a", 1, 500, 1000)).toEqual({ value: 1, expiresAt: 1500 });
    expect(table.add("a", 2, 500, 1400)).toEqual({ value: 3, expiresAt: 1500 });
    expect(table.read("a", 1499)?.value).toBe(3);
    expect(table.read("a", 1500)).toBeUndefined();
    // A new life after expiry: counted from zero with a new expiry.
    expect(table.add("a", 1, 500, 1600)).toEqual({ value: 1, expiresAt: 2100 });
    // ttl 0: never expires.
    expect(table.add("forever", 5, 0, 1000)).toEqual({ value: 5, expiresAt: 0 });
    expect(table.read("forever", 10 ** 13)?.value).toBe(5);
  });

  test("keys are independent and delete frees a key", () => {
    const table = privateTable();
    for (let i = 0; i < 200; i++) table.add(`k${i}`, i, 0, 1);
    for (let i = 0; i < 200; i++) expect(table.read(`k${i}`, 1)?.value).toBe(i);
    table.delete("k7");
    expect(table.read("k7", 1)).toBeUndefined();
    expect(table.add("k7", 1, 0, 1)).toEqual({ value: 1, expiresAt: 0 });
  });

  test("a full table says so, and expired slots are reused", () => {
    const table = privateTable(16);
    for (let i = 0; i < 16; i++) expect(table.add(`key${i}`, 1, 100, 0)).not.toBe(FULL);
    expect(table.add("one-too-many", 1, 100, 50)).toBe(FULL);
    expect(table.compareAndSetWord("one-too-many", 0, 1, 0, 50)).toBe(FULL);
    expect(table.used(50)).toBe(16);
    // Once the others expire, their slots take new keys.
    expect(table.add("one-too-many", 1, 100, 100)).toEqual({ value: 1, expiresAt: 200 });
    expect(table.read("key3", 100)).toBeUndefined();
  });

  test("addIfBelow admits up to the limit", () => {
    const table = privateTable();
    const results = Array.from({ length: 5 }, () => table.addIfBelow("c", 1, 3, 0));
    expect(results.map((r) => (r === FULL ? "full" : r.admitted))).toEqual([true, true, true, false, false]);
    table.add("c", -1, 0);
    expect(table.addIfBelow("c", 1, 3, 0)).toMatchObject({ admitted: true, value: 3 });
  });

  test("compare-and-set words", () => {
    const table = privateTable();
    expect(table.readWord("w", 0)).toBe(0);
    expect(table.compareAndSetWord("w", 1, 2, 0, 0)).toBe(false);
    expect(table.compareAndSetWord("w", 0, 1_700_000_000_123, 1000, 0)).toBe(true);
    expect(table.readWord("w", 10)).toBe(1_700_000_000_123);
    expect(table.compareAndSetWord("w", 1_700_000_000_123, -5, 1000, 500)).toBe(true);
    expect(table.readWord("w", 1400)).toBe(-5);
    // The successful set at 500 moved the expiry to 1500.
    expect(table.readWord("w", 1500)).toBe(0);
  });
});

describe("shared memory across processes", () => {
  let memory: NodeMemory | null = null;
  afterEach(() => {
    memory?.remove();
    // createNodeMemory names the file in process.env for workers; gateways that later
    // tests start from this process must not inherit a removed file's name.
    delete process.env[SHARED_MEMORY_ENV];
  });

  test("four processes adding at once reach an exact total, and the bounded counter never overshoots", async () => {
    memory = createNodeMemory(4096);
    const child = resolve(import.meta.dir, "../shared/adder.ts");
    const processes = Array.from({ length: 4 }, () =>
      Bun.spawn(["bun", child, memory!.path, "20000", "5000"], { stdout: "pipe", stderr: "inherit" }),
    );
    const outputs = await Promise.all(processes.map(async (p) => (await p.exited, Number(await new Response(p.stdout).text()))));
    expect(memory.table.read("total")?.value).toBe(80_000);
    // 4 × 20,000 attempts against a bound of 5,000: exactly 5,000 admitted in all.
    expect(outputs.reduce((a, b) => a + b, 0)).toBe(5000);
    expect(memory.table.read("bounded")?.value).toBe(5000);
  });
});

test("files left by supervisors that no longer run are removed; others are kept", async () => {
  const folder = mkdtempSync(join(tmpdir(), "turnpike-shm-"));
  const gone = Bun.spawn(["true"]);
  await gone.exited;
  const stale = join(folder, `turnpike-${gone.pid}-abc123`);
  const live = join(folder, `turnpike-${process.pid}-def456`);
  const other = join(folder, "not-ours");
  for (const path of [stale, live, other]) writeFileSync(path, "");
  expect(removeStaleSharedFiles(folder)).toBe(1);
  expect([existsSync(stale), existsSync(live), existsSync(other)]).toEqual([false, true, true]);
});

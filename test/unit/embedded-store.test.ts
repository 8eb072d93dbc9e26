/** The embedded store passes the shared store suite, and its durable counters survive a restart. */
import { expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { privateTable } from "../../src/shared/index.ts";
import { compileEmbeddedSettings, EmbeddedStore } from "../../src/store/embedded/index.ts";
import { restoreDurableCounters } from "../../src/store/embedded/state-file.ts";
import { storeSuite } from "../store-suite.ts";

const dir = mkdtempSync(join(tmpdir(), "turnpike-store-"));
// Two stores over one table and one state file stand for two worker processes.
const table = privateTable(4096);
storeSuite("embedded", async () => new EmbeddedStore(compileEmbeddedSettings({ state_dir: dir }, "/"), table));

test("durable counters are written to the state file and restored into fresh memory; others are not", async () => {
  const stateDir = mkdtempSync(join(tmpdir(), "turnpike-durable-"));
  const settings = compileEmbeddedSettings({ state_dir: stateDir, flush_interval: "50ms" }, "/");
  const before = new EmbeddedStore(settings, privateTable(1024));
  await before.increment("durable/quota/alice/day", 7, 3_600_000);
  await before.increment("volatile/alice", 3, 3_600_000);
  await before.compareAndSetWord("durable/word", 0, 42, 3_600_000);
  await Bun.sleep(300); // written by the interval, not only on close
  const fresh = privateTable(1024);
  expect(restoreDurableCounters(stateDir, fresh)).toBe(2);
  const after = new EmbeddedStore(settings, fresh);
  expect(await after.count("durable/quota/alice/day")).toBe(7);
  expect(await after.readWord("durable/word")).toBe(42);
  expect(await after.count("volatile/alice")).toBe(0);
  // The restored window keeps its end.
  const next = await after.increment("durable/quota/alice/day", 1, 3_600_000);
  expect(next.count).toBe(8);
  expect(next.resetMs).toBeLessThanOrEqual(3_600_000);
  await before.close();
  await after.close();
});

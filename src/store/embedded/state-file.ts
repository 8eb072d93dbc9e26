/**
 * The embedded store's durable part: one SQLite file in the state directory, shared by
 * every process of the node (WAL mode, so readers never wait on the writer). It holds
 * values (with their expiry) and the last written state of durable counters and words
 * (keys starting with `durable/`), which are restored into node memory when the gateway
 * starts. Expired rows are removed as the file is written.
 */
import { Database } from "bun:sqlite";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { FULL, type SharedTable } from "../../shared/index.ts";

/** File name of the state database inside the state directory. */
export const STATE_FILE = "turnpike-state.db";

/** A durable counter/word as written to the file. */
export interface DurableEntry {
  key: string;
  value: number;
  word: number;
  /** ms since the epoch; 0: never. */
  expiresAt: number;
}

/** The state database, opened on first use. */
export class StateFile {
  readonly path: string;
  #db: Database | null = null;
  #statements: ReturnType<StateFile["prepare"]> | null = null;

  constructor(readonly directory: string) {
    this.path = join(directory, STATE_FILE);
  }

  get #open() {
    if (this.#statements) return this.#statements;
    mkdirSync(this.directory, { recursive: true });
    const db = new Database(this.path, { create: true });
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA busy_timeout = 5000");
    db.exec("PRAGMA synchronous = NORMAL");
    db.exec("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at INTEGER NOT NULL) WITHOUT ROWID");
    db.exec("CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL, word INTEGER NOT NULL, expires_at INTEGER NOT NULL) WITHOUT ROWID");
    this.#db = db;
    this.#statements = this.prepare(db);
    return this.#statements;
  }

  private prepare(db: Database) {
    return {
      get: db.query<{ value: string; expires_at: number }, [string]>("SELECT value, expires_at FROM kv WHERE key = ?"),
      set: db.query("INSERT INTO kv (key, value, expires_at) VALUES (?1, ?2, ?3) ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"),
      // Takes the key when absent or expired at ?4; `changes` says whether it did.
      setIfAbsent: db.query(
        "INSERT INTO kv (key, value, expires_at) VALUES (?1, ?2, ?3) ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at WHERE kv.expires_at != 0 AND kv.expires_at <= ?4",
      ),
      delete: db.query("DELETE FROM kv WHERE key = ?"),
      deleteCounter: db.query("DELETE FROM counters WHERE key = ?"),
      // A later window replaces an earlier one; within a window the larger count wins
      // (processes write what they last saw, which may lag behind another's).
      saveCounter: db.query(
        `INSERT INTO counters (key, value, word, expires_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT(key) DO UPDATE SET
           value = CASE WHEN excluded.expires_at != counters.expires_at THEN excluded.value ELSE max(counters.value, excluded.value) END,
           word = excluded.word, expires_at = excluded.expires_at`,
      ),
      purge: db.query("DELETE FROM kv WHERE expires_at != 0 AND expires_at <= ?1"),
      purgeCounters: db.query("DELETE FROM counters WHERE expires_at != 0 AND expires_at <= ?1"),
      live: db.query<{ key: string; value: number; word: number; expires_at: number }, [number]>(
        "SELECT key, value, word, expires_at FROM counters WHERE expires_at = 0 OR expires_at > ?1",
      ),
      db,
    };
  }

  get(key: string, now: number): string | undefined {
    const row = this.#open.get.get(key);
    if (!row || (row.expires_at !== 0 && row.expires_at <= now)) return undefined;
    return row.value;
  }

  set(key: string, value: string, expiresAt: number): void {
    this.#open.set.run(key, value, expiresAt);
  }

  setIfAbsent(key: string, value: string, expiresAt: number, now: number): boolean {
    return this.#open.setIfAbsent.run(key, value, expiresAt, now).changes === 1;
  }

  delete(key: string): void {
    const statements = this.#open;
    statements.delete.run(key);
    statements.deleteCounter.run(key);
  }

  /** Writes durable counters in one transaction and drops expired rows. */
  save(entries: DurableEntry[], now: number): void {
    const statements = this.#open;
    statements.db.transaction(() => {
      for (const entry of entries) statements.saveCounter.run(entry.key, entry.value, entry.word, entry.expiresAt);
      statements.purge.run(now);
      statements.purgeCounters.run(now);
    })();
  }

  /** Durable counters not yet expired at `now`. */
  liveCounters(now: number): DurableEntry[] {
    return this.#open.live.all(now).map((row) => ({ key: row.key, value: row.value, word: row.word, expiresAt: row.expires_at }));
  }

  close(): void {
    this.#db?.close();
    this.#db = null;
    this.#statements = null;
  }
}

/**
 * Loads the durable counters of a state directory into a fresh node table (the
 * supervisor does this once, before any worker starts). Returns how many; a directory
 * without a state file has none.
 */
export function restoreDurableCounters(directory: string, table: SharedTable, now = Date.now()): number {
  if (!existsSync(join(directory, STATE_FILE))) return 0;
  const file = new StateFile(directory);
  try {
    let restored = 0;
    for (const entry of file.liveCounters(now)) {
      const ttl = entry.expiresAt === 0 ? 0 : entry.expiresAt - now;
      if (table.add(entry.key, entry.value, ttl, now) === FULL) continue;
      if (entry.word !== 0) table.compareAndSetWord(entry.key, 0, entry.word, 0, now);
      restored++;
    }
    return restored;
  } finally {
    file.close();
  }
}

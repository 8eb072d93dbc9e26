/**
 * The audit log of the supervisor: one JSON line per control-plane change (today: every
 * config reload, successful or not), saying who asked, what happened, and which config
 * generation and text (SHA-256) were replaced by which.
 *
 * Written to stderr or to the file of `observability.audit_log.path`, one
 * `appendFileSync` per record (records are rare; a rotated file is followed at once).
 * A file that cannot be written sends the record to stderr instead, so none is lost.
 */
import { appendFileSync } from "node:fs";
import type { AuditLogConfig } from "./logs-config.ts";

/** Who asked for a change. */
export type AuditActor =
  | { type: "signal"; signal: string }
  | { type: "admin_api"; address: string | null }
  | { type: "file_watch"; file: string };

/** One audit record (the time is added when it is written). */
export interface AuditRecord {
  action: "reload";
  who: AuditActor;
  /** Others whose requests were served by the same reload (asked while another ran). */
  also_requested_by?: AuditActor[];
  result: "ok" | "failed";
  errors?: string[];
  old_generation: number;
  new_generation: number;
  /** SHA-256 (hex) of the config text before and of the text read for the reload; null when none was read. */
  old_config_sha256: string | null;
  new_config_sha256: string | null;
}

/** At most this many errors of a failed reload are kept in its record. */
const MAX_ERRORS = 20;

/** The audit log of one supervisor. */
export class AuditLog {
  #enabled = true;
  #path: string | null = null;
  #failing = false;

  /** Applies `observability.audit_log` of the config in force. */
  configure(config: AuditLogConfig | undefined): void {
    this.#enabled = config?.enabled ?? true;
    this.#path = config?.path && config.path !== "stderr" ? config.path : null;
  }

  /** Writes one record; never throws. */
  record(record: AuditRecord): void {
    if (!this.#enabled) return;
    const errors = record.errors && record.errors.length > MAX_ERRORS ? [...record.errors.slice(0, MAX_ERRORS), `… ${record.errors.length - MAX_ERRORS} more`] : record.errors;
    const line = JSON.stringify({ time: new Date().toISOString(), log: "audit", ...record, errors }) + "\n";
    const path = this.#path;
    if (path !== null) {
      try {
        appendFileSync(path, line);
        this.#failing = false;
        return;
      } catch (error) {
        if (!this.#failing) {
          this.#failing = true;
          const reason = (error as NodeJS.ErrnoException).code ?? String(error);
          process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: "warn", msg: "audit log cannot be written; writing to stderr until it can", path, reason }) + "\n");
        }
      }
    }
    process.stderr.write(line);
  }
}

/** SHA-256 (hex) of a config text, null for none. */
export function configHash(text: string | null): string | null {
  if (text === null) return null;
  return new Bun.CryptoHasher("sha256").update(text).digest("hex");
}

/**
 * Where a process's own log lines go: stderr, or a file named by
 * `observability.error_log.path`, at `observability.error_log.level` and above.
 *
 * Each line is appended with its own open/append/close (`appendFileSync`): these lines
 * are rare next to requests, and a renamed file is followed at the next line without a
 * signal. If the file cannot be written the line goes to stderr instead (said once).
 */
import { appendFileSync } from "node:fs";
import { environmentLogLevel, type LogLevel } from "./logger.ts";
import type { ErrorLogConfig } from "./logs-config.ts";

/** The error log destination of one process; hand `level` and `write` to `createLogger`. */
export class ErrorLogOutput {
  #path: string | null = null;
  #level: LogLevel | null = null;
  #failing = false;

  /** The lowest level written. */
  readonly level = (): LogLevel => this.#level ?? environmentLogLevel();

  /** Writes one line (with its newline). */
  readonly write = (line: string): void => {
    const path = this.#path;
    if (path !== null) {
      try {
        appendFileSync(path, line);
        this.#failing = false;
        return;
      } catch (error) {
        if (!this.#failing) {
          this.#failing = true;
          process.stderr.write(
            JSON.stringify({
              time: new Date().toISOString(),
              level: "warn",
              msg: "error log cannot be written; writing to stderr until it can",
              path,
              reason: (error as NodeJS.ErrnoException).code ?? String(error),
              pid: process.pid,
            }) + "\n",
          );
        }
      }
    }
    process.stderr.write(line);
  };

  /** Applies `observability.error_log` of a new config generation. */
  configure(config: ErrorLogConfig | undefined): void {
    this.#path = config?.path && config.path !== "stderr" ? config.path : null;
    this.#level = config?.level ?? null;
    this.#failing = false;
  }
}

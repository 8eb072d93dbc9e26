/**
 * Structured logs: one JSON object per line on stderr, so a supervisor and its
 * workers can share one stream and tools can parse it.
 */

export type LogLevel = "debug" | "info" | "warn" | "error";

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** A logger with fixed fields (e.g. role and pid) added to every line. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

/** The level from TURNPIKE_LOG_LEVEL, else `info`. */
export function environmentLogLevel(): LogLevel {
  const level = process.env.TURNPIKE_LOG_LEVEL as LogLevel | undefined;
  return level !== undefined && Object.hasOwn(ORDER, level) ? level : "info";
}

/**
 * Creates a logger writing to `write` (stderr by default) at `level` and above. `level`
 * may be a function, read at every line, when it can change (the `error_log` config).
 */
export function createLogger(
  base: Record<string, unknown> = {},
  level: LogLevel | (() => LogLevel) = environmentLogLevel(),
  write: (line: string) => void = (line) => process.stderr.write(line),
): Logger {
  const fixed = typeof level === "function" ? 0 : (ORDER[level] ?? ORDER.info);
  const emit = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    const threshold = typeof level === "function" ? (ORDER[level()] ?? ORDER.info) : fixed;
    if (ORDER[lvl] < threshold) return;
    const record: Record<string, unknown> = { time: new Date().toISOString(), level: lvl, msg, ...base, ...fields };
    if (record.error instanceof Error) record.error = record.error.message;
    write(JSON.stringify(record) + "\n");
  };
  return {
    debug: (msg, fields) => emit("debug", msg, fields),
    info: (msg, fields) => emit("info", msg, fields),
    warn: (msg, fields) => emit("warn", msg, fields),
    error: (msg, fields) => emit("error", msg, fields),
    child: (fields) => createLogger({ ...base, ...fields }, level, write),
  };
}

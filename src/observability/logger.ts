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

/** Creates a logger writing to `write` (stderr by default) at `level` and above. */
export function createLogger(
  base: Record<string, unknown> = {},
  level: LogLevel = (process.env.TURNPIKE_LOG_LEVEL as LogLevel) ?? "info",
  write: (line: string) => void = (line) => process.stderr.write(line),
): Logger {
  const threshold = ORDER[level] ?? ORDER.info;
  const emit = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>) => {
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

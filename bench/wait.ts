/** Waiting, bounded in time, for a started process to become usable. */
import type { Subprocess } from "bun";
import { existsSync, readFileSync } from "node:fs";

/** The last `lines` lines of a log file, or a note that it is empty or missing. */
export function tailOf(path: string, lines = 30): string {
  if (!existsSync(path)) return `(no ${path})`;
  const text = readFileSync(path, "utf8").trimEnd();
  return text ? text.split("\n").slice(-lines).join("\n") : `(${path} is empty)`;
}

/**
 * Calls `probe` every 50 ms until it returns true. Fails when `child` exits first or
 * `timeoutMs` passes, quoting the end of `logPath`. A probe that throws (e.g. connection
 * refused) counts as not ready yet.
 */
export async function waitUntil(
  label: string,
  timeoutMs: number,
  child: Subprocess,
  logPath: string,
  probe: () => Promise<boolean>,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${label} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${tailOf(logPath)}`);
    }
    try {
      if (await probe()) return;
    } catch {
      // not listening yet
    }
    await Bun.sleep(50);
  }
  throw new Error(`${label} not ready within ${timeoutMs / 1000} s:\n${tailOf(logPath)}`);
}

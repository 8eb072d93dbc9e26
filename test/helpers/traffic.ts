/**
 * Test helpers for traffic management: an upstream whose answers the test holds back,
 * `turnpike validate` on a config text, and bounded polling.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY } from "./gateway.ts";
import { startUpstream, type TestUpstream } from "./upstream.ts";

/** An upstream that holds every request until `open()` is called. */
export interface GatedUpstream extends TestUpstream {
  /** Requests that arrived and wait at the gate. */
  readonly waiting: number;
  /** Lets every waiting (and later) request through until `close()`. */
  open(): void;
  /** Makes later requests wait again. */
  close(): void;
}

/** Starts an upstream that answers `name` (its identity) once the gate opens. */
export function startGatedUpstream(name = "gated"): GatedUpstream {
  let gate = Promise.withResolvers<void>();
  let waiting = 0;
  const upstream = startUpstream(async () => {
    waiting++;
    await gate.promise;
    waiting--;
    return new Response(name);
  });
  return {
    ...upstream,
    get waiting() {
      return waiting;
    },
    open: () => gate.resolve(),
    close: () => {
      gate = Promise.withResolvers<void>();
    },
  };
}

/** Waits until `check()` holds, polling; throws with `what` after `timeoutMs`. */
export async function eventually(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(10);
  }
}

/** Runs `turnpike validate` on `text`; returns exit code, stderr lines and the file path. */
export function validateConfig(text: string): { code: number; lines: string[]; path: string } {
  const dir = mkdtempSync(join(tmpdir(), "turnpike-validate-"));
  const path = join(dir, "turnpike.yaml");
  writeFileSync(path, text);
  const run = Bun.spawnSync([BINARY, "validate", path], { stdio: ["ignore", "pipe", "pipe"] });
  return { code: run.exitCode, lines: run.stderr.toString().trimEnd().split("\n"), path };
}

/** 1-based line of the `nth` line of `text` that contains `marker`. */
export function lineOf(text: string, marker: string, nth = 1): number {
  const lines = text.split("\n");
  let seen = 0;
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.includes(marker) && ++seen === nth) return i + 1;
  }
  throw new Error(`no line ${nth} with ${marker}`);
}

/**
 * Test helper: a real Hazelcast member on loopback, run through scripts/hazelcast.sh
 * (which fetches the jar with Maven once into .cache/hazelcast). Start one member per
 * test file: a start takes a few seconds.
 *
 * Tests that need it use `describe.skipIf(hazelcastMissing !== null)`: with no java (or
 * no jar and no mvn to fetch it) they are counted as skipped and say why on stderr.
 */
import type { Subprocess } from "bun";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { freePort } from "./gateway.ts";

const ROOT = resolve(import.meta.dir, "../..");
const SCRIPT = resolve(ROOT, "scripts/hazelcast.sh");
const JAR = resolve(ROOT, ".cache/hazelcast/hazelcast-5.7.0.jar");

/** Why Hazelcast tests cannot run here, or null when they can. */
export const hazelcastMissing: string | null = !Bun.which("java")
  ? "java is not installed"
  : !existsSync(JAR) && !Bun.which("mvn")
    ? "mvn is not installed and the Hazelcast jar is not cached"
    : null;

if (hazelcastMissing !== null) {
  process.stderr.write(`\n*** SKIPPING Hazelcast tests: ${hazelcastMissing} (install a JDK and Maven to run them) ***\n\n`);
}

/** A running member. */
export interface Member {
  port: number;
  /** `127.0.0.1:<port>` */
  address: string;
  /** Everything the member printed. */
  logs(): string;
  /** Kills the member at once (SIGKILL), as a crash would. */
  kill(): Promise<void>;
  /** Starts the member again on the same port (after kill or stop); its data is gone. */
  restart(): Promise<void>;
  /** Stops the member (SIGTERM) and waits for it. */
  stop(): Promise<void>;
  /** Freezes the member (SIGSTOP): it keeps its connections but answers nothing. */
  pause(): void;
  /** Lets a frozen member run again (SIGCONT). */
  resume(): void;
}

/** Fetches the jar if needed (bounded by the script's timeout); throws with Maven's output on failure. */
export function fetchHazelcast(): void {
  if (existsSync(JAR)) return;
  const result = Bun.spawnSync([SCRIPT, "fetch"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], timeout: 320_000 });
  if (result.exitCode !== 0) throw new Error(`scripts/hazelcast.sh fetch failed:\n${result.stdout}\n${result.stderr}`);
}

/** Starts a member on `port` (default: a free one) and waits until it serves (at most 90 s). */
export async function startMember(port = freePort()): Promise<Member> {
  fetchHazelcast();
  let output = "";
  let proc: Subprocess<"ignore", "pipe", "pipe"> | null = null;

  const launch = async () => {
    output = "";
    const child = Bun.spawn([SCRIPT, "run", "--port", String(port)], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    proc = child;
    const collect = async (stream: ReadableStream<Uint8Array>) => {
      const decoder = new TextDecoder();
      for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) output += decoder.decode(chunk, { stream: true });
    };
    void collect(child.stdout);
    void collect(child.stderr);
    const deadline = performance.now() + 90_000;
    while (performance.now() < deadline) {
      if (output.includes("is STARTED")) return;
      if (child.exitCode !== null) throw new Error(`Hazelcast member exited with ${child.exitCode}:\n${output}`);
      await Bun.sleep(50);
    }
    child.kill("SIGKILL");
    throw new Error(`Hazelcast member not started within 90 s:\n${output}`);
  };

  const waitExit = async (signal: "SIGKILL" | "SIGTERM") => {
    const child = proc;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    const exited = await Promise.race([child.exited.then(() => true), Bun.sleep(30_000).then(() => false)]);
    if (!exited) {
      child.kill("SIGKILL");
      await child.exited;
    }
  };

  await launch();
  return {
    port,
    address: `127.0.0.1:${port}`,
    logs: () => output,
    kill: () => waitExit("SIGKILL"),
    restart: launch,
    stop: async () => {
      (proc as Subprocess | null)?.kill("SIGCONT");
      await waitExit("SIGTERM");
    },
    pause: () => (proc as Subprocess | null)?.kill("SIGSTOP"),
    resume: () => (proc as Subprocess | null)?.kill("SIGCONT"),
  };
}

/**
 * The Hazelcast member of the cluster-mode scenarios: `scripts/hazelcast.sh run` (which
 * fetches the jar with Maven once), on a free loopback port, stopped with the bench.
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Processes } from "./processes.ts";
import { waitUntil } from "./wait.ts";

const SCRIPT = resolve(import.meta.dir, "../scripts/hazelcast.sh");

/** A running member. */
export interface BenchMember {
  /** `127.0.0.1:<port>` */
  address: string;
  /** The java process (the script execs it). */
  pid: number;
}

/** Starts a member and waits until it serves (the first fetch may take a few minutes). */
export async function startMember(processes: Processes, dir: string, port: number): Promise<BenchMember> {
  if (!Bun.which("java")) throw new Error("the hazelcast scenarios need java (a JDK 17+) to run a Hazelcast member");
  const fetch = Bun.spawnSync([SCRIPT, "fetch"], { stdio: ["ignore", "inherit", "inherit"], timeout: 320_000 });
  if (fetch.exitCode !== 0) throw new Error("scripts/hazelcast.sh fetch failed (see above)");
  const log = join(dir, "hazelcast-member.log");
  const child = processes.spawn("hazelcast-member", [SCRIPT, "run", "--port", String(port)], {
    stdout: Bun.file(log),
    stderr: Bun.file(join(dir, "hazelcast-member.err")),
  });
  await waitUntil("the Hazelcast member", 90_000, child, log, async () => {
    const errors = join(dir, "hazelcast-member.err");
    const text = (existsSync(log) ? await Bun.file(log).text() : "") + (existsSync(errors) ? await Bun.file(errors).text() : "");
    return text.includes("is STARTED");
  });
  return { address: `127.0.0.1:${port}`, pid: child.pid };
}

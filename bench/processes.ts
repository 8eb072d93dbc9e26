/**
 * The processes the benchmark starts, so that every one of them is stopped on the way
 * out (normal end, error or Ctrl-C), and what /proc says about a process: CPU time,
 * memory and children.
 */
import type { Subprocess } from "bun";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

type Stdio = "ignore" | "pipe" | "inherit" | ReturnType<typeof Bun.file>;

/** A process started by the benchmark, with how to stop it. */
interface Tracked {
  name: string;
  child: Subprocess;
  /** Signal that asks it to stop. */
  stopSignal: NodeJS.Signals;
  /** Processes it started that must go too (pid and the executable they run). */
  descendants: { pid: number; exe: string }[];
}

/** Every process the benchmark started and has not yet stopped. */
export class Processes {
  readonly #tracked: Tracked[] = [];

  /** Starts `argv` and remembers it. */
  spawn(
    name: string,
    argv: string[],
    options: { stdout?: Stdio; stderr?: Stdio; cwd?: string; env?: Record<string, string | undefined>; stopSignal?: NodeJS.Signals } = {},
  ): Subprocess {
    const child = Bun.spawn(argv, {
      cwd: options.cwd,
      env: options.env,
      stdin: "ignore",
      stdout: options.stdout ?? "ignore",
      stderr: options.stderr ?? "ignore",
    });
    this.#tracked.push({ name, child, stopSignal: options.stopSignal ?? "SIGTERM", descendants: [] });
    return child;
  }

  /** Records a process started by `parent` (e.g. a Turnpike worker) so it is stopped with it. */
  adopt(parent: Subprocess, pid: number): void {
    const entry = this.#tracked.find((t) => t.child === parent);
    const exe = executableOf(pid);
    if (entry && exe) entry.descendants.push({ pid, exe });
  }

  /** Forgets a process that has already exited. */
  forget(child: Subprocess): void {
    const index = this.#tracked.findIndex((t) => t.child === child);
    if (index >= 0) this.#tracked.splice(index, 1);
  }

  /**
   * Stops one process: its stop signal, then SIGKILL after `graceMs`; then any
   * recorded descendant still running the same executable gets SIGKILL too.
   */
  async stop(child: Subprocess, graceMs = 5_000): Promise<void> {
    const entry = this.#tracked.find((t) => t.child === child);
    if (!entry) return;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(entry.stopSignal);
      const exited = await Promise.race([child.exited.then(() => true), Bun.sleep(graceMs).then(() => false)]);
      if (!exited) {
        child.kill("SIGKILL");
        await Promise.race([child.exited, Bun.sleep(2_000)]);
      }
    }
    // A worker needs a moment to notice its supervisor went away; then it is killed.
    for (const { pid, exe } of entry.descendants) {
      const deadline = performance.now() + graceMs;
      while (executableOf(pid) === exe && performance.now() < deadline) await Bun.sleep(50);
      if (executableOf(pid) === exe) killQuietly(pid, "SIGKILL");
    }
    this.forget(child);
  }

  /** Stops everything still running, most recently started first. */
  async stopAll(): Promise<void> {
    for (const entry of [...this.#tracked].reverse()) await this.stop(entry.child);
  }

  /** Last resort from a synchronous exit handler: SIGKILL to everything still known. */
  killAllNow(): void {
    for (const entry of this.#tracked) {
      if (entry.child.exitCode === null && entry.child.signalCode === null) killQuietly(entry.child.pid, "SIGKILL");
      for (const { pid, exe } of entry.descendants) if (executableOf(pid) === exe) killQuietly(pid, "SIGKILL");
    }
  }
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** The executable a live process runs, or null when it is gone. */
function executableOf(pid: number): string | null {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return null;
  }
}

/** Clock ticks per second of /proc CPU times (`getconf CLK_TCK`; 100 on Linux). */
export function clockTicksPerSecond(): number {
  const result = Bun.spawnSync(["getconf", "CLK_TCK"], { stdout: "pipe", stderr: "ignore" });
  const value = Number(result.stdout.toString().trim());
  return Number.isInteger(value) && value > 0 ? value : 100;
}

/**
 * CPU time used so far by a process, all its threads together: utime + stime from
 * /proc/<pid>/stat, in clock ticks.
 */
export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) is in parentheses and may contain spaces: count from
  // the last ')'. After it come field 3 (state) onward, so utime (14) is index 11.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

/**
 * CPU time of the whole machine so far, in clock ticks, from the first line of
 * /proc/stat: `busy` is user + nice + system + irq + softirq (guest time is inside
 * user time); `stolen` is time the hypervisor gave the virtual CPUs to someone else.
 */
export function machineTicks(): { busy: number; stolen: number } {
  const first = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!;
  const [user, nice, system, _idle, _iowait, irq, softirq, steal] = first.trim().split(/\s+/).slice(1).map(Number);
  return { busy: user! + nice! + system! + irq! + softirq!, stolen: steal ?? 0 };
}

/** Memory figures of a process from /proc/<pid>/status, in KiB. */
export function memoryKiB(pid: number): { rss: number; peakRss: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const read = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN);
  return { rss: read("VmRSS"), peakRss: read("VmHWM") };
}

/** PIDs whose parent is `pid` (what `pgrep -P` gives), from /proc/<n>/stat. */
export function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (parent === pid) children.push(Number(name));
    } catch {
      // exited while we looked
    }
  }
  return children;
}

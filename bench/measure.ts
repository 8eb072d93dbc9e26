/**
 * One measured run: warm up, read the CPU time of the processes of interest, load the
 * proxy with wrk, read the CPU time again, and divide by the requests wrk completed.
 */
import { cpuTicks, machineTicks, type Processes } from "./processes.ts";
import { errorCount, runWrk, type WrkReport } from "./wrk.ts";

/** A process whose CPU time is read around a run. */
export interface Watched {
  /** Short name used in results ("proxy", "upstream", "supervisor"). */
  name: string;
  pid: number;
}

/** CPU used by one watched process during a run. */
export interface CpuUse {
  /** Microseconds of CPU time (user + system, all threads). */
  microseconds: number;
  /** Microseconds of CPU time per completed request. */
  perRequest: number;
  /** Average cores busy: CPU time / wall time of the run. */
  cores: number;
}

/** The outcome of one measured run. */
export interface Measurement {
  url: string;
  wrk: WrkReport;
  /** Wall time between the two CPU readings, seconds. */
  wallSeconds: number;
  /** Watched process name → its CPU use. */
  cpu: Record<string, CpuUse>;
  /** Errors wrk saw (bad statuses and socket errors); a run with any is suspect. */
  errors: number;
  /** Average cores wrk itself kept busy. */
  wrkCores: number;
  /**
   * Average cores busy with anything else: the machine's busy time (/proc/stat) less
   * the watched processes, wrk and this harness. Kernel work not charged to a process
   * (some of the loopback network stack) lands here too, so it is never quite 0;
   * well above 0.1 means other programs competed for the CPU and the throughput and
   * latency figures of this run are disturbed.
   */
  otherCores: number;
  /** Average cores taken away by the hypervisor (steal time); above 0.05 disturbs the run too. */
  stolenCores: number;
}

/** How wrk loads each proxy. */
export interface LoadSettings {
  wrk: string;
  threads: number;
  connections: number;
  durationSeconds: number;
  warmupSeconds: number;
  clockTicksPerSecond: number;
}

/** Warms up `url`, then measures it while reading the CPU time of `watched`. */
export async function measure(
  url: string,
  watched: readonly Watched[],
  load: LoadSettings,
  processes: Processes,
  /** Called after the warm-up, just before the CPU readings and the measured wrk run. */
  beforeRun?: () => void,
  /** Request headers sent with every request (e.g. credentials). */
  headers?: Record<string, string>,
): Promise<Measurement> {
  const run = { url, threads: load.threads, connections: load.connections, headers };
  if (load.warmupSeconds > 0) {
    await runWrk(load.wrk, { ...run, durationSeconds: load.warmupSeconds }, processes);
    // Let connections the warm-up left behind close before the clock starts.
    await Bun.sleep(250);
  }
  beforeRun?.();
  const before = watched.map((w) => cpuTicks(w.pid));
  const machineBefore = machineTicks();
  const harnessBefore = process.cpuUsage();
  const startedAt = performance.now();
  const { report, wrkCpuMicroseconds } = await runWrk(load.wrk, { ...run, durationSeconds: load.durationSeconds }, processes);
  const wallSeconds = (performance.now() - startedAt) / 1000;
  const harness = process.cpuUsage(harnessBefore);
  const machineAfter = machineTicks();
  const ticksToMicroseconds = (ticks: number) => (ticks / load.clockTicksPerSecond) * 1e6;
  const machineMicroseconds = ticksToMicroseconds(machineAfter.busy - machineBefore.busy);
  const after = watched.map((w) => cpuTicks(w.pid));

  const cpu: Record<string, CpuUse> = {};
  watched.forEach((w, i) => {
    const microseconds = ticksToMicroseconds(after[i]! - before[i]!);
    cpu[w.name] = {
      microseconds,
      perRequest: report.requests > 0 ? microseconds / report.requests : Number.NaN,
      cores: microseconds / 1e6 / wallSeconds,
    };
  });
  const accounted = Object.values(cpu).reduce((sum, use) => sum + use.microseconds, 0) + wrkCpuMicroseconds + harness.user + harness.system;
  return {
    url,
    wrk: report,
    wallSeconds,
    cpu,
    errors: errorCount(report),
    wrkCores: wrkCpuMicroseconds / 1e6 / wallSeconds,
    otherCores: Math.max(0, machineMicroseconds - accounted) / 1e6 / wallSeconds,
    stolenCores: ticksToMicroseconds(machineAfter.stolen - machineBefore.stolen) / 1e6 / wallSeconds,
  };
}

/**
 * Runs wrk and reads its report: requests completed, requests per second, latency
 * percentiles from the `--latency` distribution, and any errors.
 */
import type { Processes } from "./processes.ts";

/** What one wrk run reported. Latencies are in microseconds. */
export interface WrkReport {
  /** Requests completed during the run. */
  requests: number;
  /** Seconds wrk says the run took. */
  seconds: number;
  requestsPerSecond: number;
  latencyAverageUs: number;
  latencyMaxUs: number;
  /** Percentile (50, 75, 90, 99) → latency in microseconds. */
  latencyPercentilesUs: Record<string, number>;
  /** Responses with a status outside 2xx/3xx. */
  non2xx3xx: number;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
}

/** Settings of one wrk run. */
export interface WrkRun {
  url: string;
  threads: number;
  connections: number;
  durationSeconds: number;
  /** Request headers sent with every request (e.g. credentials). */
  headers?: Record<string, string>;
}

const UNIT_US: Record<string, number> = { us: 1, ms: 1_000, s: 1_000_000, m: 60_000_000, h: 3_600_000_000 };

/** "1.23ms" → 1230 (microseconds); NaN when the text is not a wrk duration. */
export function parseWrkDuration(text: string): number {
  const found = /^([0-9.]+)(us|ms|s|m|h)$/.exec(text.trim());
  if (!found) return Number.NaN;
  return Number(found[1]) * UNIT_US[found[2]!]!;
}

/** Parses wrk's text report (run with --latency). Throws when a required line is missing. */
export function parseWrkReport(output: string): WrkReport {
  const totals = /^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m|h),/m.exec(output);
  const rate = /^Requests\/sec:\s+([0-9.]+)/m.exec(output);
  const latency = /^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)/m.exec(output);
  if (!totals || !rate || !latency) {
    throw new Error(`wrk output not understood:\n${output}`);
  }
  const percentiles: Record<string, number> = {};
  const distribution = output.split(/Latency Distribution/)[1] ?? "";
  for (const line of distribution.split("\n")) {
    const found = /^\s*([0-9.]+)%\s+(\S+)\s*$/.exec(line);
    if (found) percentiles[String(Number(found[1]))] = parseWrkDuration(found[2]!);
  }
  if (percentiles["50"] === undefined || percentiles["99"] === undefined) {
    throw new Error(`wrk output has no latency distribution (run with --latency):\n${output}`);
  }
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(output);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  return {
    requests: Number(totals[1]),
    seconds: parseWrkDuration(`${totals[2]}${totals[3]}`) / 1e6,
    requestsPerSecond: Number(rate[1]),
    latencyAverageUs: parseWrkDuration(latency[1]!),
    latencyMaxUs: parseWrkDuration(latency[3]!),
    latencyPercentilesUs: percentiles,
    non2xx3xx: non2xx ? Number(non2xx[1]) : 0,
    socketErrors: {
      connect: socket ? Number(socket[1]) : 0,
      read: socket ? Number(socket[2]) : 0,
      write: socket ? Number(socket[3]) : 0,
      timeout: socket ? Number(socket[4]) : 0,
    },
  };
}

/** Total errors of a report (bad statuses and socket errors). */
export function errorCount(report: WrkReport): number {
  const s = report.socketErrors;
  return report.non2xx3xx + s.connect + s.read + s.write + s.timeout;
}

/** A finished wrk run: its report and the CPU time wrk itself used (microseconds). */
export interface WrkOutcome {
  report: WrkReport;
  wrkCpuMicroseconds: number;
}

/**
 * Runs wrk to completion and returns its parsed report. wrk is killed if it runs
 * 20 s past its own duration, so a stuck run cannot hang the benchmark.
 */
export async function runWrk(wrkPath: string, run: WrkRun, processes: Processes): Promise<WrkOutcome> {
  const args = [
    wrkPath,
    `-t${run.threads}`,
    `-c${run.connections}`,
    `-d${run.durationSeconds}s`,
    "--latency",
    ...Object.entries(run.headers ?? {}).flatMap(([name, value]) => ["-H", `${name}: ${value}`]),
    run.url,
  ];
  const child = processes.spawn("wrk", args, { stdout: "pipe", stderr: "pipe" });
  const limitMs = (run.durationSeconds + 20) * 1000;
  const timer = setTimeout(() => child.kill("SIGKILL"), limitMs);
  try {
    const [stdout, stderr, code] = await Promise.all([
      new Response(child.stdout as ReadableStream<Uint8Array>).text(),
      new Response(child.stderr as ReadableStream<Uint8Array>).text(),
      child.exited,
    ]);
    if (child.signalCode === "SIGKILL") throw new Error(`wrk did not finish within ${limitMs / 1000} s`);
    if (code !== 0) throw new Error(`wrk exited with ${code}:\n${stdout}${stderr}`);
    const usage = child.resourceUsage();
    return { report: parseWrkReport(stdout), wrkCpuMicroseconds: usage ? Number(usage.cpuTime.total) : Number.NaN };
  } finally {
    clearTimeout(timer);
    processes.forget(child);
  }
}

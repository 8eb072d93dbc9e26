/**
 * Settings of one benchmark run, from command-line arguments and environment
 * variables (arguments win). Durations are whole seconds (wrk takes no fractions).
 *
 *     bun run bench                                  # 10 s per measured run, 50 connections
 *     bun run bench -- --quick                       # 3 s runs, 1 s warm-up
 *     bun run bench -- --duration 20 --connections 100 --scenarios plain
 *     BENCH_DURATION=5 BENCH_CONNECTIONS=20 bun run bench
 */

/** Everything a run can be told. */
export interface BenchOptions {
  /** Length of each measured wrk run, in seconds. */
  durationSeconds: number;
  /** Length of the warm-up wrk run before each measured one, in seconds (0 skips it). */
  warmupSeconds: number;
  /** wrk connections (-c). */
  connections: number;
  /** wrk threads (-t). */
  threads: number;
  /**
   * Times each scenario is measured on each proxy, alternating nginx and Turnpike;
   * the run with the median CPU per request is reported (all are kept in the JSON).
   */
  rounds: number;
  /** Names of the scenarios to run, in order. */
  scenarios: string[];
  /** True with --quick: short runs, result files marked "quick". */
  quick: boolean;
  /** Build dist/turnpike even when it exists. */
  rebuild: boolean;
  /** Write result files under this folder; null with --no-save. */
  resultsDir: string | null;
}

export const USAGE = `Usage: bun run bench [-- options]

Starts an nginx upstream, nginx as a reference proxy and Turnpike (--workers 1), loads
each with wrk on 127.0.0.1 and prints throughput, latency and CPU per request.

Options (environment variable in brackets):
  --quick               3 s runs with 1 s warm-up (a smoke test; numbers are rougher)
  --duration S          seconds per measured run, default 10          [BENCH_DURATION]
  --warmup S            seconds of warm-up before each run, default 2 [BENCH_WARMUP]
  --connections N       wrk connections, default 50                   [BENCH_CONNECTIONS]
  --threads N           wrk threads, default 1                        [BENCH_THREADS]
  --rounds N            measure each proxy N times, alternating, and report the
                        run with the median CPU per request, default 1 [BENCH_ROUNDS]
  --scenarios a,b       scenarios to run, default all (bun bench/run.ts --help lists them)  [BENCH_SCENARIOS]
  --rebuild             run 'bun run build' even if dist/turnpike exists
  --results DIR         folder for the result files, default bench/results
  --no-save             print only, write no result files
  --help                this text
`;

/** Thrown for a bad argument; the message is meant for the user. */
export class UsageError extends Error {}

/**
 * Parses `argv` (without the runtime and script) and `env` into options.
 * `knownScenarios` lists the valid scenario names; `defaultResultsDir` is used unless
 * --results or --no-save is given. Returns null when --help was asked for.
 */
export function parseOptions(
  argv: readonly string[],
  env: Record<string, string | undefined>,
  knownScenarios: readonly string[],
  defaultResultsDir: string,
): BenchOptions | null {
  const options: BenchOptions = {
    durationSeconds: 10,
    warmupSeconds: 2,
    connections: 50,
    threads: 1,
    rounds: 1,
    scenarios: [...knownScenarios],
    quick: false,
    rebuild: false,
    resultsDir: defaultResultsDir,
  };
  // --quick sets short defaults that explicit values may still override, so it is
  // looked for first.
  if (argv.includes("--quick") || env.BENCH_QUICK === "1") {
    options.quick = true;
    options.durationSeconds = 3;
    options.warmupSeconds = 1;
  }
  if (env.BENCH_DURATION) options.durationSeconds = positiveSeconds("BENCH_DURATION", env.BENCH_DURATION);
  if (env.BENCH_WARMUP) options.warmupSeconds = nonNegativeSeconds("BENCH_WARMUP", env.BENCH_WARMUP);
  if (env.BENCH_CONNECTIONS) options.connections = positiveInteger("BENCH_CONNECTIONS", env.BENCH_CONNECTIONS);
  if (env.BENCH_THREADS) options.threads = positiveInteger("BENCH_THREADS", env.BENCH_THREADS);
  if (env.BENCH_ROUNDS) options.rounds = positiveInteger("BENCH_ROUNDS", env.BENCH_ROUNDS);
  if (env.BENCH_SCENARIOS) options.scenarios = scenarioList(env.BENCH_SCENARIOS, knownScenarios);

  for (let i = 0; i < argv.length; i++) {
    const raw = argv[i]!;
    const equals = raw.indexOf("=");
    const name = equals > 0 ? raw.slice(0, equals) : raw;
    const value = (): string => {
      if (equals > 0) return raw.slice(equals + 1);
      const next = argv[++i];
      if (next === undefined) throw new UsageError(`${name} needs a value`);
      return next;
    };
    switch (name) {
      case "--help":
      case "-h":
        return null;
      case "--quick":
        break;
      case "--duration":
        options.durationSeconds = positiveSeconds(name, value());
        break;
      case "--warmup":
        options.warmupSeconds = nonNegativeSeconds(name, value());
        break;
      case "--connections":
        options.connections = positiveInteger(name, value());
        break;
      case "--threads":
        options.threads = positiveInteger(name, value());
        break;
      case "--rounds":
        options.rounds = positiveInteger(name, value());
        break;
      case "--scenarios":
        options.scenarios = scenarioList(value(), knownScenarios);
        break;
      case "--rebuild":
        options.rebuild = true;
        break;
      case "--results":
        options.resultsDir = value();
        break;
      case "--no-save":
        options.resultsDir = null;
        break;
      default:
        throw new UsageError(`unknown option ${raw}`);
    }
  }
  if (options.threads > options.connections) {
    throw new UsageError(`--threads (${options.threads}) cannot exceed --connections (${options.connections})`);
  }
  if (options.rounds > 20) throw new UsageError("--rounds is capped at 20");
  if (options.durationSeconds > 600) throw new UsageError("--duration is capped at 600 seconds");
  if (options.warmupSeconds > 120) throw new UsageError("--warmup is capped at 120 seconds");
  return options;
}

function positiveSeconds(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) throw new UsageError(`${name} must be a whole number of seconds above 0, got "${text}"`);
  return value;
}

function nonNegativeSeconds(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0) throw new UsageError(`${name} must be a whole number of seconds (0 or more), got "${text}"`);
  return value;
}

function positiveInteger(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1 || value > 10_000) throw new UsageError(`${name} must be an integer from 1 to 10000, got "${text}"`);
  return value;
}

function scenarioList(text: string, known: readonly string[]): string[] {
  const names = text.split(",").map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw new UsageError("no scenario given");
  for (const name of names) {
    if (!known.includes(name)) throw new UsageError(`unknown scenario "${name}" (known: ${known.join(", ")})`);
  }
  return names;
}

import { describe, expect, test } from "bun:test";
import { parseOptions, UsageError } from "./options.ts";

const SCENARIOS = ["plain", "observability", "policies"];
const parse = (argv: string[], env: Record<string, string> = {}) => parseOptions(argv, env, SCENARIOS, "results");

describe("bench options", () => {
  test("defaults: 10 s runs, 2 s warm-up, wrk -t1 -c50, every scenario, results saved", () => {
    expect(parse([])).toEqual({
      durationSeconds: 10,
      warmupSeconds: 2,
      connections: 50,
      threads: 1,
      rounds: 1,
      scenarios: ["plain", "observability", "policies"],
      quick: false,
      rebuild: false,
      resultsDir: "results",
    });
  });

  test("--quick shortens the runs, and an explicit duration still wins wherever it stands", () => {
    expect(parse(["--quick"])).toMatchObject({ quick: true, durationSeconds: 3, warmupSeconds: 1 });
    expect(parse(["--duration", "5", "--quick"])).toMatchObject({ quick: true, durationSeconds: 5, warmupSeconds: 1 });
  });

  test("arguments win over environment variables", () => {
    const options = parse(["--connections=20"], { BENCH_CONNECTIONS: "80", BENCH_DURATION: "7" });
    expect(options).toMatchObject({ connections: 20, durationSeconds: 7 });
    expect(parse(["--rounds", "3"], { BENCH_ROUNDS: "2" })).toMatchObject({ rounds: 3 });
  });

  test("--scenarios picks and orders scenarios; --no-save writes nothing", () => {
    expect(parse(["--scenarios", "policies", "--no-save"])).toMatchObject({ scenarios: ["policies"], resultsDir: null });
    expect(parse(["--scenarios", "observability,plain"])).toMatchObject({ scenarios: ["observability", "plain"] });
  });

  test("--help asks for the usage text", () => {
    expect(parse(["--help"])).toBeNull();
  });

  test("bad values are refused with a message naming them", () => {
    expect(() => parse(["--duration", "1.5"])).toThrow(UsageError);
    expect(() => parse(["--duration", "0"])).toThrow(/--duration/);
    expect(() => parse(["--scenarios", "tls"])).toThrow(/unknown scenario "tls"/);
    expect(() => parse(["--threads", "4", "--connections", "2"])).toThrow(/cannot exceed/);
    expect(() => parse(["--connections"])).toThrow(/needs a value/);
    expect(() => parse(["--fast"])).toThrow(/unknown option --fast/);
    expect(() => parse([], { BENCH_WARMUP: "-1" })).toThrow(/BENCH_WARMUP/);
  });
});

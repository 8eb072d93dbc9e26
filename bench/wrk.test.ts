import { describe, expect, test } from "bun:test";
import { errorCount, parseWrkDuration, parseWrkReport } from "./wrk.ts";

// Reports as wrk 4.1.0 prints them with --latency.
const CLEAN = `Running 10s test @ http://127.0.0.1:41999/plain
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.12ms  412.30us  15.03ms   91.20%
    Req/Sec    44.71k     2.10k   48.02k    80.00%
  Latency Distribution
     50%    1.05ms
     75%    1.21ms
     90%    1.44ms
     99%    2.87ms
  444872 requests in 10.00s, 81.45MB read
Requests/sec:  44484.87
Transfer/sec:      8.14MB
`;

const WITH_ERRORS = `Running 1s test @ http://127.0.0.1:37591/
  1 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   262.61us  619.68us   9.54ms   95.43%
    Req/Sec    53.28k     7.10k   60.41k    72.73%
  Latency Distribution
     50%  140.00us
     75%  175.00us
     90%  255.00us
     99%    3.19ms
  58185 requests in 1.10s, 6.79MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 19395
Requests/sec:  52889.49
Transfer/sec:      6.17MB
`;

describe("wrk report parsing", () => {
  test("reads totals, rate and the latency distribution in microseconds", () => {
    const report = parseWrkReport(CLEAN);
    expect(report.requests).toBe(444872);
    expect(report.seconds).toBeCloseTo(10, 6);
    expect(report.requestsPerSecond).toBeCloseTo(44484.87, 2);
    expect(report.latencyAverageUs).toBeCloseTo(1120, 6);
    expect(report.latencyMaxUs).toBeCloseTo(15030, 6);
    expect(report.latencyPercentilesUs).toEqual({ "50": 1050, "75": 1210, "90": 1440, "99": 2870 });
    expect(errorCount(report)).toBe(0);
  });

  test("counts bad statuses and socket errors", () => {
    const report = parseWrkReport(WITH_ERRORS);
    expect(report.latencyPercentilesUs["50"]).toBeCloseTo(140, 6);
    expect(report.latencyPercentilesUs["99"]).toBeCloseTo(3190, 6);
    expect(report.non2xx3xx).toBe(19395);
    expect(report.socketErrors).toEqual({ connect: 0, read: 3, write: 0, timeout: 2 });
    expect(errorCount(report)).toBe(19400);
  });

  test("refuses a report without --latency", () => {
    const withoutDistribution = CLEAN.replace(/  Latency Distribution[\s\S]*?(?=  444872)/, "");
    expect(() => parseWrkReport(withoutDistribution)).toThrow(/latency distribution/);
  });

  test("refuses output that is not a wrk report", () => {
    expect(() => parseWrkReport("unable to connect to 127.0.0.1:1 Connection refused\n")).toThrow(/not understood/);
  });

  test("converts each duration unit", () => {
    expect(parseWrkDuration("850.00us")).toBeCloseTo(850, 6);
    expect(parseWrkDuration("1.50ms")).toBeCloseTo(1500, 6);
    expect(parseWrkDuration("2.00s")).toBeCloseTo(2_000_000, 6);
    expect(parseWrkDuration("1.00m")).toBeCloseTo(60_000_000, 6);
    expect(Number.isNaN(parseWrkDuration("fast"))).toBe(true);
  });
});

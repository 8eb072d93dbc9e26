/**
 * The small engine: the policy pipeline's phase order, `when` conditions, CIDR ranges
 * and the units of durations and sizes.
 */
import { describe, expect, test } from "bun:test";
import { compileCondition, compileValueMatch, type ConditionConfig } from "../../src/core/condition.ts";
import type { Exchange } from "../../src/core/exchange.ts";
import { compileCidrList, parseAddress, parseCidr } from "../../src/core/net.ts";
import { recordDecision, runCompletion, runPipeline, type Step } from "../../src/core/pipeline.ts";
import type { Policy } from "../../src/core/policy.ts";
import { parseDuration, parseSize } from "../../src/core/units.ts";

/** An exchange for a request; only what conditions and fake policies read is real. */
function exchangeFor(url: string, init: { method?: string; headers?: Record<string, string>; clientIp?: string } = {}): Exchange {
  const request = new Request(url, { method: init.method ?? "GET", headers: init.headers });
  return {
    request,
    url: new URL(url),
    requestId: "test-id",
    clientIp: init.clientIp ?? "127.0.0.1",
    realClientIp: init.clientIp ?? "127.0.0.1",
    tls: null,
    scheme: "http",
    route: null,
    params: {},
    upstreamHeaders: new Headers(),
    upstreamTarget: null,
    upstreamStartedAt: 0,
    upstreamHeadersAt: 0,
    consumer: null,
    responseHeaders: null,
    body: null,
    bodyFailure: null,
    startedAt: 0,
    decisions: null,
    answeredBy: null,
    state: new Map(),
  };
}

interface FakeOptions {
  /** Which hooks the policy has; all by default. */
  hooks?: ("request" | "response" | "complete")[];
  /** Answer in the request phase with this status. */
  answer?: number;
  /** Run only when this holds. */
  when?: (exchange: Exchange) => boolean;
}

/** A policy that writes each hook call to `log` and marks responses it saw with a header. */
function fake(log: string[], name: string, options: FakeOptions = {}): Step {
  const hooks = new Set(options.hooks ?? ["request", "response", "complete"]);
  const policy: Policy = { type: name };
  if (hooks.has("request")) {
    policy.onRequest = async () => {
      log.push(`request ${name}`);
      if (options.answer !== undefined) return new Response(`from ${name}`, { status: options.answer });
      return undefined;
    };
  }
  if (hooks.has("response")) {
    policy.onResponse = (_exchange, response) => {
      log.push(`response ${name}`);
      response.headers.append("x-seen-by", name);
      return response;
    };
  }
  if (hooks.has("complete")) {
    policy.onComplete = (_exchange, response) => {
      log.push(`complete ${name} ${response.status} ${response.headers.get("x-seen-by") ?? ""}`);
    };
  }
  return { policy, when: options.when ?? null };
}

/** The proxy at the centre: logs and answers 200. */
function proxyLogging(log: string[]) {
  return async () => {
    log.push("proxy");
    return new Response("upstream", { status: 200 });
  };
}

/** Runs the pipeline and the completion hooks the way the request handler does. */
async function run(preFlow: Step[], route: Step[], postFlow: Step[], log: string[], exchange = exchangeFor("http://gw/x")) {
  const participants: Policy[] = [];
  const response = await runPipeline(exchange, preFlow, route, postFlow, proxyLogging(log), participants);
  const failures: string[] = [];
  runCompletion(exchange, response, participants, (error, policy) => failures.push(`${policy.type}: ${(error as Error).message}`));
  return { response, failures, participants: participants.map((policy) => policy.type) };
}

describe("pipeline phase order", () => {
  test("request hooks in order, the proxy, response hooks in reverse, post_flow in order, then completion", async () => {
    const log: string[] = [];
    const { response } = await run(
      [fake(log, "pre1"), fake(log, "pre2")],
      [fake(log, "route1"), fake(log, "route2")],
      [fake(log, "post1"), fake(log, "post2")],
      log,
    );
    expect(await response.text()).toBe("upstream");
    const seen = "route2, route1, pre2, pre1, post1, post2";
    expect(log).toEqual([
      "request pre1",
      "request pre2",
      "request route1",
      "request route2",
      "proxy",
      "response route2",
      "response route1",
      "response pre2",
      "response pre1",
      "response post1",
      "response post2",
      `complete pre1 200 ${seen}`,
      `complete pre2 200 ${seen}`,
      `complete route1 200 ${seen}`,
      `complete route2 200 ${seen}`,
      `complete post1 200 ${seen}`,
      `complete post2 200 ${seen}`,
    ]);
  });

  test("a policy that answers stops later policies and the proxy; only policies that ran see the response", async () => {
    const log: string[] = [];
    const { response, participants } = await run(
      [fake(log, "pre1"), fake(log, "guard", { answer: 401 }), fake(log, "pre3")],
      [fake(log, "route1")],
      [fake(log, "post1")],
      log,
    );
    expect(response.status).toBe(401);
    expect(await response.text()).toBe("from guard");
    expect(log.filter((entry) => !entry.startsWith("complete"))).toEqual([
      "request pre1",
      "request guard",
      "response guard",
      "response pre1",
      "response post1",
    ]);
    expect(participants).toEqual(["pre1", "guard", "post1"]);
    expect(response.headers.get("x-seen-by")).toBe("guard, pre1, post1");
  });

  test("a route policy that answers skips the proxy; pre_flow response hooks still run", async () => {
    const log: string[] = [];
    const { response } = await run([fake(log, "pre1")], [fake(log, "route1", { answer: 429 }), fake(log, "route2")], [], log);
    expect(response.status).toBe(429);
    expect(log).not.toContain("proxy");
    expect(log).not.toContain("request route2");
    expect(log.filter((entry) => entry.startsWith("response"))).toEqual(["response route1", "response pre1"]);
  });

  test("the policy that answered is recorded as a decision unless it recorded one of its own", async () => {
    const quiet = exchangeFor("http://gw/x");
    await run([fake([], "pre1")], [fake([], "guard", { answer: 401 })], [], [], quiet);
    expect(quiet.decisions).toEqual(["guard:answered"]);

    const passed = exchangeFor("http://gw/x");
    await run([fake([], "pre1")], [fake([], "route1")], [], [], passed);
    expect(passed.decisions).toBeNull();

    const explicit = exchangeFor("http://gw/x");
    const limiter: Step = {
      policy: {
        type: "rate-limit",
        onRequest: (exchange) => {
          recordDecision(exchange, "rate-limit", "reject");
          return new Response(null, { status: 429 });
        },
      },
      when: null,
    };
    const cors: Step = { policy: { type: "cors", onRequest: (exchange) => void recordDecision(exchange, "cors", "allow") }, when: null };
    await run([cors], [limiter], [], [], explicit);
    expect(explicit.decisions).toEqual(["cors:allow", "rate-limit:reject"]);
  });

  test("a policy with only a response hook takes part in the reverse order where it stands", async () => {
    const log: string[] = [];
    await run([fake(log, "a"), fake(log, "b", { hooks: ["response"] }), fake(log, "c", { hooks: ["request"] })], [], [], log);
    expect(log).toEqual(["request a", "request c", "proxy", "response b", "response a", "complete a 200 b, a"]);
  });

  test("`when` that does not hold skips every hook of the policy", async () => {
    const log: string[] = [];
    const never = () => false;
    const { participants } = await run(
      [fake(log, "pre1", { when: never }), fake(log, "pre2")],
      [fake(log, "route1", { when: never, answer: 403 })],
      [fake(log, "post1", { when: never }), fake(log, "post2", { when: (ex) => ex.url.pathname === "/x" })],
      log,
    );
    expect(log.filter((entry) => !entry.startsWith("complete"))).toEqual(["request pre2", "proxy", "response pre2", "response post2"]);
    expect(participants).toEqual(["pre2", "post2"]);
  });

  test("completion hooks get the final response; one that throws or rejects does not stop the others", async () => {
    const log: string[] = [];
    const throwing: Step = { policy: { type: "throwing", onComplete: () => { throw new Error("boom"); } }, when: null };
    const rejecting: Step = { policy: { type: "rejecting", onComplete: async () => { throw new Error("later"); } }, when: null };
    const { failures } = await run([throwing, fake(log, "a")], [rejecting], [fake(log, "post")], log);
    expect(log.filter((entry) => entry.startsWith("complete"))).toEqual(["complete a 200 a, post", "complete post 200 a, post"]);
    await Bun.sleep(0);
    expect(failures).toEqual(["throwing: boom", "rejecting: later"]);
  });
});

describe("conditions", () => {
  const holds = (config: ConditionConfig, url: string, init: Parameters<typeof exchangeFor>[1] = {}) =>
    compileCondition(config)(exchangeFor(url, init));

  test("an empty condition always holds", () => {
    expect(holds({}, "http://gw/")).toBe(true);
  });

  test("methods, case-insensitive in config", () => {
    expect(holds({ methods: ["post", "PUT"] }, "http://gw/", { method: "POST" })).toBe(true);
    expect(holds({ methods: ["post", "PUT"] }, "http://gw/", { method: "GET" })).toBe(false);
  });

  test("path matchers see the path without the query", () => {
    expect(holds({ path: "/admin" }, "http://gw/admin?x=1")).toBe(true);
    expect(holds({ path: { prefix: "/admin" } }, "http://gw/admin/users")).toBe(true);
    expect(holds({ path: { prefix: "/admin" } }, "http://gw/public")).toBe(false);
    expect(holds({ path: { regex: "^/v[0-9]+/" } }, "http://gw/v2/x")).toBe(true);
    expect(holds({ path: { one_of: ["/a", "/b"] } }, "http://gw/b")).toBe(true);
    expect(holds({ path: { one_of: ["/a", "/b"] } }, "http://gw/c")).toBe(false);
  });

  test("header matchers; header names are case-insensitive", () => {
    const headers = { "X-Debug": "1", authorization: "Bearer t" };
    expect(holds({ headers: { "x-debug": { present: true } } }, "http://gw/", { headers })).toBe(true);
    expect(holds({ headers: { "X-DEBUG": "1" } }, "http://gw/", { headers })).toBe(true);
    expect(holds({ headers: { "x-trace": { present: false } } }, "http://gw/", { headers })).toBe(true);
    expect(holds({ headers: { "x-trace": { present: true } } }, "http://gw/", { headers })).toBe(false);
    expect(holds({ headers: { authorization: { prefix: "Basic " } } }, "http://gw/", { headers })).toBe(false);
    // A missing header never matches a value test, even an empty prefix.
    expect(holds({ headers: { "x-trace": { prefix: "" } } }, "http://gw/", { headers })).toBe(false);
  });

  test("query matchers", () => {
    expect(holds({ query: { debug: "1" } }, "http://gw/?debug=1")).toBe(true);
    expect(holds({ query: { debug: "1" } }, "http://gw/?debug=2")).toBe(false);
    expect(holds({ query: { debug: { present: true } } }, "http://gw/?debug")).toBe(true);
    expect(holds({ query: { debug: { present: true } } }, "http://gw/?other=1")).toBe(false);
  });

  test("client_ip with IPv4, IPv6 and IPv4-mapped IPv6 clients", () => {
    const internal: ConditionConfig = { client_ip: ["10.0.0.0/8", "2001:db8::/32"] };
    expect(holds(internal, "http://gw/", { clientIp: "10.1.2.3" })).toBe(true);
    expect(holds(internal, "http://gw/", { clientIp: "11.1.2.3" })).toBe(false);
    expect(holds(internal, "http://gw/", { clientIp: "2001:db8:1::5" })).toBe(true);
    expect(holds(internal, "http://gw/", { clientIp: "2001:db9::5" })).toBe(false);
    expect(holds(internal, "http://gw/", { clientIp: "::ffff:10.9.9.9" })).toBe(true);
    expect(holds(internal, "http://gw/", { clientIp: "::ffff:a09:909" })).toBe(true);
    expect(holds(internal, "http://gw/", { clientIp: "::ffff:11.9.9.9" })).toBe(false);
    expect(holds(internal, "http://gw/", { clientIp: "" })).toBe(false);
  });

  test("fields AND together; any, all and not combine conditions", () => {
    const config: ConditionConfig = {
      methods: ["POST"],
      any: [{ path: { prefix: "/admin" } }, { headers: { "x-admin": "yes" } }],
      not: { client_ip: ["127.0.0.0/8"] },
    };
    expect(holds(config, "http://gw/admin", { method: "POST", clientIp: "192.0.2.1" })).toBe(true);
    expect(holds(config, "http://gw/x", { method: "POST", clientIp: "192.0.2.1", headers: { "x-admin": "yes" } })).toBe(true);
    expect(holds(config, "http://gw/x", { method: "POST", clientIp: "192.0.2.1" })).toBe(false);
    expect(holds(config, "http://gw/admin", { method: "GET", clientIp: "192.0.2.1" })).toBe(false);
    expect(holds(config, "http://gw/admin", { method: "POST", clientIp: "127.0.0.1" })).toBe(false);
    const all: ConditionConfig = { all: [{ query: { a: "1" } }, { query: { b: "2" } }] };
    expect(holds(all, "http://gw/?a=1&b=2")).toBe(true);
    expect(holds(all, "http://gw/?a=1")).toBe(false);
  });

  test("value matchers treat absence as absence, not as an empty string", () => {
    expect(compileValueMatch("")(null)).toBe(false);
    expect(compileValueMatch("")("")).toBe(true);
    expect(compileValueMatch({ one_of: [""] })(null)).toBe(false);
    expect(compileValueMatch({ regex: ".*" })(null)).toBe(false);
    expect(compileValueMatch({ present: false })(null)).toBe(true);
  });
});

describe("CIDR ranges", () => {
  const inRange = (range: string, address: string) => parseCidr(range).contains(address);

  test("IPv4 ranges at their edges", () => {
    expect(inRange("10.0.0.0/8", "10.0.0.0")).toBe(true);
    expect(inRange("10.0.0.0/8", "10.255.255.255")).toBe(true);
    expect(inRange("10.0.0.0/8", "11.0.0.0")).toBe(false);
    expect(inRange("10.0.0.0/8", "9.255.255.255")).toBe(false);
    expect(inRange("192.168.1.7/32", "192.168.1.7")).toBe(true);
    expect(inRange("192.168.1.7/32", "192.168.1.8")).toBe(false);
    expect(inRange("192.168.1.7", "192.168.1.7")).toBe(true);
    expect(inRange("0.0.0.0/0", "203.0.113.9")).toBe(true);
    // Host bits in the range are ignored: 10.1.2.3/8 is 10.0.0.0/8.
    expect(inRange("10.1.2.3/8", "10.200.0.1")).toBe(true);
  });

  test("IPv6 ranges, compressed forms, zone ids and embedded IPv4", () => {
    expect(inRange("2001:db8::/32", "2001:0db8:0000:0000:0000:0000:0000:0001")).toBe(true);
    expect(inRange("2001:db8::/32", "2001:DB8:ffff::1")).toBe(true);
    expect(inRange("2001:db8::/32", "2001:db9::1")).toBe(false);
    expect(inRange("::1/128", "::1")).toBe(true);
    expect(inRange("::1", "0:0:0:0:0:0:0:1")).toBe(true);
    expect(inRange("fe80::/10", "fe80::1%eth0")).toBe(true);
    expect(inRange("::/0", "2001:db8::1")).toBe(true);
    expect(inRange("64:ff9b::/96", "64:ff9b::192.0.2.1")).toBe(true);
    expect(inRange("2001:db8::/32", "10.0.0.1")).toBe(false);
    expect(inRange("10.0.0.0/8", "2001:db8::1")).toBe(false);
  });

  test("IPv4-mapped IPv6 is the IPv4 address it carries, in addresses and in ranges", () => {
    expect(parseAddress("::ffff:10.1.2.3")).toEqual({ value: 0x0a010203n, bits: 32 });
    expect(parseAddress("::FFFF:a01:203")).toEqual({ value: 0x0a010203n, bits: 32 });
    expect(inRange("10.0.0.0/8", "::ffff:10.1.2.3")).toBe(true);
    expect(inRange("::ffff:10.0.0.0/104", "10.1.2.3")).toBe(true);
    expect(inRange("::ffff:10.0.0.0/104", "11.1.2.3")).toBe(false);
    expect(inRange("::ffff:10.1.2.3", "10.1.2.3")).toBe(true);
  });

  test("malformed ranges are refused with a message that quotes them", () => {
    for (const bad of ["10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/8/9", "10.0.0.0/ 8", "10.0.0.0/1e1", "::/129", "10.0.0.0/08"]) {
      expect(() => parseCidr(bad)).toThrow(`"${bad}"`);
    }
    for (const bad of ["", "10.0.0", "10.0.0.0.0", "256.0.0.1", "010.0.0.1", "1.2.3.a", "1::2::3", "1:2:3:4:5:6:7:8:9", ":1", "12345::", "1.2.3.4::", "::1.2.3"]) {
      expect(() => parseCidr(bad)).toThrow("is not an IP address or CIDR range");
    }
  });

  test("a list parses the address once and matches any of its ranges", () => {
    const matches = compileCidrList(["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]);
    expect(matches("10.4.4.4")).toBe(true);
    expect(matches("2001:db8::7")).toBe(true);
    expect(matches("192.0.2.7")).toBe(true);
    expect(matches("192.0.2.8")).toBe(false);
    expect(matches("not an address")).toBe(false);
  });
});

describe("units", () => {
  test("durations: milliseconds as numbers, or ms, s, m, h with decimals", () => {
    expect(parseDuration(1500)).toBe(1500);
    expect(parseDuration("250ms")).toBe(250);
    expect(parseDuration("30s")).toBe(30_000);
    expect(parseDuration("1.5s")).toBe(1500);
    expect(parseDuration("2m")).toBe(120_000);
    expect(parseDuration("1h")).toBe(3_600_000);
    expect(parseDuration("0s")).toBe(0);
    for (const bad of ["10", "1d", "s", "-1s", "1.s", "1 s", "1m30s"]) expect(() => parseDuration(bad)).toThrow("not a duration");
  });

  test("sizes: bytes as numbers, 1000-based KB/MB/GB, 1024-based KiB/MiB/GiB and k/m/g", () => {
    expect(parseSize(7)).toBe(7);
    expect(parseSize("512")).toBe(512);
    expect(parseSize("512B")).toBe(512);
    expect(parseSize("10KB")).toBe(10_000);
    expect(parseSize("10MB")).toBe(10_000_000);
    expect(parseSize("1GB")).toBe(1_000_000_000);
    expect(parseSize("64KiB")).toBe(65_536);
    expect(parseSize("10MiB")).toBe(10 * 1024 * 1024);
    expect(parseSize("1GiB")).toBe(1024 ** 3);
    expect(parseSize("1k")).toBe(1024);
    expect(parseSize("2M")).toBe(2 * 1024 * 1024);
    expect(parseSize("1 MiB")).toBe(1024 * 1024);
    expect(parseSize("1.5KiB")).toBe(1536);
    for (const bad of ["10XB", "KiB", "-1", "1 toString", "constructor", "1TB"]) expect(() => parseSize(bad)).toThrow("not a size");
  });
});

/**
 * Traffic splitting through the built binary: weighted canary between upstreams,
 * header- and cookie-based A/B rules, sticky assignment by header, cookie (set by the
 * gateway) and client IP; impossible splits are refused by `validate` with path and line.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { basics, startGateway, type Gateway } from "./helpers/gateway.ts";
import { lineOf, validateConfig } from "./helpers/traffic.ts";
import { startUpstream, type TestUpstream } from "./helpers/upstream.ts";

// Real processes on a busy machine: allow more than Bun's default 5 s per test.
setDefaultTimeout(60_000);

let stable: TestUpstream;
let canary: TestUpstream;
let beta: TestUpstream;
let gateway: Gateway;

beforeAll(async () => {
  stable = startUpstream(() => new Response("stable"));
  canary = startUpstream(() => new Response("canary"));
  beta = startUpstream(() => new Response("beta"));
  gateway = await startGateway(
    (ports) => `${basics(ports)}
server:
  workers: 1
upstreams:
  stable: { targets: ["${stable.url}"] }
  canary: { targets: ["${canary.url}"] }
  beta: { targets: ["${beta.url}"] }
routes:
  - name: weighted
    match: { paths: [/weighted/*] }
    split:
      upstreams:
        - { upstream: stable, weight: 3 }
        - { upstream: canary, weight: 1 }
  - name: ab
    match: { paths: [/ab/*] }
    split:
      upstreams:
        - { upstream: stable, weight: 1 }
        - { upstream: canary, weight: 0 }
      rules:
        - { header: X-Variant, value: b, upstream: beta }
        - { cookie: variant, value: { one_of: [canary, c] }, upstream: canary }
  - name: by-header
    match: { paths: [/by-header/*] }
    split:
      upstreams:
        - { upstream: stable, weight: 50 }
        - { upstream: canary, weight: 50 }
      sticky: { by: header, name: X-User }
  - name: by-cookie
    match: { paths: [/by-cookie/*] }
    split:
      upstreams:
        - { upstream: stable, weight: 50 }
        - { upstream: canary, weight: 50 }
      sticky: { by: cookie, name: tp_side, set_cookie: true, max_age: 1h }
  - name: by-ip
    match: { paths: [/by-ip/*] }
    split:
      upstreams:
        - { upstream: stable, weight: 50 }
        - { upstream: canary, weight: 50 }
      sticky: { by: client_ip }
`,
  );
}, 60_000);

afterAll(async () => {
  await gateway?.stop();
  for (const upstream of [stable, canary, beta]) upstream?.stop();
}, 60_000);

async function side(path: string, headers: Record<string, string> = {}): Promise<string> {
  const response = await fetch(`${gateway.url}${path}`, { headers });
  expect(response.status).toBe(200);
  return response.text();
}

function tally(sides: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of sides) counts[name] = (counts[name] ?? 0) + 1;
  return counts;
}

describe("weighted canary", () => {
  test("weights 3:1 send exactly three of every four requests to stable (one worker)", async () => {
    const sides: string[] = [];
    for (let i = 0; i < 40; i++) sides.push(await side(`/weighted/${i}`));
    expect(tally(sides)).toEqual({ stable: 30, canary: 10 });
    // The request reaches the upstream with its path unchanged.
    expect(canary.seen.some((seen) => seen.path.startsWith("/weighted/"))).toBe(true);
  });

  test("metrics count each side's calls under its own upstream", async () => {
    const host = new URL(canary.url).host;
    let text = "";
    const deadline = performance.now() + 10_000;
    while (performance.now() < deadline) {
      text = await (await fetch(`${gateway.adminUrl}/metrics`)).text();
      if (text.includes(`upstream="canary"`)) break;
      await Bun.sleep(100);
    }
    const line = text.split("\n").find((l) => l.startsWith("turnpike_upstream_requests_total{") && l.includes(host));
    expect(line).toContain(`upstream="canary"`);
  });
});

describe("A/B rules", () => {
  test("a matching header or cookie picks its upstream; others follow the weights", async () => {
    expect(await side("/ab/x")).toBe("stable");
    expect(await side("/ab/x", { "x-variant": "b" })).toBe("beta");
    expect(await side("/ab/x", { "x-variant": "a" })).toBe("stable");
    expect(await side("/ab/x", { cookie: "theme=dark; variant=canary" })).toBe("canary");
    expect(await side("/ab/x", { cookie: "variant=c" })).toBe("canary");
    expect(await side("/ab/x", { cookie: "variant=stable" })).toBe("stable");
    // Rules are tried in order: the header rule wins over the cookie rule.
    expect(await side("/ab/x", { "x-variant": "b", cookie: "variant=canary" })).toBe("beta");
  });
});

describe("sticky assignment", () => {
  test("by header: one user always lands on the same side, and users spread over both", async () => {
    const firstSide = new Map<string, string>();
    for (let user = 0; user < 40; user++) {
      const sides = new Set<string>();
      for (let i = 0; i < 3; i++) sides.add(await side(`/by-header/${i}`, { "x-user": `user-${user}` }));
      expect(sides.size).toBe(1);
      firstSide.set(`user-${user}`, [...sides][0]!);
    }
    const counts = tally([...firstSide.values()]);
    expect(counts.stable).toBeGreaterThan(5);
    expect(counts.canary).toBeGreaterThan(5);
  });

  test("by cookie: the gateway sets the cookie once, and a client that sends it back stays on its side", async () => {
    const first = await fetch(`${gateway.url}/by-cookie/a`);
    const setCookie = first.headers.get("set-cookie");
    expect(setCookie).toMatch(/^tp_side=[0-9a-f-]{36}; Path=\/; Max-Age=3600; HttpOnly; SameSite=Lax$/);
    const cookie = setCookie!.split(";")[0]!;
    const firstSide = await first.text();
    for (let i = 0; i < 10; i++) {
      const again = await fetch(`${gateway.url}/by-cookie/${i}`, { headers: { cookie } });
      expect(again.headers.get("set-cookie")).toBeNull();
      expect(await again.text()).toBe(firstSide);
    }
    // Fresh clients (no cookie) are spread over both sides.
    const sides: string[] = [];
    for (let i = 0; i < 40; i++) sides.push(await side(`/by-cookie/new-${i}`));
    const counts = tally(sides);
    expect(counts.stable).toBeGreaterThan(5);
    expect(counts.canary).toBeGreaterThan(5);
  });

  test("by client IP: one client always lands on the same side", async () => {
    const sides = new Set<string>();
    for (let i = 0; i < 12; i++) sides.add(await side(`/by-ip/${i}`));
    expect(sides.size).toBe(1);
  });
});

describe("impossible splits are refused by validate with path and line", () => {
  test("weights adding up to 0, an unknown upstream, upstream and split together, no upstream at all", () => {
    const text = `listeners: [{ port: 8080 }]
upstreams:
  a: { targets: ["http://127.0.0.1:1"] }
  b: { targets: ["http://127.0.0.1:2"] }
routes:
  - name: zero
    split:
      upstreams:
        - { upstream: a, weight: 0 }
        - { upstream: b, weight: 0 }
  - name: unknown
    split:
      upstreams:
        - { upstream: a, weight: 1 }
        - { upstream: nowhere, weight: 1 }
      rules:
        - { header: x-v, value: b, upstream: elsewhere }
  - name: both
    upstream: a
    split:
      upstreams: [{ upstream: b, weight: 1 }]
  - name: neither
    match: { paths: [/x] }
  - name: sticky-cookie-options
    split:
      upstreams: [{ upstream: a, weight: 1 }]
      sticky: { by: header, name: x-user, set_cookie: true }
`;
    const out = validateConfig(text);
    expect(out.code).toBe(1);
    const expected: [string, string, number][] = [
      ["routes[0].split.upstreams", "the weights add up to 0", lineOf(text, "{ upstream: a, weight: 0 }")],
      ["routes[1].split.upstreams[1].upstream", 'unknown upstream "nowhere"', lineOf(text, "upstream: nowhere")],
      ["routes[1].split.rules[0].upstream", 'unknown upstream "elsewhere"', lineOf(text, "upstream: elsewhere")],
      ["routes[2].upstream", "either `upstream` or `split`", lineOf(text, "    upstream: a")],
      ["routes[3]", "a route needs `upstream` (or `split`)", lineOf(text, "name: neither")],
      ["routes[4].split.sticky.set_cookie", "set_cookie needs `by: cookie`", lineOf(text, "set_cookie: true")],
    ];
    for (const [where, words, line] of expected) {
      const found = out.lines.find((l) => l.startsWith(`${out.path}: ${where}: `));
      expect(found, `an error at ${where} in:\n${out.lines.join("\n")}`).toBeDefined();
      expect(found!).toContain(words);
      expect(found!).toMatch(new RegExp(`\\(line ${line}, col \\d+\\)$`));
    }
  });

  test("a negative weight and an unknown upstream together are reported at the schema stage", () => {
    const text = `listeners: [{ port: 8080 }]
upstreams:
  a: { targets: ["http://127.0.0.1:1"] }
routes:
  - name: r
    split:
      upstreams:
        - { upstream: a, weight: -1 }
        - { upstream: ghost, weight: 1 }
`;
    const out = validateConfig(text);
    expect(out.code).toBe(1);
    expect(out.lines.some((l) => l.includes("routes[0].split.upstreams[0].weight") && l.includes(`(line ${lineOf(text, "weight: -1")},`))).toBe(true);
    expect(out.lines.some((l) => l.includes('routes[0].split.upstreams[1].upstream: unknown upstream "ghost"'))).toBe(true);
  });
});

/**
 * Config loading as a user meets it: every problem reported at once, each with its
 * path and the line/column where it is written; env substitution; the published schema.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { ConfigLoader, type LoadedConfig } from "../../src/config/load.ts";
import { buildConfigSchema } from "../../src/config/schema.ts";
import { formatError } from "../../src/config/source.ts";
import { builtinPolicies } from "../../src/policies/index.ts";

const loader = new ConfigLoader();

/** The errors of a config as `turnpike validate` prints them; fails the test if it loads. */
function errorsOf(text: string, env: Record<string, string> = {}): string[] {
  const result = loader.loadText(text, "/virtual/gw.yaml", env);
  if (result.ok) {
    result.loaded.graph.dispose();
    throw new Error("expected the config to be refused");
  }
  return result.errors.map((error) => formatError("gw.yaml", error));
}

/** A config that must load; fails the test with its errors otherwise. */
function loaded(text: string, env: Record<string, string> = {}): LoadedConfig {
  const result = loader.loadText(text, "/virtual/gw.yaml", env);
  if (!result.ok) throw new Error(result.errors.map((error) => formatError("gw.yaml", error)).join("\n"));
  return result.loaded;
}

/** A minimal valid head: one listener and a mock upstream `u`; append `routes:` items. */
const HEAD = `listeners:
  - port: 0
upstreams:
  u: { type: mock }
routes:
`;

describe("every error at once, each with path and position", () => {
  test("schema errors from all over the file come back together, in file order", () => {
    const text = `listeners:
  - port: 8080
    bogus: 1
upstreams:
  u:
    type: grpc
routes:
  - name: a
    upstream: u
    match:
      methods: GET
  - name: b
    upstream: orders
  - match: { paths: [/x] }
    priority: high
`;
    expect(errorsOf(text)).toEqual([
      "gw.yaml: listeners[0].bogus: unknown key (line 3, col 5)",
      'gw.yaml: upstreams.u.type: must be one of: "http", "mock" (line 6, col 11)',
      "gw.yaml: routes[0].match.methods: must be a list (line 11, col 16)",
      'gw.yaml: routes[1].upstream: unknown upstream "orders" (line 13, col 15)',
      'gw.yaml: routes[2]: missing required key "name" (line 14, col 5)',
      'gw.yaml: routes[2]: a route needs `upstream` (or `split`) (line 14, col 5)',
      "gw.yaml: routes[2].priority: must be an integer (line 15, col 15)",
    ]);
  });

  test("an unknown key points at the key itself, not its value", () => {
    const text = HEAD + `  - name: a\n    upstream: u\n    matches:\n      paths: [/a]\n`;
    expect(errorsOf(text)).toEqual(["gw.yaml: routes[0].matches: unknown key (line 8, col 5)"]);
  });

  test("a missing required key points at the mapping that lacks it", () => {
    const text = `listeners:\n  - port: 0\n    tls:\n      certificates:\n        - cert: a.pem\nupstreams: {}\nroutes: []\n`;
    expect(errorsOf(text)).toEqual(['gw.yaml: listeners[0].tls.certificates[0]: missing required key "key" (line 5, col 11)']);
    expect(errorsOf(`listeners: [{ port: 0 }]\nroutes: []\n`)).toEqual(['gw.yaml: (root): missing required key "upstreams" (line 1, col 1)']);
  });

  test("wrong types and bad enum values name what is expected", () => {
    const text = HEAD + `  - name: a
    upstream: u
    host_header: nope
    match: { paths: /a, headers: { x-v: 2 } }
    limits: { max_url_length: "long" }
`;
    expect(errorsOf(text)).toEqual([
      'gw.yaml: routes[0].host_header: must be "upstream", "preserve" or {set: "host"} (line 8, col 18)',
      "gw.yaml: routes[0].match.paths: must be a list (line 9, col 21)",
      "gw.yaml: routes[0].match.headers.x-v: must be an exact string, or {prefix}, {regex}, {present: true|false} or {one_of: [...]} (line 9, col 41)",
      "gw.yaml: routes[0].limits.max_url_length: must be an integer (line 10, col 31)",
    ]);
  });

  test("an empty file or a list at the top is one clear error", () => {
    expect(errorsOf("")).toEqual(["gw.yaml: (root): must be a mapping"]);
    expect(errorsOf("- a\n")).toEqual(["gw.yaml: (root): must be a mapping (line 1, col 1)"]);
  });

  test("an error in one list item does not hide the error in the next", () => {
    const text = `listeners: [{ port: 0 }]
upstreams:
  api:
    targets:
      - ftp://old.example
      - { url: "http://new.example", weight: 0 }
routes: []
`;
    expect(errorsOf(text)).toEqual([
      "gw.yaml: upstreams.api.targets[0]: must be a URL (http:// or https://), host:port, or {url, weight, priority, backup} (line 5, col 9)",
      "gw.yaml: upstreams.api.targets[1].weight: must be >= 1 (line 6, col 46)",
    ]);
  });

  test("a mapping clearly meant as one form gets that form's error, not a list of all forms", () => {
    const text = HEAD + `  - name: a
    upstream: u
    match:
      headers:
        x-a: { prefix: 1 }
        x-b: { regex: "^v", prefix: v }
`;
    expect(errorsOf(text)).toEqual([
      "gw.yaml: routes[0].match.headers.x-a.prefix: must be a string (line 10, col 24)",
      "gw.yaml: routes[0].match.headers.x-b: must be an exact string, or {prefix}, {regex}, {present: true|false} or {one_of: [...]} (line 11, col 14)",
    ]);
  });

  test("a bad upstream name is one error at the key", () => {
    const text = `listeners: [{ port: 0 }]\nupstreams:\n  u: { type: mock }\n  "bad name": { type: mock }\nroutes: []\n`;
    expect(errorsOf(text)).toEqual([
      'gw.yaml: upstreams.bad name: "bad name" is not a valid name (must match ^[A-Za-z0-9][A-Za-z0-9_.-]*$) (line 4, col 3)',
    ]);
  });

  test("policy configs are checked against their own schema", () => {
    const text = HEAD + `  - name: a
    upstream: u
    policies:
      - type: request-size-limit
        config: { max_body_size: 10XB, extra: 1 }
      - type: no-such-policy
`;
    expect(errorsOf(text)).toEqual([
      "gw.yaml: routes[0].policies[0].config.max_body_size: must be a size: a number of bytes or a string like 64KiB, 10MiB, 1GiB, 10MB (line 10, col 34)",
      "gw.yaml: routes[0].policies[0].config.extra: unknown key (line 10, col 40)",
      // Every registered policy type is offered, in registration order (new policies append).
      `gw.yaml: routes[0].policies[1].type: must be one of: ${builtinPolicies().all().map((f) => JSON.stringify(f.type)).join(", ")} (line 11, col 15)`,
    ]);
  });
});

describe("references between sections", () => {
  test('an unknown upstream reads exactly `routes[1].upstream: unknown upstream "orders"`', () => {
    const text = HEAD + `  - { name: a, upstream: u }\n  - { name: b, upstream: orders }\n`;
    expect(errorsOf(text)).toEqual(['gw.yaml: routes[1].upstream: unknown upstream "orders" (line 7, col 26)']);
  });

  test("an upstream named like a built-in object property is still unknown", () => {
    const text = HEAD + `  - { name: a, upstream: toString }\n  - { name: b, upstream: constructor }\n`;
    expect(errorsOf(text)).toEqual([
      'gw.yaml: routes[0].upstream: unknown upstream "toString" (line 6, col 26)',
      'gw.yaml: routes[1].upstream: unknown upstream "constructor" (line 7, col 26)',
    ]);
  });

  test("a duplicate route name points at the second use and names the first", () => {
    const text = HEAD + `  - { name: a, upstream: u }\n  - { name: b, upstream: u }\n  - { name: a, upstream: u }\n`;
    expect(errorsOf(text)).toEqual(['gw.yaml: routes[2].name: route name "a" is already used by routes[0] (line 8, col 13)']);
  });

  test("reference errors are reported together with schema errors", () => {
    const text = HEAD + `  - { name: a, upstream: u, priority: x }\n  - { name: a, upstream: nope }\n`;
    expect(errorsOf(text)).toEqual([
      "gw.yaml: routes[0].priority: must be an integer (line 6, col 39)",
      'gw.yaml: routes[1].name: route name "a" is already used by routes[0] (line 7, col 13)',
      'gw.yaml: routes[1].upstream: unknown upstream "nope" (line 7, col 26)',
    ]);
  });
});

describe("environment variables", () => {
  const text = `listeners:
  - port: \${PORT}
    name: "\${LISTENER}"
upstreams:
  u:
    type: mock
    mock:
      body: "token=\${TOKEN}; pin=\${PIN}"
      headers:
        x-pin: \${PIN}
        x-flag: \${FLAG}
routes:
  - { name: a, upstream: u }
`;
  const env = { PORT: "8080", LISTENER: "public", TOKEN: "s3cret", PIN: "1234", FLAG: "true" };

  test("values are substituted and every substituted value is recorded as a secret", () => {
    const config = loaded(text, env);
    expect(config.config.listeners[0]!.name).toBe("public");
    expect(config.config.upstreams.u!.mock!.body).toBe("token=s3cret; pin=1234");
    expect([...config.secrets].sort()).toEqual(["1234", "8080", "public", "s3cret", "true"]);
    config.graph.dispose();
  });

  test("an unquoted whole reference takes the type the setting wants", () => {
    const config = loaded(text, env);
    expect(config.config.listeners[0]!.port).toBe(8080);
    // Header values are strings: digits and true stay text.
    expect(config.config.upstreams.u!.mock!.headers).toEqual({ "x-pin": "1234", "x-flag": "true" });
    config.graph.dispose();
  });

  test("a quoted reference stays a string", () => {
    const quoted = text.replace("port: ${PORT}", 'port: "${PORT}"');
    expect(errorsOf(quoted, env)).toEqual(["gw.yaml: listeners[0].port: must be an integer (line 2, col 11)"]);
  });

  test("each missing variable is an error at its value; others still report", () => {
    const withTypo = `${text}  - { name: b, upstream: nope }\n`;
    expect(errorsOf(withTypo, { PORT: "8080", PIN: "1" })).toEqual([
      "gw.yaml: listeners[0].name: environment variable LISTENER is not set (line 3, col 11)",
      "gw.yaml: upstreams.u.mock.body: environment variable TOKEN is not set (line 8, col 13)",
      "gw.yaml: upstreams.u.mock.headers.x-flag: environment variable FLAG is not set (line 11, col 17)",
      'gw.yaml: routes[1].upstream: unknown upstream "nope" (line 14, col 26)',
    ]);
  });
});

describe("patterns, rewrites and conditions", () => {
  test("a bad regex is named at its place in paths, when and rewrite, all at once", () => {
    const text = HEAD + `  - name: a
    upstream: u
    match: { paths: ["~^/v(", /ok] }
  - name: b
    upstream: u
    rewrite: { regex: "([a-z", replacement: x }
    policies:
      - type: headers
        when: { path: { regex: "*x" } }
`;
    const errors = errorsOf(text);
    expect(errors).toHaveLength(3);
    expect(errors[0]).toStartWith("gw.yaml: routes[0].match.paths[0]: invalid regular expression: ");
    expect(errors[0]).toEndWith("(line 8, col 22)");
    expect(errors[1]).toBe('gw.yaml: routes[1].rewrite.regex: "([a-z" is not a valid regex (line 11, col 23)');
    expect(errors[2]).toBe('gw.yaml: routes[1].policies[0].when.path.regex: "*x" is not a valid regex (line 14, col 32)');
  });

  test("a bad path pattern says what is wrong", () => {
    const text = HEAD + `  - name: a
    upstream: u
    match: { paths: ["/a/:id/:id", "/files/*rest/x", "/a:b", "/u/:1d"] }
`;
    expect(errorsOf(text)).toEqual([
      'gw.yaml: routes[0].match.paths[0]: parameter "id" appears twice (line 8, col 22)',
      "gw.yaml: routes[0].match.paths[1]: *rest must be the last segment (line 8, col 36)",
      `gw.yaml: routes[0].match.paths[2]: "a:b": ':' and '*' may only start a segment (line 8, col 54)`,
      'gw.yaml: routes[0].match.paths[3]: invalid parameter name "1d" (line 8, col 62)',
    ]);
  });

  test("rewrite.path may only use parameters that every path of the route captures", () => {
    const text = HEAD + `  - name: a
    upstream: u
    match: { paths: ["/users/:id", "/people/:name"] }
    rewrite: { path: /v2/users/:id }
  - name: b
    upstream: u
    match: { paths: ["/users/:id", "~^/u/(?<id>[0-9]+)$"] }
    rewrite: { path: /v2/users/:id }
  - name: c
    upstream: u
    rewrite: { path: /v2/:id }
`;
    expect(errorsOf(text)).toEqual([
      "gw.yaml: routes[0].rewrite.path: parameter :id is not captured by every path of this route (line 9, col 22)",
      "gw.yaml: routes[2].rewrite.path: parameter :id is not captured by every path of this route (line 16, col 22)",
    ]);
  });

  test("a rewrite sets exactly one kind", () => {
    const text = HEAD + `  - name: a
    upstream: u
    rewrite: { strip_prefix: /api, path: /x }
  - name: b
    upstream: u
    rewrite: { regex: "^/a" }
`;
    expect(errorsOf(text)).toEqual([
      "gw.yaml: routes[0].rewrite: set exactly one of strip_prefix, path, or regex (with replacement) (line 8, col 14)",
      "gw.yaml: routes[1].rewrite.replacement: regex needs a replacement (line 11, col 14)",
    ]);
  });

  test("a bad CIDR in when.client_ip is named by its index", () => {
    const text = HEAD + `  - name: a
    upstream: u
    policies:
      - type: headers
        when:
          client_ip: [10.0.0.0/8, 10.0.0.0/33, "10.0.0.0/", 300.1.1.1, "2001:db8::/129", "::1/128"]
`;
    expect(errorsOf(text)).toEqual([
      'gw.yaml: routes[0].policies[0].when.client_ip[1]: "10.0.0.0/33" has a prefix length outside 0..32 (line 11, col 35)',
      'gw.yaml: routes[0].policies[0].when.client_ip[2]: "10.0.0.0/" has a prefix length outside 0..32 (line 11, col 48)',
      'gw.yaml: routes[0].policies[0].when.client_ip[3]: "300.1.1.1" is not an IP address or CIDR range (line 11, col 61)',
      'gw.yaml: routes[0].policies[0].when.client_ip[4]: "2001:db8::/129" has a prefix length outside 0..128 (line 11, col 72)',
    ]);
  });
});

describe("durations and sizes", () => {
  test("durations become milliseconds and sizes bytes; routes inherit what they do not set", () => {
    const text = `listeners: [{ port: 0 }]
server:
  limits: { max_body_size: 2MiB, max_url_length: 100 }
upstreams:
  u: { type: mock, timeouts: { connect: 1.5s } }
routes:
  - name: a
    upstream: u
    match: { paths: [/a] }
    timeouts: { connect: 250ms, response_headers: 30s, idle: 2m, total: 1500 }
    limits: { max_body_size: 1MiB, max_header_size: 8KB }
  - name: b
    upstream: u
    match: { paths: [/b] }
    timeouts: { total: 1h }
    limits: { max_header_size: 1.5k }
`;
    const config = loaded(text);
    const route = (path: string) => config.graph.router.match(new Request(`http://gw${path}`), new URL(`http://gw${path}`))!.route;
    expect(route("/a").timeouts).toEqual({ connect: 250, responseHeaders: 30_000, idle: 120_000, total: 1500 });
    expect(route("/a").limits).toEqual({ maxBodySize: 1024 * 1024, maxHeaderSize: 8000, maxUrlLength: 100 });
    expect(route("/b").timeouts).toEqual({ connect: 1500, responseHeaders: 60_000, idle: 60_000, total: 3_600_000 });
    expect(route("/b").limits).toEqual({ maxBodySize: 2 * 1024 * 1024, maxHeaderSize: 1536, maxUrlLength: 100 });
    config.graph.dispose();
  });

  test("a malformed duration or size is an error that shows the accepted forms", () => {
    const text = HEAD + `  - name: a
    upstream: u
    timeouts: { connect: 10x, idle: "5 s", total: -1 }
    limits: { max_body_size: 1TB }
`;
    const duration = "must be a duration: a number of milliseconds or a string like 250ms, 30s, 2m, 1h";
    expect(errorsOf(text)).toEqual([
      `gw.yaml: routes[0].timeouts.connect: ${duration} (line 8, col 26)`,
      `gw.yaml: routes[0].timeouts.idle: ${duration} (line 8, col 37)`,
      `gw.yaml: routes[0].timeouts.total: ${duration} (line 8, col 51)`,
      "gw.yaml: routes[0].limits.max_body_size: must be a size: a number of bytes or a string like 64KiB, 10MiB, 1GiB, 10MB (line 9, col 30)",
    ]);
  });
});

describe("timers", () => {
  test("a timeout longer than a timer can hold is refused with its path", () => {
    const text = HEAD + `  - name: a
    upstream: u
    timeouts: { total: 1h, idle: 900h }
`;
    const errors = errorsOf(text);
    expect(errors).toEqual([
      "gw.yaml: routes[0].timeouts.idle: must be at most 24 days (line 8, col 34)",
    ]);
  });
});

describe("YAML problems", () => {
  test("a syntax error names its line; one slip is not reported once per token after it", () => {
    const text = `listeners: [{ port: 0 }]
upstreams: { u: { type: mock } }
routes:
  - name: a
   upstream: u
`;
    const errors = errorsOf(text);
    expect(errors.length).toBeGreaterThan(0);
    for (const error of errors) expect(error).toMatch(/^gw\.yaml: \(root\): YAML syntax: .* \(line \d+, col \d+\)$/);
    expect(errors[0]).toContain("(line 5,");

    const unclosed = `listeners: [{ port: \${PORT}}]
upstreams: {u: {type: mock, mock: {body: "x"}}}
routes: []
`;
    const cascade = errorsOf(unclosed, { PORT: "1" });
    const lines = cascade.map((error) => /line (\d+)/.exec(error)?.[1]);
    expect(new Set(lines).size).toBe(lines.length);
  });

  test("syntax errors and missing variables come back together, in file order", () => {
    const text = `listeners:\n  - port: \${PORT}\nupstreams: {}\nroutes:\n  - name: a\n   upstream: u\n`;
    const errors = errorsOf(text);
    expect(errors[0]).toBe("gw.yaml: listeners[0].port: environment variable PORT is not set (line 2, col 11)");
    expect(errors.length).toBeGreaterThan(1);
    for (const error of errors.slice(1)) expect(error).toContain("YAML syntax");
  });

  test("a duplicate key names its path and the line of the first one", () => {
    const text = `listeners:
  - port: 8080
    port: 9090
upstreams: {}
routes: []
`;
    expect(errorsOf(text)).toEqual(["gw.yaml: listeners[0].port: duplicate key (first set on line 2) (line 3, col 5)"]);
  });

  test("duplicate keys are reported together with the other errors", () => {
    const text = `listeners: [{ port: 0 }]
upstreams:
  u: { type: mock }
  u: { type: mock }
routes:
  - { name: a, upstream: v }
`;
    expect(errorsOf(text)).toEqual([
      "gw.yaml: upstreams.u: duplicate key (first set on line 3) (line 4, col 3)",
      'gw.yaml: routes[0].upstream: unknown upstream "v" (line 6, col 26)',
    ]);
  });
});

describe("the published schema", () => {
  test("schema/turnpike.schema.json is what `bun run schema` writes from the code now", () => {
    const onDisk = JSON.parse(readFileSync(new URL("../../schema/turnpike.schema.json", import.meta.url), "utf8"));
    const current = JSON.parse(JSON.stringify(buildConfigSchema(builtinPolicies())));
    expect(onDisk).toEqual(current);
  });
});

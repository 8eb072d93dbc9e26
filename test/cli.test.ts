/**
 * The command line of the built binary: help, version, validate (ok and failing with
 * every error on its own line), run with a bad config, bad options, and the bare
 * `turnpike <config>` form.
 */
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { BINARY, basics, freePort, waitReady, type Gateway } from "./helpers/gateway.ts";

// In a run of several files the preload's default may not reach this one; these start real processes.
setDefaultTimeout(60_000);

const dir = mkdtempSync(join(tmpdir(), "turnpike-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const VERSION = (JSON.parse(readFileSync(resolve(import.meta.dir, "../package.json"), "utf8")) as { version: string }).version;

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the binary to completion (killed after `timeoutMs`). */
async function cli(args: string[], timeoutMs = 30_000): Promise<Outcome> {
  const proc = Bun.spawn([BINARY, ...args], { cwd: dir, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, TURNPIKE_TEST_SET: "yes" } });
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** Writes a config file into the test folder and returns its path. */
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** The 1-based number of the `nth` line of `text` that contains `marker`. */
function lineOf(text: string, marker: string, nth = 1): number {
  const lines = text.split("\n");
  let seen = 0;
  for (let i = 0; i < lines.length; i++) if (lines[i]!.includes(marker) && ++seen === nth) return i + 1;
  throw new Error(`no line ${nth} with ${marker}`);
}

const good = (port: number, adminPort: number) => `${basics({ port, adminPort, port2: 0 })}
upstreams:
  hello:
    type: mock
    mock: { status: 200, body: "hello" }
routes:
  - name: hello
    match: { paths: [/hello] }
    upstream: hello
`;

/** Errors the schema stage finds: unknown keys, references, env, durations. */
const schemaErrors = `listeners:
  - address: 127.0.0.1
    port: 8080
    bogus: 1
server:
  drain_timeout: 5 parsecs
upstreams:
  api:
    targets: ["http://\${TURNPIKE_TEST_UNSET_HOST}:80"]
  fixed:
    type: mock
    mock: { status: 200, delay: soon }
routes:
  - name: first
    match: { paths: [/a] }
    upstream: x
  - name: second
    match: { paths: [/b] }
    upstream: fixed
    timeouts: { total: 3 fortnights }
    colour: blue
`;

/** Errors the compile stage finds once the schema passes: regex, duplicates, ranges. */
const compileErrors = `listeners:
  - address: 127.0.0.1
    port: 8080
server:
  client_idle_timeout: 1000s
upstreams:
  fixed:
    type: mock
    mock: { status: 200 }
routes:
  - name: first
    match: { paths: ["~^/a(b"] }
    upstream: fixed
  - name: first
    match: { paths: [/b] }
    upstream: fixed
  - name: third
    match: { paths: ["/c/:id"] }
    upstream: fixed
    rewrite: { path: "/x/:name" }
`;

describe("help and version", () => {
  test("--help and -h print the usage and exit 0", async () => {
    for (const flag of ["--help", "-h"]) {
      const out = await cli([flag]);
      expect(out.code).toBe(0);
      expect(out.stderr).toBe("");
      for (const text of ["Usage:", "turnpike run <config.yaml> [--workers N]", "turnpike validate <config.yaml>", "turnpike version", "SIGHUP", "SIGTERM"]) {
        expect(out.stdout).toContain(text);
      }
    }
  });

  test("version and --version print the package version", async () => {
    for (const args of [["version"], ["--version"]]) {
      const out = await cli(args);
      expect(out.code).toBe(0);
      expect(out.stdout).toBe(`${VERSION}\n`);
    }
  });
});

describe("validate", () => {
  test("a good config: exit 0 and ok", async () => {
    const path = file("good.yaml", good(8080, 9901));
    const out = await cli(["validate", path]);
    expect(out).toEqual({ code: 0, stdout: `${path}: ok\n`, stderr: "" });
  });

  test("schema-stage errors: every one on its own line with path, line and column; exit 1", async () => {
    const path = file("schema-errors.yaml", schemaErrors);
    const out = await cli(["validate", path]);
    expect(out.code).toBe(1);
    expect(out.stdout).toBe("");
    const lines = out.stderr.trimEnd().split("\n");
    const expected: [string, string, string][] = [
      ["listeners[0].bogus", "unknown key", "bogus: 1"],
      ["server.drain_timeout", "must be a duration", "5 parsecs"],
      ["upstreams.api.targets[0]", "environment variable TURNPIKE_TEST_UNSET_HOST is not set", "TURNPIKE_TEST_UNSET_HOST"],
      ["upstreams.fixed.mock.delay", "must be a duration", "delay: soon"],
      ["routes[0].upstream", 'unknown upstream "x"', "upstream: x"],
      ["routes[1].timeouts.total", "must be a duration", "3 fortnights"],
      ["routes[1].colour", "unknown key", "colour: blue"],
    ];
    expect(lines.length).toBe(expected.length + 1);
    expected.forEach(([where, message, marker], i) => {
      expect(lines[i]).toStartWith(`${path}: ${where}: ${message}`);
      expect(lines[i]).toMatch(new RegExp(`\\(line ${lineOf(schemaErrors, marker)}, col \\d+\\)$`));
    });
    expect(lines.at(-1)).toBe(`${expected.length} error(s).`);
  });

  test("compile-stage errors: bad regex, duplicate route name, out of range, unknown rewrite parameter", async () => {
    const path = file("compile-errors.yaml", compileErrors);
    const out = await cli(["validate", path]);
    expect(out.code).toBe(1);
    const lines = out.stderr.trimEnd().split("\n");
    const expected: [string, string, number][] = [
      ["server.client_idle_timeout", "must be between 1s and 255s", lineOf(compileErrors, "1000s")],
      ["routes[0].match.paths[0]", "invalid regular expression", lineOf(compileErrors, "~^/a(b")],
      ["routes[1].name", 'route name "first" is already used by routes[0]', lineOf(compileErrors, "- name: first", 2)],
      ["routes[2].rewrite.path", "parameter :name is not captured", lineOf(compileErrors, "/x/:name")],
    ];
    expect(lines.length).toBe(expected.length + 1);
    expected.forEach(([where, message, line], i) => {
      expect(lines[i]).toStartWith(`${path}: ${where}: ${message}`);
      expect(lines[i]).toMatch(new RegExp(`\\(line ${line}, col \\d+\\)$`));
    });
    expect(lines.at(-1)).toBe("4 error(s).");
  });

  test("a YAML syntax error names its line; a missing file is one error; both exit 1", async () => {
    const broken = file("broken.yaml", "listeners:\n  - port: 8080\n routes: [\n");
    const syntax = await cli(["validate", broken]);
    expect(syntax.code).toBe(1);
    expect(syntax.stderr).toMatch(new RegExp(`^${escape(broken)}: \\(root\\): YAML syntax: .* \\(line 3, col \\d+\\)$`, "m"));
    const missing = await cli(["validate", join(dir, "nowhere.yaml")]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(`${join(dir, "nowhere.yaml")}: (root): cannot read config file: ENOENT\n1 error(s).\n`);
  });

  test("environment variables that are set are accepted", async () => {
    const path = file("env.yaml", good(8080, 9901).replace('body: "hello"', 'body: "${TURNPIKE_TEST_SET}"'));
    expect((await cli(["validate", path])).code).toBe(0);
  });
});

describe("run", () => {
  test("run with a bad config prints the errors, exits 1 and starts nothing", async () => {
    const port = freePort();
    const adminPort = freePort();
    const text = good(port, adminPort).replace("upstream: hello", "upstream: nowhere");
    const path = file("run-bad.yaml", text);
    for (const args of [["run", path], [path], ["run", path, "--workers", "2"]]) {
      const out = await cli(args);
      expect(out.code).toBe(1);
      expect(out.stderr).toContain(`${path}: routes[0].upstream: unknown upstream "nowhere" (line ${lineOf(text, "nowhere")}, col `);
      expect(out.stderr).toContain("1 error(s); nothing started.");
      // No worker ever ran, no listener was opened.
      expect(out.stderr).not.toContain('"role":"worker"');
      expect(await isListening(port)).toBe(false);
      expect(await isListening(adminPort)).toBe(false);
    }
  });

  test("run with a listener port in use exits 1 with the reason", async () => {
    const blocker = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const path = file("port-taken.yaml", good(blocker.port, freePort()));
      const out = await cli(["run", path, "--workers", "1"]);
      expect(out.code).toBe(1);
      expect(out.stderr).toBe(`${path}: listeners[0].port: 127.0.0.1:${blocker.port} is in use\n1 error(s); nothing started.\n`);
    } finally {
      blocker.stop(true);
    }
  });

  test("run with the admin port in use exits 1 with the reason", async () => {
    const blocker = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const path = file("admin-taken.yaml", good(freePort(), blocker.port));
      const out = await cli(["run", path, "--workers", "1"]);
      expect(out.code).toBe(1);
      expect(out.stderr).toContain(`cannot start the admin listener on 127.0.0.1:${blocker.port}`);
    } finally {
      blocker.stop(true);
    }
  });

  const badWorkers = ["0", "-1", "257", "1.5", "abc", "0x2", "1e1", " 2", ""];
  test.each(badWorkers)("--workers %p exits 2 with a message", async (value) => {
    const path = file("workers.yaml", good(freePort(), freePort()));
    for (const args of [["run", path, "--workers", value], ["run", path, `--workers=${value}`]]) {
      const out = await cli(args);
      expect(out.code).toBe(2);
      expect(out.stdout).toBe("");
      expect(out.stderr).toBe(`turnpike: --workers needs a whole number from 1 to 256, not ${JSON.stringify(value)}\nRun 'turnpike --help' for usage.\n`);
    }
  });

  test("usage errors exit 2", async () => {
    const path = file("usage.yaml", good(freePort(), freePort()));
    const cases: [string[], string][] = [
      [[], "no config file given"],
      [["run"], "run takes one config file"],
      [["run", path, path], "run takes one config file"],
      [[path, path], "run takes one config file"],
      [["validate"], "validate takes one config file"],
      [["run", path, "--frobnicate"], "unknown option --frobnicate"],
      [["run", path, "--workers"], "--workers needs a whole number"],
    ];
    for (const [args, message] of cases) {
      const out = await cli(args);
      expect(out.code).toBe(2);
      expect(out.stderr).toContain(`turnpike: ${message}`);
      expect(out.stderr).toContain("Run 'turnpike --help' for usage.");
    }
  });

  test("`turnpike <config>` runs like `turnpike run <config>`, with --workers=N, whatever shared memory its environment names", async () => {
    const port = freePort();
    const adminPort = freePort();
    const path = file("bare.yaml", good(port, adminPort));
    // A gateway started from another one's environment makes its own shared memory.
    const env = { ...process.env, TURNPIKE_SHARED_MEMORY: "/dev/shm/turnpike-gone" };
    const proc = Bun.spawn([BINARY, path, "--workers=3"], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
    let logs = "";
    void new Response(proc.stderr).text().then((text) => (logs = text));
    try {
      const gateway = { adminUrl: `http://127.0.0.1:${adminPort}`, process: proc, logs: () => logs } as unknown as Gateway;
      await waitReady(gateway);
      const response = await fetch(`http://127.0.0.1:${port}/hello`);
      expect(await response.text()).toBe("hello");
      const status = (await (await fetch(`http://127.0.0.1:${adminPort}/status`)).json()) as { workers: unknown[]; config_file: string };
      expect(status.workers.length).toBe(3);
      expect(status.config_file).toBe(path);
      proc.kill("SIGTERM");
      expect(await proc.exited).toBe(0);
    } finally {
      proc.kill("SIGKILL");
    }
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
async function isListening(port: number): Promise<boolean> {
  try {
    const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
    socket.end();
    return true;
  } catch {
    return false;
  }
}

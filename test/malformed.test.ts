/**
 * Malformed requests over raw TCP against the built binary: each one gets a clear
 * refusal or a closed connection, never a crash. Afterwards the same worker processes
 * still serve. Refusals that come from Bun's HTTP parser are bare (status line and
 * `Connection: close`); refusals from Turnpike itself are problem+json without a stack.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { basics, startGateway, type Gateway } from "./helpers/gateway.ts";
import { sendRaw, type RawResult } from "./helpers/raw-http.ts";

let gateway: Gateway;
let pids: number[];
/** A client that sends half a request and then nothing (slowloris), opened first. */
let stalled: Promise<RawResult>;
let stalledAt: number;

beforeAll(async () => {
  gateway = await startGateway(
    (ports) => `${basics(ports)}
server:
  limits:
    max_header_size: 8KiB
    max_url_length: 4096
upstreams:
  fixed:
    type: mock
    mock: { status: 200, body: "ok" }
  echo:
    type: mock
    mock: { echo: true }
routes:
  - name: fixed
    match: { paths: [/v, "/users/:id"] }
    upstream: fixed
  - name: echo
    match: { paths: ["/echo/*"] }
    upstream: echo
`,
    { workers: 2 },
  );
  pids = await workerPids();
  stalledAt = performance.now();
  stalled = sendRaw(gateway.ports.port, "GET /v HTTP/1.1\r\nHost: x\r\nX-Partial: ", { waitMs: 18_000 });
});

afterAll(async () => {
  expect(await gateway.stop()).toBe(0);
});

async function workerPids(): Promise<number[]> {
  const status = (await (await fetch(`${gateway.adminUrl}/status`)).json()) as { workers: { pid: number }[] };
  return status.workers.map((w) => w.pid).sort();
}

const CRLF = "\r\n";
const get = (target: string, headers = "Host: x\r\n", version = "HTTP/1.1") => `GET ${target} ${version}${CRLF}${headers}${CRLF}`;
const post = (headers: string, body: string) => `POST /echo/a HTTP/1.1${CRLF}Host: x${CRLF}${headers}${CRLF}${body}`;

/**
 * What each case must get:
 * - a number: exactly that status;
 * - "closed": the connection closes without a response.
 * Bun's parser answers a request line it cannot read as HTTP/1.x with 505 (HTTP Version
 * Not Supported, RFC 9110 §15.6.6); those cases say so.
 */
type Expectation = number | "closed";

const cases: [name: string, bytes: string | Uint8Array, expected: Expectation, endAfterWrite?: boolean][] = [
  // Header bytes and syntax
  ["NUL byte in a header value", get("/v", "Host: x\r\nX-Bad: a\x00b\r\n"), 400],
  ["space inside a header name", get("/v", "Host: x\r\nBad Name: a\r\n"), 400],
  ["header line without a colon", get("/v", "Host: x\r\nnocolon\r\n"), 400],
  ["space before the colon", get("/v", "Host : x\r\n"), 400],
  ["obsolete line folding", get("/v", "Host: x\r\nX-A: a\r\n b\r\n"), 400],
  ["HTTP/1.1 without Host", get("/v", ""), 400],
  ["two Host headers", get("/v", "Host: a\r\nHost: b\r\n"), 400],
  ["Host with a space and a slash", get("/v", "Host: a b/c\r\n"), 400],
  ["Host with an impossible port", get("/v", "Host: a:99999\r\n"), 400],
  ["Host with an open IPv6 bracket", get("/v", "Host: [::1\r\n"), 400],
  // Sizes
  ["10 KiB header (over max_header_size, under Bun's limit)", get("/v", `Host: x\r\nX-Long: ${"a".repeat(10_000)}\r\n`), 431],
  ["100 KiB header (over Bun's limit)", get("/v", `Host: x\r\nX-Long: ${"a".repeat(100_000)}\r\n`), 431],
  ["600 headers", get("/v", `Host: x\r\n${Array.from({ length: 600 }, (_, i) => `X-H${i}: v\r\n`).join("")}`), 431],
  ["8 KiB URL (over max_url_length)", get(`/v?${"a".repeat(8_000)}`), 414],
  ["1 MiB URL (over Bun's limit)", get(`/v?${"a".repeat(1024 * 1024)}`), 431],
  // Request line and target
  ["invalid request line", `GARBAGE${CRLF}${CRLF}`, 400],
  ["method with a parenthesis", get("/v").replace("GET", "G(T"), 400],
  ["lower-case method", get("/v").replace("GET", "get"), "closed"],
  ["request line without a version", `GET /v${CRLF}Host: x${CRLF}${CRLF}`, 505],
  ["control byte in the target", get("/v\x01"), 505],
  ["bare LF line ends", "GET /v HTTP/1.1\nHost: x\n\n", 505],
  ["asterisk target on GET", get("*"), 400],
  ["target without a leading slash", get("v"), 400],
  ["percent not followed by hex", get("/users/%zz"), 400],
  ["truncated percent escape", get("/users/%E0%A4%A"), 400],
  ["lone percent in the query", get("/v?a=%"), 400],
  ["broken absolute-form target", get("http://[::1"), 404],
  // Framing
  ["Content-Length and Transfer-Encoding", post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), 400],
  ["two different Content-Lengths", post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"), 400],
  ["two equal Content-Lengths", post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"), 400],
  ["negative Content-Length", post("Content-Length: -5\r\n", "hello"), 400],
  ["non-numeric Content-Length", post("Content-Length: abc\r\n", "hello"), 400],
  ["Content-Length beyond 2^64", post("Content-Length: 99999999999999999999999\r\n", "hello"), 400],
  ["unsupported Transfer-Encoding", post("Transfer-Encoding: gzip\r\n", "hello"), 400],
  ["invalid chunk size", post("Transfer-Encoding: chunked\r\n", "zz\r\nhello\r\n0\r\n\r\n"), 400],
  ["invalid chunk size after a good chunk", post("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\nzz\r\n"), 400],
  // Versions and other protocols
  ["HTTP/2.0 in an HTTP/1 request line", get("/v", "Host: x\r\n", "HTTP/2.0"), 505],
  ["HTTP/3.1", get("/v", "Host: x\r\n", "HTTP/3.1"), 505],
  ["HTTP/2 prior-knowledge preface", `PRI * HTTP/2.0${CRLF}${CRLF}SM${CRLF}${CRLF}`, 400],
  ["TLS ClientHello on a plain listener", Uint8Array.from(Buffer.from("16030100a5010000a10303", "hex")), 400],
  ["random bytes", Uint8Array.from({ length: 256 }, (_, i) => (i * 7919 + 13) & 255), 400],
  // Unfinished
  ["unterminated request, then the client closes", `GET /v HTTP/1.1${CRLF}Host: x${CRLF}`, "closed", true],
];

/** Cases that pass Bun's parser and are refused by Turnpike's own checks. */
const ANSWERED_BY_TURNPIKE = new Set([
  "two Host headers",
  "Host with a space and a slash",
  "Host with an impossible port",
  "Host with an open IPv6 bracket",
  "10 KiB header (over max_header_size, under Bun's limit)",
  "8 KiB URL (over max_url_length)",
  "percent not followed by hex",
  "truncated percent escape",
  "lone percent in the query",
  "broken absolute-form target",
  "two equal Content-Lengths",
]);

describe("malformed requests", () => {
  // All cases go out at once; each test then checks its own answer.
  let results: Map<string, RawResult>;
  beforeAll(async () => {
    const answers = await Promise.all(cases.map(([, bytes, , endAfterWrite]) => sendRaw(gateway.ports.port, bytes, { endAfterWrite })));
    results = new Map(cases.map(([name], i) => [name, answers[i]!]));
  });

  test.each(cases)("%s", (name, _bytes, expected) => {
    const result = results.get(name)!;
    if (expected === "closed") {
      expect(result.status).toBeNull();
      expect(result.closed).toBe(true);
      return;
    }
    expect(result.status).toBe(expected);
    const fromTurnpike = "x-request-id" in result.headers;
    expect(fromTurnpike).toBe(ANSWERED_BY_TURNPIKE.has(name));
    if (fromTurnpike) {
      expect(result.headers["content-type"]).toBe("application/problem+json");
      const body = JSON.parse(result.body) as Record<string, unknown>;
      expect(Object.keys(body).sort()).toEqual(["detail", "request_id", "status", "title", "type"]);
      expect(body.status).toBe(expected);
      expect(result.body).not.toMatch(/\bat .*\(|stack|\.ts:\d/);
    } else {
      // Bun's parser: a bare refusal that closes the connection.
      expect(result.headers.connection).toBe("close");
      expect(result.body).toBe("");
    }
  });
});

describe("requests that look odd but are valid", () => {
  test("HTTP/1.0 without Host is served, with the listener as authority", async () => {
    const result = await sendRaw(gateway.ports.port, `GET /echo/x HTTP/1.0${CRLF}${CRLF}`);
    expect(result.status).toBe(200);
    const echo = JSON.parse(result.body) as { headers: Record<string, string> };
    expect(echo.headers["x-forwarded-host"]).toBe(`127.0.0.1:${gateway.ports.port}`);
  });

  test("valid escapes and UTF-8 in the target pass", async () => {
    expect((await sendRaw(gateway.ports.port, get("/users/caf%C3%A9"))).status).toBe(200);
    expect((await sendRaw(gateway.ports.port, get("/users/%2F%20?q=%41"))).status).toBe(200);
  });

  test("a stalled, unterminated request is closed by the server (Bun's 10 s header timeout)", async () => {
    const result = await stalled;
    expect(result.closed).toBe(true);
    expect(result.status).toBeNull();
    expect(performance.now() - stalledAt).toBeLessThan(16_000);
  }, 20_000);
});

describe("after all of them", () => {
  test("the same worker processes serve, and a normal request succeeds", async () => {
    expect(await workerPids()).toEqual(pids);
    const status = (await (await fetch(`${gateway.adminUrl}/status`)).json()) as { worker_restarts: number };
    expect(status.worker_restarts).toBe(0);
    const response = await fetch(`${gateway.url}/v`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("ok");
    const echo = await fetch(`${gateway.url}/echo/a`, { method: "POST", body: "hello" });
    expect(((await echo.json()) as { body: string }).body).toBe("hello");
    // A client's broken request is the client's fault: never logged as a gateway failure.
    expect(gateway.logs()).not.toContain("unexpected error");
  });
});

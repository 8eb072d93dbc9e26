/**
 * The gateway behaves as an HTTP intermediary should (RFC 9110, RFC 9112), through the
 * built binary and real upstreams: hop-by-hop headers stay on their hop, X-Forwarded-*
 * and X-Request-ID are set, status, headers and bodies pass unchanged (redirects not
 * followed, gzip not touched), route actions rewrite path, Host and headers, routes
 * match on host, method, headers, query and priority, and request limits answer
 * 413, 414, 415 and 431 as problem+json.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { basics, startGateway, type Gateway } from "./helpers/gateway.ts";
import { headerValue, rawExchange, startRawUpstream, type RawUpstream } from "./helpers/raw-upstream.ts";
import { startUpstream, type TestUpstream } from "./helpers/upstream.ts";
import { expectProblem } from "./helpers/problem.ts";

/** What the echo upstream saw, as it answers it. */
interface Echo {
  method: string;
  /** The request target exactly as received (path and query). */
  target: string;
  headers: [string, string][];
  body: string;
}

/** 200 KiB that gzip cannot shrink much, so its gzip stays above the gateway's 64 KiB buffer limit. */
const LARGE_PLAIN = (() => {
  const bytes = new Uint8Array(200 * 1024);
  let seed = 7;
  for (let i = 0; i < bytes.length; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    bytes[i] = seed >>> 24;
  }
  return bytes;
})();
const SMALL_PLAIN = new TextEncoder().encode("hello, compressed world\n".repeat(100));
const LARGE_GZIP = Bun.gzipSync(LARGE_PLAIN);
const SMALL_GZIP = Bun.gzipSync(SMALL_PLAIN);

let echo: TestUpstream;
let raw: RawUpstream;
let gateway: Gateway;

/** Answers every request with a JSON description of it, except for a few special paths. */
async function echoHandler(request: Request): Promise<Response> {
  const target = request.url.slice(request.url.indexOf("/", 8));
  const path = target.split("?")[0]!;
  switch (path) {
    case "/redirect/302":
      return new Response(null, { status: 302, headers: { location: "/redirect/target" } });
    case "/redirect/301":
      return new Response("moved", { status: 301, headers: { location: "https://elsewhere.example/new" } });
    case "/redirect/target":
      return new Response("followed!");
    case "/cookies": {
      const headers = new Headers({ "content-type": "text/plain" });
      headers.append("set-cookie", "session=abc; Path=/; HttpOnly");
      headers.append("set-cookie", "theme=dark; Path=/; Max-Age=3600");
      headers.append("set-cookie", "lang=en, fr; Path=/");
      return new Response("cookies", { headers });
    }
    case "/gzip/small":
      return new Response(SMALL_GZIP, { headers: { "content-encoding": "gzip", "content-type": "text/plain", vary: "accept-encoding" } });
    case "/gzip/large":
      return new Response(LARGE_GZIP, { headers: { "content-encoding": "gzip", "content-type": "application/octet-stream" } });
    case "/status/204":
      return new Response(null, { status: 204, headers: { "x-upstream": "yes" } });
    case "/status/304":
      return new Response(null, { status: 304, headers: { etag: '"v1"', "cache-control": "max-age=60" } });
    case "/status/418":
      return new Response("short and stout", { status: 418, headers: { "x-teapot": "1" } });
    case "/status/500":
      return Response.json({ upstream: "broke" }, { status: 500 });
    case "/status/503":
      return new Response("later", { status: 503, headers: { "retry-after": "120" } });
    case "/head/small":
    case "/head/large": {
      const length = path === "/head/small" ? 1234 : 10 * 1024 * 1024;
      if (request.method === "HEAD") return new Response(null, { headers: { "content-length": String(length), "x-kind": "head" } });
      return new Response(new Uint8Array(length).fill(120), { headers: { "x-kind": "get" } });
    }
    case "/response-headers":
      return new Response("ok", { headers: { "x-internal": "secret", "cache-control": "public" } });
  }
  const body = request.body ? await request.text() : "";
  const echoed: Echo = { method: request.method, target, headers: [...request.headers], body };
  return Response.json(echoed);
}

beforeAll(async () => {
  echo = startUpstream(echoHandler);
  raw = startRawUpstream((request, reply) => {
    if (request.target === "/raw/hop-by-hop") {
      reply.write(
        "HTTP/1.1 200 OK\r\n" +
          "Connection: close, X-Hop-Response\r\n" +
          "X-Hop-Response: secret\r\n" +
          "Keep-Alive: timeout=5, max=100\r\n" +
          'Proxy-Authenticate: Basic realm="upstream"\r\n' +
          "Proxy-Status: upstream\r\n" +
          "Upgrade: example/1\r\n" +
          "Trailer: X-Checksum\r\n" +
          "X-End-To-End: kept\r\n" +
          "Content-Type: text/plain\r\n" +
          "Transfer-Encoding: chunked\r\n" +
          "\r\n" +
          "6\r\nhello \r\n5\r\nworld\r\n0\r\nX-Checksum: 42\r\n\r\n",
      );
    } else {
      reply.write("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
    reply.end();
  });
  gateway = await startGateway(
    (ports) => `${basics(ports)}
server:
  workers: 1
  limits: { max_header_size: 8KiB, max_url_length: 2048 }
upstreams:
  echo:
    targets: [${echo.url}]
  echo-base:
    targets: [${echo.url}/base]
  raw:
    targets: [${raw.url}]
routes:
  - name: everything
    match: { paths: ["/*"] }
    upstream: echo
  - name: raw
    match: { paths: ["/raw/*"] }
    upstream: raw
  - name: strip-prefix
    match: { paths: ["/strip/*"] }
    upstream: echo
    rewrite: { strip_prefix: /strip }
  - name: base-path
    match: { paths: ["/based/*"] }
    upstream: echo-base
    rewrite: { strip_prefix: /based }
  - name: path-params
    match: { paths: ["/users/:id/posts/:post"] }
    upstream: echo
    rewrite: { path: "/v2/posts/:post/by/:id" }
  - name: path-rest
    match: { paths: ["/files/*rest"] }
    upstream: echo
    rewrite: { path: "/storage/:rest" }
  - name: path-regex
    # A prefix pattern (the catch-all /*) outranks a regex at equal priority.
    priority: 1
    match: { paths: ["~^/legacy/"] }
    upstream: echo
    rewrite: { regex: "^/legacy/([a-z]+)/([0-9]+)$", replacement: "/modern/$2/$1" }
  - name: host-preserve
    match: { paths: [/host/preserve] }
    upstream: echo
    host_header: preserve
  - name: host-set
    match: { paths: [/host/set] }
    upstream: echo
    host_header: { set: internal.example }
  - name: host-upstream
    match: { paths: [/host/upstream] }
    upstream: echo
    host_header: upstream
  - name: header-ops
    match: { paths: [/header-ops, /response-headers] }
    upstream: echo
    request_headers:
      remove: [x-drop-me]
      set: { x-env: test, x-overwrite: by-gateway }
      add: { x-tag: [one, two] }
    response_headers:
      remove: [x-internal]
      set: { cache-control: no-store }
      add: { x-served-by: turnpike }
  - name: which-exact-host
    match: { hosts: [api.example.com], paths: [/which] }
    upstream: echo
    response_headers: { set: { x-route: exact-host } }
  - name: which-wildcard-host
    match: { hosts: ["*.example.com"], paths: [/which] }
    upstream: echo
    response_headers: { set: { x-route: wildcard-host } }
  - name: which-any-host
    match: { paths: [/which] }
    upstream: echo
    response_headers: { set: { x-route: any-host } }
  - name: method-write
    match: { paths: [/method], methods: [POST, PUT] }
    upstream: echo
    response_headers: { set: { x-route: write } }
  - name: method-other
    match: { paths: [/method] }
    upstream: echo
    response_headers: { set: { x-route: other } }
  - name: header-beta
    match: { paths: [/flag], headers: { x-beta: { one_of: ["1", "yes"] } } }
    upstream: echo
    response_headers: { set: { x-route: beta-header } }
  - name: query-v2
    match: { paths: [/flag], query: { v: "2" } }
    upstream: echo
    response_headers: { set: { x-route: query-v2 } }
  - name: flag-plain
    match: { paths: [/flag] }
    upstream: echo
    response_headers: { set: { x-route: plain } }
  - name: prio-first-in-file
    match: { paths: [/prio] }
    upstream: echo
    response_headers: { set: { x-route: first-in-file } }
  - name: prio-high
    priority: 10
    match: { paths: [/prio] }
    upstream: echo
    response_headers: { set: { x-route: high } }
  - name: prio-prefix-over-exact
    priority: 5
    match: { paths: ["/ranked/*"] }
    upstream: echo
    response_headers: { set: { x-route: prefix-priority-5 } }
  - name: prio-exact
    match: { paths: [/ranked/exact] }
    upstream: echo
    response_headers: { set: { x-route: exact } }
  - name: limited
    match: { paths: ["/limited"] }
    upstream: echo
    limits: { max_body_size: 1KiB }
  - name: json-only
    match: { paths: ["/json-only"] }
    upstream: echo
    policies:
      - type: content-type
        config: { allow: [application/json] }
`,
  );
}, 60_000);

afterAll(async () => {
  await gateway?.stop();
  echo?.stop();
  raw?.stop();
}, 60_000);

/** GETs (or sends) through the gateway and parses the echo. */
async function echoed(path: string, init?: RequestInit): Promise<{ response: Response; echo: Echo }> {
  const response = await fetch(`${gateway.url}${path}`, init);
  expect(response.status).toBe(200);
  return { response, echo: (await response.json()) as Echo };
}

/** The single value of a header in an echo, or null. */
function seenHeader(echoValue: Echo, name: string): string | null {
  return headerValue(echoValue.headers, name);
}

describe("hop-by-hop headers", () => {
  test("are not forwarded upstream, nor any header the client's Connection names", async () => {
    const { status, body } = await rawExchange(
      gateway.ports.port,
      "POST /echo/hop HTTP/1.1\r\n" +
        "Host: 127.0.0.1\r\n" +
        "Connection: close, X-Hop-Request, X-Other-Hop\r\n" +
        "X-Hop-Request: secret\r\n" +
        "X-Other-Hop: secret too\r\n" +
        "Keep-Alive: timeout=5\r\n" +
        "TE: trailers\r\n" +
        "Trailer: X-Checksum\r\n" +
        "Upgrade: example/1\r\n" +
        "Proxy-Authorization: Basic dXNlcjpwYXNz\r\n" +
        "Proxy-Connection: keep-alive\r\n" +
        "Proxy-Custom: anything\r\n" +
        "X-End-To-End: kept\r\n" +
        "Content-Type: text/plain\r\n" +
        "Transfer-Encoding: chunked\r\n" +
        "\r\n" +
        "6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n",
    );
    expect(status).toBe(200);
    // The gateway's own framing to us may be chunked: take the JSON out of it.
    const seen = JSON.parse(body.slice(body.indexOf("{"), body.lastIndexOf("}") + 1)) as Echo;
    const names = seen.headers.map(([name]) => name);
    for (const name of ["x-hop-request", "x-other-hop", "keep-alive", "te", "trailer", "upgrade", "proxy-authorization", "proxy-connection", "proxy-custom"]) {
      expect(names).not.toContain(name);
    }
    // fetch may keep its own connection to the upstream alive; nothing of the client's list remains.
    const connection = seenHeader(seen, "connection");
    if (connection !== null) expect(connection.toLowerCase()).toBe("keep-alive");
    expect(seenHeader(seen, "x-end-to-end")).toBe("kept");
    // The chunked body arrives whole, re-framed by the gateway.
    expect(seen.body).toBe("hello world");
  });

  test("are not returned to the client, nor any header the upstream's Connection names", async () => {
    const response = await fetch(`${gateway.url}/raw/hop-by-hop`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("hello world");
    for (const name of ["x-hop-response", "keep-alive", "proxy-authenticate", "proxy-status", "upgrade", "trailer"]) {
      expect(response.headers.get(name)).toBeNull();
    }
    expect(response.headers.get("connection") ?? "keep-alive").toBe("keep-alive");
    expect(response.headers.get("x-end-to-end")).toBe("kept");
    expect(response.headers.get("content-type")).toBe("text/plain");
  });
});

describe("forwarding headers and request id", () => {
  test("X-Forwarded-For is appended to the client's value; X-Forwarded-Proto and -Host are set", async () => {
    const { echo: seen } = await echoed("/echo/xff", { headers: { "x-forwarded-for": "203.0.113.7, 198.51.100.2", "x-forwarded-proto": "https", "x-forwarded-host": "spoofed.example" } });
    expect(seenHeader(seen, "x-forwarded-for")).toBe("203.0.113.7, 198.51.100.2, 127.0.0.1");
    expect(seenHeader(seen, "x-forwarded-proto")).toBe("http");
    expect(seenHeader(seen, "x-forwarded-host")).toBe(`127.0.0.1:${gateway.ports.port}`);
  });

  test("without a client value, X-Forwarded-For is the client's address", async () => {
    const { echo: seen } = await echoed("/echo/xff-none");
    expect(seenHeader(seen, "x-forwarded-for")).toBe("127.0.0.1");
  });

  test("X-Request-ID goes upstream and comes back, the client's or a generated one", async () => {
    const given = await echoed("/echo/rid", { headers: { "x-request-id": "trace-me-123" } });
    expect(seenHeader(given.echo, "x-request-id")).toBe("trace-me-123");
    expect(given.response.headers.get("x-request-id")).toBe("trace-me-123");
    const generated = await echoed("/echo/rid");
    const id = generated.response.headers.get("x-request-id");
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(seenHeader(generated.echo, "x-request-id")).toBe(id);
  });
});

describe("responses pass unchanged", () => {
  test("redirects are returned to the client, never followed", async () => {
    const before = echo.seen.filter((s) => s.path === "/redirect/target").length;
    const found = await fetch(`${gateway.url}/redirect/302`, { redirect: "manual" });
    expect(found.status).toBe(302);
    expect(found.headers.get("location")).toBe("/redirect/target");
    const moved = await fetch(`${gateway.url}/redirect/301`, { redirect: "manual" });
    expect(moved.status).toBe(301);
    expect(moved.headers.get("location")).toBe("https://elsewhere.example/new");
    expect(await moved.text()).toBe("moved");
    expect(echo.seen.filter((s) => s.path === "/redirect/target").length).toBe(before);
  });

  test("several Set-Cookie headers stay separate headers", async () => {
    const response = await fetch(`${gateway.url}/cookies`);
    expect(response.headers.getSetCookie()).toEqual(["session=abc; Path=/; HttpOnly", "theme=dark; Path=/; Max-Age=3600", "lang=en, fr; Path=/"]);
    const { headers } = await rawExchange(gateway.ports.port, "GET /cookies HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    expect(headers.filter(([name]) => name === "set-cookie").length).toBe(3);
  });

  test("upstream statuses and their headers are kept, errors included", async () => {
    const teapot = await fetch(`${gateway.url}/status/418`);
    expect(teapot.status).toBe(418);
    expect(teapot.headers.get("x-teapot")).toBe("1");
    expect(await teapot.text()).toBe("short and stout");
    const broken = await fetch(`${gateway.url}/status/500`);
    expect(broken.status).toBe(500);
    expect(broken.headers.get("content-type")).toStartWith("application/json");
    expect(await broken.json()).toEqual({ upstream: "broke" });
    const later = await fetch(`${gateway.url}/status/503`);
    expect(later.status).toBe(503);
    expect(later.headers.get("retry-after")).toBe("120");
  });

  for (const size of ["small", "large"] as const) {
    test(`a ${size} gzip body arrives byte-identical, still gzip, and decodable`, async () => {
      const expected = size === "small" ? SMALL_GZIP : LARGE_GZIP;
      const response = await fetch(`${gateway.url}/gzip/${size}`, {
        headers: { "accept-encoding": "gzip" },
        decompress: false,
      });
      expect(response.status).toBe(200);
      expect(response.headers.get("content-encoding")).toBe("gzip");
      const bytes = new Uint8Array(await response.arrayBuffer());
      expect(bytes.length).toBe(expected.length);
      expect(Buffer.from(bytes).equals(Buffer.from(expected))).toBe(true);
      const plain = Bun.gunzipSync(bytes);
      expect(Buffer.from(plain).equals(Buffer.from(size === "small" ? SMALL_PLAIN : LARGE_PLAIN))).toBe(true);
      // An ordinary client that decodes gzip gets the original.
      const decoded = new Uint8Array(await (await fetch(`${gateway.url}/gzip/${size}`)).arrayBuffer());
      expect(decoded.length).toBe(size === "small" ? SMALL_PLAIN.length : LARGE_PLAIN.length);
    });
  }

  test("Accept-Encoding goes upstream as the client sent it, and no other", async () => {
    const { echo: seen } = await echoed("/echo/ae", { headers: { "accept-encoding": "br;q=1, gzip;q=0.5" } });
    expect(seenHeader(seen, "accept-encoding")).toBe("br;q=1, gzip;q=0.5");
    const { body } = await rawExchange(gateway.ports.port, "GET /echo/no-ae HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    const bare = JSON.parse(body.slice(body.indexOf("{"), body.lastIndexOf("}") + 1)) as Echo;
    expect(seenHeader(bare, "accept-encoding")).toBeNull();
  });

  for (const size of ["small", "large"] as const) {
    test(`HEAD keeps the upstream's Content-Length (${size}) and sends no body`, async () => {
      const expectedLength = size === "small" ? "1234" : String(10 * 1024 * 1024);
      const response = await fetch(`${gateway.url}/head/${size}`, { method: "HEAD" });
      expect(response.status).toBe(200);
      expect(response.headers.get("x-kind")).toBe("head");
      expect(response.headers.get("content-length")).toBe(expectedLength);
      const exchange = await rawExchange(gateway.ports.port, `HEAD /head/${size} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
      expect(exchange.status).toBe(200);
      expect(exchange.body).toBe("");
      expect(headerValue(exchange.headers, "content-length")).toBe(expectedLength);
      expect(headerValue(exchange.headers, "transfer-encoding")).toBeNull();
    });
  }

  test("204 and 304 carry no body and keep their headers", async () => {
    const noContent = await rawExchange(gateway.ports.port, "GET /status/204 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    expect(noContent.status).toBe(204);
    expect(noContent.body).toBe("");
    expect(headerValue(noContent.headers, "x-upstream")).toBe("yes");
    expect(headerValue(noContent.headers, "transfer-encoding")).toBeNull();
    expect(headerValue(noContent.headers, "content-length")).toBeNull();
    const notModified = await rawExchange(
      gateway.ports.port,
      'GET /status/304 HTTP/1.1\r\nHost: 127.0.0.1\r\nIf-None-Match: "v1"\r\nConnection: close\r\n\r\n',
    );
    expect(notModified.status).toBe(304);
    expect(notModified.body).toBe("");
    expect(headerValue(notModified.headers, "etag")).toBe('"v1"');
    expect(headerValue(notModified.headers, "cache-control")).toBe("max-age=60");
    expect(headerValue(notModified.headers, "transfer-encoding")).toBeNull();
  });

  test("the query string reaches the upstream exactly as sent", async () => {
    const query = "?b=2&a=1&a=&c=%20x+y&d=%2F%3F&e&f=caf%C3%A9&g=a,b;c&h=~!*()";
    const { echo: seen } = await echoed(`/echo/query${query}`);
    expect(seen.target).toBe(`/echo/query${query}`);
    const bare = await echoed("/echo/query?");
    expect(bare.echo.target.startsWith("/echo/query")).toBe(true);
  });

  test("methods and bodies pass through", async () => {
    for (const method of ["POST", "PUT", "PATCH", "DELETE"]) {
      const { echo: seen } = await echoed("/echo/body", { method, body: `payload for ${method}`, headers: { "content-type": "text/plain" } });
      expect(seen.method).toBe(method);
      expect(seen.body).toBe(`payload for ${method}`);
      expect(seenHeader(seen, "content-length")).toBe(String(`payload for ${method}`.length));
    }
  });
});

describe("route actions", () => {
  test("strip_prefix removes the prefix and keeps the query", async () => {
    expect((await echoed("/strip/a/b?x=1")).echo.target).toBe("/a/b?x=1");
    expect((await echoed("/strip")).echo.target).toBe("/");
    expect((await echoed("/strip/")).echo.target).toBe("/");
  });

  test("a target URL with a base path prefixes the upstream path", async () => {
    expect((await echoed("/based/items?page=2")).echo.target).toBe("/base/items?page=2");
  });

  test("path with :params builds the upstream path from captured parameters", async () => {
    expect((await echoed("/users/42/posts/7?full=1")).echo.target).toBe("/v2/posts/7/by/42?full=1");
    // A captured parameter is re-encoded, so it cannot add path segments.
    expect((await echoed("/users/a%2Fb/posts/x%20y")).echo.target).toBe("/v2/posts/x%20y/by/a%2Fb");
    expect((await echoed("/files/docs/2024/report.pdf")).echo.target).toBe("/storage/docs/2024/report.pdf");
    expect((await echoed("/files/caf%C3%A9/a%20b.txt")).echo.target).toBe("/storage/caf%C3%A9/a%20b.txt");
  });

  test("an encoded slash in a captured parameter cannot climb out of the rewritten path", async () => {
    expect((await echoed("/users/..%2F..%2Fadmin/posts/1")).echo.target).toBe("/v2/posts/1/by/..%2F..%2Fadmin");
    expect((await echoed("/files/..%2Fsecret")).echo.target).toBe("/storage/..%2Fsecret");
    expect((await echoed("/files/a/..%2F..%2Fsecret")).echo.target).toBe("/storage/a%2F..%2F..%2Fsecret");
    // Plain dot segments are resolved before routing, as any URL is.
    expect((await echoed("/files/a/../b")).echo.target).toBe("/storage/b");
  });

  test("regex rewrites with capture groups", async () => {
    expect((await echoed("/legacy/orders/123?q=z")).echo.target).toBe("/modern/123/orders?q=z");
  });

  test("host_header: upstream (the default) sends the target's host", async () => {
    const { echo: seen } = await echoed("/host/upstream", { headers: { host: "public.example" } });
    expect(seenHeader(seen, "host")).toBe(new URL(echo.url).host);
    expect(seenHeader(seen, "x-forwarded-host")).toBe("public.example");
    const fallback = await echoed("/echo/default-host", { headers: { host: "public.example" } });
    expect(seenHeader(fallback.echo, "host")).toBe(new URL(echo.url).host);
  });

  test("host_header: preserve sends the client's host", async () => {
    const { echo: seen } = await echoed("/host/preserve", { headers: { host: "public.example:8443" } });
    expect(seenHeader(seen, "host")).toBe("public.example:8443");
  });

  test("host_header: {set} sends a fixed host", async () => {
    const { echo: seen } = await echoed("/host/set", { headers: { host: "public.example" } });
    expect(seenHeader(seen, "host")).toBe("internal.example");
  });

  test("request_headers remove, set and add headers sent upstream", async () => {
    const { echo: seen } = await echoed("/header-ops", { headers: { "x-drop-me": "1", "x-overwrite": "by-client", "x-tag": "zero", "x-keep": "yes" } });
    expect(seenHeader(seen, "x-drop-me")).toBeNull();
    expect(seenHeader(seen, "x-env")).toBe("test");
    expect(seenHeader(seen, "x-overwrite")).toBe("by-gateway");
    expect(seenHeader(seen, "x-tag")).toBe("zero, one, two");
    expect(seenHeader(seen, "x-keep")).toBe("yes");
  });

  test("response_headers remove, set and add headers sent to the client", async () => {
    const response = await fetch(`${gateway.url}/response-headers`);
    expect(response.headers.get("x-internal")).toBeNull();
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(response.headers.get("x-served-by")).toBe("turnpike");
    expect(await response.text()).toBe("ok");
  });
});

describe("route matching", () => {
  const routeOf = async (path: string, init?: RequestInit) => {
    const response = await fetch(`${gateway.url}${path}`, init);
    await response.arrayBuffer();
    return response.headers.get("x-route");
  };

  test("an exact host wins over a wildcard, a wildcard over any host", async () => {
    expect(await routeOf("/which", { headers: { host: "api.example.com" } })).toBe("exact-host");
    expect(await routeOf("/which", { headers: { host: "API.Example.com:8080" } })).toBe("exact-host");
    expect(await routeOf("/which", { headers: { host: "shop.example.com" } })).toBe("wildcard-host");
    expect(await routeOf("/which", { headers: { host: "a.b.example.com" } })).toBe("wildcard-host");
    // The wildcard needs a label before the suffix.
    expect(await routeOf("/which", { headers: { host: "example.com" } })).toBe("any-host");
    expect(await routeOf("/which", { headers: { host: "other.test" } })).toBe("any-host");
  });

  test("methods select among routes of the same path", async () => {
    expect(await routeOf("/method", { method: "POST", body: "x" })).toBe("write");
    expect(await routeOf("/method", { method: "PUT", body: "x" })).toBe("write");
    expect(await routeOf("/method")).toBe("other");
    expect(await routeOf("/method", { method: "DELETE" })).toBe("other");
  });

  test("header and query conditions select among routes of the same path", async () => {
    expect(await routeOf("/flag", { headers: { "x-beta": "yes" } })).toBe("beta-header");
    expect(await routeOf("/flag", { headers: { "x-beta": "no" } })).toBe("plain");
    expect(await routeOf("/flag?v=2")).toBe("query-v2");
    expect(await routeOf("/flag?v=3")).toBe("plain");
    expect(await routeOf("/flag")).toBe("plain");
  });

  test("a higher priority wins over file order and over a more specific path", async () => {
    expect(await routeOf("/prio")).toBe("high");
    expect(await routeOf("/ranked/exact")).toBe("prefix-priority-5");
    expect(await routeOf("/ranked/other")).toBe("prefix-priority-5");
  });
});

describe("request limits", () => {
  test("a declared body over the route's max_body_size is refused with 413 before the upstream", async () => {
    for (const size of [2048, 8 * 1024 * 1024]) {
      const before = echo.seen.length;
      const response = await fetch(`${gateway.url}/limited`, { method: "POST", body: new Uint8Array(size), headers: { "content-type": "application/octet-stream" } });
      const problem = await expectProblem(response, 413);
      expect(problem.type).toBe("urn:turnpike:problem:body-too-large");
      expect(echo.seen.length).toBe(before);
    }
  });

  test("a chunked body of unknown length over max_body_size is refused with 413, and the client stops sending", async () => {
    const total = 64 * 1024 * 1024;
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= total) return controller.close();
        controller.enqueue(new Uint8Array(16 * 1024).fill(97));
        sent += 16 * 1024;
      },
    });
    const response = await fetch(`${gateway.url}/limited`, {
      method: "POST",
      body,
      headers: { "content-type": "text/plain" },
      duplex: "half",
    });
    await expectProblem(response, 413);
    expect(sent).toBeLessThan(16 * 1024 * 1024);
  });

  test("bodies up to max_body_size pass, declared or chunked", async () => {
    const exact = "y".repeat(1024);
    const declared = await echoed("/limited", { method: "POST", body: exact });
    expect(declared.echo.body).toBe(exact);
    const chunked = await echoed("/limited", {
      method: "POST",
      body: new Response(exact).body,
      duplex: "half",
    });
    expect(chunked.echo.body).toBe(exact);
  });

  test("a content-type outside the route's allow list is refused with 415", async () => {
    const xml = await fetch(`${gateway.url}/json-only`, { method: "POST", body: "<a/>", headers: { "content-type": "application/xml" } });
    await expectProblem(xml, 415);
    const json = await echoed("/json-only", { method: "POST", body: "{}", headers: { "content-type": "application/json; charset=utf-8" } });
    expect(json.echo.body).toBe("{}");
  });

  test("request headers over server.limits.max_header_size are refused with 431", async () => {
    const response = await fetch(`${gateway.url}/echo/headers`, { headers: { "x-big": "h".repeat(9 * 1024) } });
    await expectProblem(response, 431);
    const fine = await fetch(`${gateway.url}/echo/headers`, { headers: { "x-big": "h".repeat(4 * 1024) } });
    expect(fine.status).toBe(200);
  });

  test("a request target longer than max_url_length is refused with 414", async () => {
    const response = await fetch(`${gateway.url}/echo/${"u".repeat(2100)}`);
    await expectProblem(response, 414);
    const longQuery = await fetch(`${gateway.url}/echo/q?${"k=v&".repeat(600)}`);
    await expectProblem(longQuery, 414);
    const fine = await fetch(`${gateway.url}/echo/${"u".repeat(1900)}`);
    expect(fine.status).toBe(200);
  });
});

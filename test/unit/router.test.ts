/**
 * The router's shared suite: every documented matching and ranking rule, driven through
 * the public config shape (ConfigLoader.loadText) so the tests read like configs.
 */
import { describe, expect, test } from "bun:test";
import { ConfigLoader } from "../../src/config/load.ts";
import { formatError } from "../../src/config/source.ts";
import type { Router } from "../../src/router/router.ts";

const loader = new ConfigLoader();

/** Builds a router from route entries written as YAML list items; every route uses the mock upstream `u`. */
function routerFor(routes: string): Router {
  const text = `listeners: [{ port: 0 }]\nupstreams:\n  u: { type: mock }\nroutes:\n${routes}`;
  const result = loader.loadText(text, "/virtual/router.yaml", {});
  if (!result.ok) throw new Error(result.errors.map((error) => formatError("router.yaml", error)).join("\n"));
  return result.loaded.graph.router;
}

interface Sent {
  method?: string;
  headers?: Record<string, string>;
}

/** The name and params of the route a request hits, or null for no match. */
function hit(router: Router, url: string, sent: Sent = {}): { route: string; params: Record<string, string> } | null {
  const request = new Request(url, { method: sent.method ?? "GET", headers: sent.headers });
  const found = router.match(request, new URL(url));
  return found ? { route: found.route.name, params: found.params } : null;
}

/** Only the route name a request hits, or null. */
function routeOf(router: Router, url: string, sent: Sent = {}): string | null {
  return hit(router, url, sent)?.route ?? null;
}

const H = "http://gw.test";

describe("paths", () => {
  test("an exact path matches only itself, without looking at the query", () => {
    const router = routerFor(`  - { name: hello, upstream: u, match: { paths: [/hello] } }\n`);
    expect(hit(router, `${H}/hello`)).toEqual({ route: "hello", params: {} });
    expect(routeOf(router, `${H}/hello?x=1`)).toBe("hello");
    for (const miss of ["/hello/", "/hello/x", "/hell", "/helloo", "/", "/HELLO"]) expect(routeOf(router, H + miss)).toBeNull();
  });

  test("/api/* matches /api, /api/ and everything below, but not /apix", () => {
    const router = routerFor(`  - { name: api, upstream: u, match: { paths: ["/api/*"] } }\n`);
    for (const path of ["/api", "/api/", "/api/x", "/api/x/y/z"]) expect(routeOf(router, H + path)).toBe("api");
    for (const path of ["/apix", "/apix/y", "/ap", "/", "/v1/api"]) expect(routeOf(router, H + path)).toBeNull();
  });

  test("/* matches every path, the root included", () => {
    const router = routerFor(`  - { name: all, upstream: u, match: { paths: ["/*"] } }\n`);
    for (const path of ["/", "/a", "/a/b/"]) expect(routeOf(router, H + path)).toBe("all");
  });

  test("a :param matches exactly one non-empty segment", () => {
    const router = routerFor(`  - { name: user, upstream: u, match: { paths: ["/users/:id"] } }\n`);
    expect(hit(router, `${H}/users/42`)).toEqual({ route: "user", params: { id: "42" } });
    for (const miss of ["/users", "/users/", "/users/42/orders", "/userz/42"]) expect(routeOf(router, H + miss)).toBeNull();
  });

  test("params are percent-decoded; a malformed escape is kept as sent", () => {
    const router = routerFor(`  - { name: user, upstream: u, match: { paths: ["/users/:id"] } }\n`);
    expect(hit(router, `${H}/users/j%C3%BCrgen`)?.params).toEqual({ id: "jürgen" });
    expect(hit(router, `${H}/users/a%2Fb`)?.params).toEqual({ id: "a/b" });
    expect(hit(router, `${H}/users/a%20b`)?.params).toEqual({ id: "a b" });
    expect(hit(router, `${H}/users/100%25`)?.params).toEqual({ id: "100%" });
    expect(hit(router, `${H}/users/%E0%A4%A`)?.params).toEqual({ id: "%E0%A4%A" });
  });

  test("several params in one path", () => {
    const router = routerFor(`  - { name: repo, upstream: u, match: { paths: ["/orgs/:org/repos/:repo"] } }\n`);
    expect(hit(router, `${H}/orgs/acme/repos/gw`)).toEqual({ route: "repo", params: { org: "acme", repo: "gw" } });
    expect(routeOf(router, `${H}/orgs/acme/teams/gw`)).toBeNull();
  });

  test("*rest captures everything after its position, slashes included", () => {
    const router = routerFor(`  - { name: files, upstream: u, match: { paths: ["/files/*rest"] } }\n`);
    expect(hit(router, `${H}/files/a/b`)).toEqual({ route: "files", params: { rest: "a/b" } });
    expect(hit(router, `${H}/files/readme.md`)?.params).toEqual({ rest: "readme.md" });
    expect(hit(router, `${H}/files/my%20docs/a.txt`)?.params).toEqual({ rest: "my docs/a.txt" });
    expect(routeOf(router, `${H}/files`)).toBeNull();
    expect(routeOf(router, `${H}/filesystem/a`)).toBeNull();
  });

  test(":param before *rest, and :param before a prefix", () => {
    const router = routerFor(
      `  - { name: blob, upstream: u, match: { paths: ["/repos/:repo/blob/*path"] } }\n` +
        `  - { name: tenant, upstream: u, match: { paths: ["/t/:tenant/*"] } }\n`,
    );
    expect(hit(router, `${H}/repos/gw/blob/src/main.ts`)).toEqual({ route: "blob", params: { repo: "gw", path: "src/main.ts" } });
    expect(hit(router, `${H}/t/acme/orders/1`)).toEqual({ route: "tenant", params: { tenant: "acme" } });
    expect(hit(router, `${H}/t/acme`)).toEqual({ route: "tenant", params: { tenant: "acme" } });
    expect(routeOf(router, `${H}/t/`)).toBeNull();
  });

  test("a regex matches the path; named groups become decoded params", () => {
    const router = routerFor(
      `  - { name: versioned, upstream: u, match: { paths: ["~^/v[0-9]+/"] } }\n` +
        `  - { name: item, upstream: u, match: { paths: ["~^/items/(?<sku>[a-z%0-9]+)-(?<size>[0-9]+)$"] } }\n`,
    );
    expect(hit(router, `${H}/v2/orders`)).toEqual({ route: "versioned", params: {} });
    expect(routeOf(router, `${H}/v10/`)).toBe("versioned");
    expect(routeOf(router, `${H}/vx/orders`)).toBeNull();
    expect(routeOf(router, `${H}/api/v2/orders`)).toBeNull();
    expect(hit(router, `${H}/items/shoe-42`)).toEqual({ route: "item", params: { sku: "shoe", size: "42" } });
    expect(hit(router, `${H}/items/caf%c3%a9-1`)?.params).toEqual({ sku: "café", size: "1" });
  });

  test("a literal written with non-ASCII characters matches the encoded request path", () => {
    const router = routerFor(
      `  - { name: cafe, upstream: u, match: { paths: ["/café"] } }\n` +
        `  - { name: menu, upstream: u, match: { paths: ["/menü/:item"] } }\n` +
        `  - { name: spaced, upstream: u, match: { paths: ["/with space/*"] } }\n`,
    );
    expect(routeOf(router, `${H}/café`)).toBe("cafe");
    expect(routeOf(router, `${H}/caf%C3%A9`)).toBe("cafe");
    expect(hit(router, `${H}/men%C3%BC/tea`)).toEqual({ route: "menu", params: { item: "tea" } });
    expect(routeOf(router, `${H}/with%20space/x`)).toBe("spaced");
  });

  test("a route with several paths matches any of them; a route without match matches everything", () => {
    const router = routerFor(
      `  - { name: multi, upstream: u, match: { paths: [/a, "/b/:id"] } }\n` + `  - { name: fallback, upstream: u }\n`,
    );
    expect(routeOf(router, `${H}/a`)).toBe("multi");
    expect(hit(router, `${H}/b/7`)).toEqual({ route: "multi", params: { id: "7" } });
    expect(routeOf(router, `${H}/c`)).toBe("fallback");
  });

  test("no route matches: null", () => {
    const router = routerFor(`  - { name: a, upstream: u, match: { paths: [/a] } }\n`);
    expect(hit(router, `${H}/b`)).toBeNull();
  });
});

describe("hosts", () => {
  const hosted = routerFor(
    `  - { name: exact, upstream: u, match: { hosts: [api.example.com], paths: [/x] } }\n` +
      `  - { name: wild, upstream: u, match: { hosts: ["*.example.com"], paths: [/y] } }\n`,
  );

  test("an exact host matches that name only, case-insensitively, on any port", () => {
    expect(routeOf(hosted, "http://api.example.com/x")).toBe("exact");
    expect(routeOf(hosted, "http://API.Example.COM/x")).toBe("exact");
    expect(routeOf(hosted, "http://gw/x", { headers: { host: "Api.Example.Com:8080" } })).toBe("exact");
    expect(routeOf(hosted, "http://api.example.com./x")).toBe("exact");
    expect(routeOf(hosted, "http://www.example.com/x")).toBeNull();
    expect(routeOf(hosted, "http://api.example.com.evil.test/x")).toBeNull();
  });

  test("the Host header wins over the URL's authority", () => {
    expect(routeOf(hosted, "http://other.test/x", { headers: { host: "api.example.com" } })).toBe("exact");
    expect(routeOf(hosted, "http://api.example.com/x", { headers: { host: "other.test" } })).toBeNull();
  });

  test("*.example.com matches any name below it, but not example.com itself", () => {
    for (const host of ["a.example.com", "a.b.example.com", "A.EXAMPLE.com", "a.example.com:9000"]) {
      expect(routeOf(hosted, "http://gw/y", { headers: { host } })).toBe("wild");
    }
    for (const host of ["example.com", "aexample.com", "a.example.org", "example.com.a.test"]) {
      expect(routeOf(hosted, "http://gw/y", { headers: { host } })).toBeNull();
    }
  });

  test("config hosts compare case-insensitively too", () => {
    const router = routerFor(`  - { name: r, upstream: u, match: { hosts: ["*.Example.COM", "API.test"] } }\n`);
    expect(routeOf(router, "http://a.example.com/")).toBe("r");
    expect(routeOf(router, "http://api.TEST/")).toBe("r");
  });

  test("a host written with a port matches only that port; no port in Host means the scheme's default", () => {
    const router = routerFor(
      `  - { name: tls, upstream: u, match: { hosts: ["api.example.com:8443"] } }\n` +
        `  - { name: web, upstream: u, match: { hosts: ["api.example.com:443"] } }\n` +
        `  - { name: wild, upstream: u, match: { hosts: ["*.example.com:8080"] } }\n`,
    );
    expect(routeOf(router, "https://api.example.com:8443/")).toBe("tls");
    expect(routeOf(router, "http://gw/", { headers: { host: "api.example.com:8443" } })).toBe("tls");
    expect(routeOf(router, "https://api.example.com/")).toBe("web");
    expect(routeOf(router, "http://api.example.com/")).toBeNull();
    expect(routeOf(router, "http://api.example.com:9000/")).toBeNull();
    expect(routeOf(router, "http://a.example.com:8080/")).toBe("wild");
    expect(routeOf(router, "http://a.example.com:8081/")).toBeNull();
  });

  test("a host with a port ranks above the same host without one", () => {
    const router = routerFor(
      `  - { name: any-port, upstream: u, match: { hosts: [api.example.com] } }\n` +
        `  - { name: port, upstream: u, match: { hosts: ["api.example.com:8443"] } }\n`,
    );
    expect(routeOf(router, "http://api.example.com:8443/")).toBe("port");
    expect(routeOf(router, "http://api.example.com:8080/")).toBe("any-port");
  });
});

describe("methods, headers and query", () => {
  test("methods compare case-insensitively in config; other methods miss", () => {
    const router = routerFor(`  - { name: write, upstream: u, match: { paths: [/o], methods: [post, PUT] } }\n`);
    expect(routeOf(router, `${H}/o`, { method: "POST" })).toBe("write");
    expect(routeOf(router, `${H}/o`, { method: "PUT" })).toBe("write");
    expect(routeOf(router, `${H}/o`, { method: "DELETE" })).toBeNull();
    expect(routeOf(router, `${H}/o`)).toBeNull();
  });

  test("header matchers: exact, prefix, regex, present, absent, one_of; names case-insensitive", () => {
    const router = routerFor(
      `  - { name: exact, upstream: u, match: { paths: [/exact], headers: { X-Version: "2" } } }\n` +
        `  - { name: prefix, upstream: u, match: { paths: [/prefix], headers: { authorization: { prefix: "Bearer " } } } }\n` +
        `  - { name: regex, upstream: u, match: { paths: [/regex], headers: { x-tenant: { regex: "^[a-z]+-[0-9]+$" } } } }\n` +
        `  - { name: present, upstream: u, match: { paths: [/present], headers: { x-debug: { present: true } } } }\n` +
        `  - { name: absent, upstream: u, match: { paths: [/absent], headers: { cookie: { present: false } } } }\n` +
        `  - { name: one-of, upstream: u, match: { paths: [/one-of], headers: { accept: { one_of: [application/json, text/xml] } } } }\n`,
    );
    const at = (path: string, headers: Record<string, string> = {}) => routeOf(router, H + path, { headers });
    expect(at("/exact", { "x-version": "2" })).toBe("exact");
    expect(at("/exact", { "X-VERSION": "2" })).toBe("exact");
    expect(at("/exact", { "x-version": "20" })).toBeNull();
    expect(at("/exact")).toBeNull();
    expect(at("/prefix", { authorization: "Bearer abc" })).toBe("prefix");
    expect(at("/prefix", { authorization: "Basic abc" })).toBeNull();
    expect(at("/regex", { "x-tenant": "acme-7" })).toBe("regex");
    expect(at("/regex", { "x-tenant": "acme-x" })).toBeNull();
    expect(at("/present", { "x-debug": "" })).toBe("present");
    expect(at("/present")).toBeNull();
    expect(at("/absent")).toBe("absent");
    expect(at("/absent", { cookie: "a=1" })).toBeNull();
    expect(at("/one-of", { accept: "text/xml" })).toBe("one-of");
    expect(at("/one-of", { accept: "text/html" })).toBeNull();
  });

  test("query matchers", () => {
    const router = routerFor(
      `  - { name: q, upstream: u, match: { paths: [/q], query: { format: { one_of: [json, xml] }, debug: { present: false } } } }\n`,
    );
    expect(routeOf(router, `${H}/q?format=json`)).toBe("q");
    expect(routeOf(router, `${H}/q?format=xml&x=1`)).toBe("q");
    expect(routeOf(router, `${H}/q?format=csv`)).toBeNull();
    expect(routeOf(router, `${H}/q?format=json&debug=1`)).toBeNull();
    expect(routeOf(router, `${H}/q`)).toBeNull();
  });

  test("a route whose conditions fail gives way to the next-best route", () => {
    const router = routerFor(
      `  - { name: v2, upstream: u, match: { paths: ["/users/:id"], headers: { x-version: "2" } } }\n` +
        `  - { name: any, upstream: u, match: { paths: ["/users/*"] } }\n`,
    );
    expect(routeOf(router, `${H}/users/1`, { headers: { "x-version": "2" } })).toBe("v2");
    expect(routeOf(router, `${H}/users/1`)).toBe("any");
  });
});

describe("which route wins", () => {
  test("higher priority first, whatever the path kind, host or conditions", () => {
    const router = routerFor(
      `  - { name: exact, upstream: u, match: { hosts: [a.test], paths: [/users/me], methods: [GET] } }\n` +
        `  - { name: regex, upstream: u, priority: 1, match: { paths: ["~^/users"] } }\n` +
        `  - { name: low, upstream: u, priority: -1, match: { paths: ["/users/me"] } }\n`,
    );
    expect(routeOf(router, "http://a.test/users/me")).toBe("regex");
  });

  test("then the path kind: exact, parameters, prefix, regex, no path (file order reversed)", () => {
    const all = [
      `  - { name: none, upstream: u }\n`,
      `  - { name: regex, upstream: u, match: { paths: ["~^/users/"] } }\n`,
      `  - { name: prefix, upstream: u, match: { paths: ["/users/*"] } }\n`,
      `  - { name: params, upstream: u, match: { paths: ["/users/:id"] } }\n`,
      `  - { name: exact, upstream: u, match: { paths: [/users/me] } }\n`,
    ];
    const winners: string[] = [];
    for (let kept = all.length; kept > 0; kept--) {
      winners.push(routeOf(routerFor(all.slice(0, kept).join("")), `${H}/users/me`)!);
    }
    expect(winners).toEqual(["exact", "params", "prefix", "regex", "none"]);
  });

  test("then the longer literal part", () => {
    const router = routerFor(
      `  - { name: short, upstream: u, match: { paths: ["/api/*"] } }\n` +
        `  - { name: long, upstream: u, match: { paths: ["/api/v1/*"] } }\n` +
        `  - { name: p-short, upstream: u, match: { paths: ["/p/:a/:b"] } }\n` +
        `  - { name: p-long, upstream: u, match: { paths: ["/p/:a/literal"] } }\n`,
    );
    expect(routeOf(router, `${H}/api/v1/orders`)).toBe("long");
    expect(routeOf(router, `${H}/api/v2/orders`)).toBe("short");
    expect(routeOf(router, `${H}/p/1/literal`)).toBe("p-long");
    expect(routeOf(router, `${H}/p/1/other`)).toBe("p-short");
  });

  test("the literal part outranks the host", () => {
    const router = routerFor(
      `  - { name: hosted, upstream: u, match: { hosts: [a.test], paths: ["/api/*"] } }\n` +
        `  - { name: longer, upstream: u, match: { paths: ["/api/v1/*"] } }\n`,
    );
    expect(routeOf(router, "http://a.test/api/v1/x")).toBe("longer");
    expect(routeOf(router, "http://a.test/api/v2/x")).toBe("hosted");
  });

  test("then the host: exact, then the longer wildcard, then any wildcard, then no host", () => {
    const all = [
      `  - { name: none, upstream: u, match: { paths: [/x] } }\n`,
      `  - { name: wild, upstream: u, match: { hosts: ["*.test"], paths: [/x] } }\n`,
      `  - { name: longer-wild, upstream: u, match: { hosts: ["*.b.test"], paths: [/x] } }\n`,
      `  - { name: exact, upstream: u, match: { hosts: [a.b.test], paths: [/x] } }\n`,
    ];
    const winners: string[] = [];
    for (let kept = all.length; kept > 0; kept--) {
      winners.push(routeOf(routerFor(all.slice(0, kept).join("")), "http://a.b.test/x")!);
    }
    expect(winners).toEqual(["exact", "longer-wild", "wild", "none"]);
  });

  test("the host outranks conditions", () => {
    const router = routerFor(
      `  - { name: conditions, upstream: u, match: { paths: [/x], methods: [GET], headers: { a: "1" } } }\n` +
        `  - { name: hosted, upstream: u, match: { hosts: [a.test], paths: [/x] } }\n`,
    );
    expect(routeOf(router, "http://a.test/x", { headers: { a: "1" } })).toBe("hosted");
  });

  test("then more conditions: methods, each header, each query parameter", () => {
    const router = routerFor(
      `  - { name: one, upstream: u, match: { paths: [/x], methods: [GET] } }\n` +
        `  - { name: three, upstream: u, match: { paths: [/x], headers: { a: "1" }, query: { b: "2" } } }\n` +
        `  - { name: two, upstream: u, match: { paths: [/x], methods: [GET], query: { b: "2" } } }\n`,
    );
    expect(routeOf(router, `${H}/x?b=2`, { headers: { a: "1" } })).toBe("three");
    expect(routeOf(router, `${H}/x?b=2`)).toBe("two");
    expect(routeOf(router, `${H}/x`)).toBe("one");
  });

  test("then file order", () => {
    const router = routerFor(
      `  - { name: first, upstream: u, match: { paths: ["/a/:x/c"] } }\n` +
        `  - { name: second, upstream: u, match: { paths: ["/a/b/:y"] } }\n` +
        `  - { name: third, upstream: u, match: { paths: ["/a/:x/c"] } }\n`,
    );
    expect(routeOf(router, `${H}/a/b/c`)).toBe("first");
    expect(routeOf(router, `${H}/a/b/z`)).toBe("second");
  });
});

describe("backtracking between literal and parameter branches", () => {
  test("/users/me (literal) and /users/:id", () => {
    const router = routerFor(
      `  - { name: user, upstream: u, match: { paths: ["/users/:id"] } }\n` +
        `  - { name: me, upstream: u, match: { paths: [/users/me], methods: [GET] } }\n`,
    );
    expect(hit(router, `${H}/users/me`)).toEqual({ route: "me", params: {} });
    expect(hit(router, `${H}/users/42`)).toEqual({ route: "user", params: { id: "42" } });
    // The literal route's method check fails, so the parameter route takes it.
    expect(hit(router, `${H}/users/me`, { method: "POST" })).toEqual({ route: "user", params: { id: "me" } });
  });

  test("/a/:x/c and /a/b/d", () => {
    const router = routerFor(
      `  - { name: literal, upstream: u, match: { paths: [/a/b/d] } }\n` +
        `  - { name: param, upstream: u, match: { paths: ["/a/:x/c"] } }\n`,
    );
    expect(hit(router, `${H}/a/b/c`)).toEqual({ route: "param", params: { x: "b" } });
    expect(hit(router, `${H}/a/b/d`)).toEqual({ route: "literal", params: {} });
    expect(routeOf(router, `${H}/a/z/d`)).toBeNull();
  });

  test("a dead-end literal branch in the trie falls back to the parameter branch", () => {
    const router = routerFor(
      `  - { name: deep, upstream: u, match: { paths: ["/a/b/d/:z"] } }\n` +
        `  - { name: param, upstream: u, match: { paths: ["/a/:x/c"] } }\n` +
        `  - { name: other, upstream: u, match: { paths: ["/a/:y/e/*"] } }\n`,
    );
    expect(hit(router, `${H}/a/b/c`)).toEqual({ route: "param", params: { x: "b" } });
    expect(hit(router, `${H}/a/b/d/9`)).toEqual({ route: "deep", params: { z: "9" } });
    // Both parameter routes share the trie node for the second segment; each names its own value.
    expect(hit(router, `${H}/a/b/e/f`)).toEqual({ route: "other", params: { y: "b" } });
  });
});

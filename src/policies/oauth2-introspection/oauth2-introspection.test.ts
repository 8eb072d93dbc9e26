/**
 * `oauth2-introspection` through the built binary against a real introspection server
 * (RFC 7662) and OIDC discovery on loopback: client authentication (Basic and form),
 * active and inactive tokens, positive and negative caching, audience and expiry,
 * and an endpoint that is slow or refuses the gateway.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { basics, startGateway, type Gateway } from "../../../test/helpers/gateway.ts";
import { expectProblem } from "../../../test/helpers/problem.ts";
import { startUpstream, type TestUpstream } from "../../../test/helpers/upstream.ts";

// Real processes on a shared, busy machine: generous per-test time.
setDefaultTimeout(60_000);

const CLIENT_SECRET = "introspection-client-secret-77";
const now = () => Math.floor(Date.now() / 1000);
const tokens: Record<string, Record<string, unknown>> = {};
const calls: { path: string; token: string | null; clientAuth: string }[] = [];
let idp: ReturnType<typeof Bun.serve>;
let upstream: TestUpstream;
let gateway: Gateway;

beforeAll(async () => {
  tokens["tok-active"] = { active: true, sub: "user-7", client_id: "web", scope: "orders:read orders:write", aud: "api", exp: now() + 600 };
  tokens["tok-cached"] = { active: true, sub: "user-8", aud: "api", exp: now() + 600 };
  tokens["tok-expired"] = { active: true, sub: "user-9", aud: "api", exp: now() - 10 };
  tokens["tok-other-aud"] = { active: true, sub: "user-9", aud: "billing", exp: now() + 600 };
  tokens["tok-post"] = { active: true, sub: "poster", exp: now() + 600 };
  idp = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      const path = new URL(request.url).pathname;
      if (path === "/.well-known/openid-configuration") {
        return Response.json({ issuer: `http://127.0.0.1:${idp.port}`, introspection_endpoint: `http://127.0.0.1:${idp.port}/introspect`, jwks_uri: `http://127.0.0.1:${idp.port}/jwks` });
      }
      const form = new URLSearchParams(await request.text());
      const basic = request.headers.get("authorization");
      const clientAuth = basic ? "basic" : form.has("client_secret") ? "post" : "none";
      calls.push({ path, token: form.get("token"), clientAuth });
      if (path === "/slow") await Bun.sleep(8_000);
      const authorized = basic === `Basic ${btoa(`gateway:${CLIENT_SECRET}`)}` || (form.get("client_id") === "gateway" && form.get("client_secret") === CLIENT_SECRET);
      if (!authorized) return Response.json({ error: "invalid_client" }, { status: 401 });
      if (form.get("token_type_hint") !== "access_token") return Response.json({ error: "invalid_request" }, { status: 400 });
      return Response.json(tokens[form.get("token") ?? ""] ?? { active: false });
    },
  });
  upstream = startUpstream((request) =>
    Response.json({ consumer: request.headers.get("x-consumer-id"), scopes: request.headers.get("x-consumer-scopes"), authorization: request.headers.get("authorization") }),
  );
  const base = `http://127.0.0.1:${idp.port}`;
  const policy = (extra: string) => `
    policies:
      - type: oauth2-introspection
        config: { client_id: gateway, client_secret: "${CLIENT_SECRET}", ${extra} }`;
  gateway = await startGateway(
    (ports) => `${basics(ports)}
upstreams:
  backend: { targets: ["${upstream.url}"] }
routes:
  - name: basic
    match: { paths: ["/i/*"] }
    upstream: backend${policy(`endpoint: ${base}/introspect, audience: api, negative_ttl: 30s`)}
  - name: post
    match: { paths: ["/p/*"] }
    upstream: backend${policy(`endpoint: ${base}/introspect, client_auth: post, forward_token: false`)}
  - name: slow
    match: { paths: ["/slow/*"] }
    upstream: backend${policy(`endpoint: ${base}/slow, timeout: 1s`)}
  - name: refused
    match: { paths: ["/refused/*"] }
    upstream: backend
    policies:
      - type: oauth2-introspection
        config: { endpoint: ${base}/introspect, client_id: gateway, client_secret: wrong-secret }
  - name: oidc
    match: { paths: ["/oidc/*"] }
    upstream: backend${policy(`issuer: ${base}`)}
`,
    { workers: 1 },
  );
});
afterAll(async () => {
  await gateway?.stop();
  upstream?.stop();
  idp?.stop(true);
});

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const callsFor = (token: string) => calls.filter((call) => call.token === token).length;

test("an active token passes with its subject and scopes; the gateway authenticates with Basic", async () => {
  const response = await fetch(`${gateway.url}/i/x`, { headers: bearer("tok-active") });
  expect(response.status).toBe(200);
  expect(await response.json()).toEqual({ consumer: "user-7", scopes: "orders:read orders:write", authorization: "Bearer tok-active" });
  expect(calls.find((call) => call.token === "tok-active")!.clientAuth).toBe("basic");
});

test("active answers are cached: five requests, one introspection call", async () => {
  for (let i = 0; i < 5; i++) expect((await fetch(`${gateway.url}/i/x`, { headers: bearer("tok-cached") })).status).toBe(200);
  expect(callsFor("tok-cached")).toBe(1);
});

test("inactive, unknown, expired and wrong-audience tokens get 401 invalid_token; inactive answers are cached", async () => {
  for (const token of ["tok-unknown", "tok-expired", "tok-other-aud"]) {
    const response = await fetch(`${gateway.url}/i/x`, { headers: bearer(token) });
    await expectProblem(response, 401);
    expect(response.headers.get("www-authenticate")).toContain('error="invalid_token"');
  }
  await expectProblem(await fetch(`${gateway.url}/i/x`, { headers: bearer("tok-unknown") }), 401);
  expect(callsFor("tok-unknown")).toBe(1);
  const none = await fetch(`${gateway.url}/i/x`);
  await expectProblem(none, 401);
  expect(none.headers.get("www-authenticate")).toBe('Bearer realm="turnpike"');
  await expectProblem(await fetch(`${gateway.url}/i/x`, { headers: { authorization: "Bearer bad token" } }), 401);
  await expectProblem(await fetch(`${gateway.url}/i/x`, { headers: bearer("t".repeat(9000)) }), 401);
});

test("client_secret_post sends the client credentials as form fields; the token is not forwarded", async () => {
  const response = await fetch(`${gateway.url}/p/x`, { headers: bearer("tok-post") });
  expect(response.status).toBe(200);
  expect(await response.json()).toEqual({ consumer: "poster", scopes: null, authorization: null });
  expect(calls.find((call) => call.token === "tok-post")!.clientAuth).toBe("post");
});

test("a slow endpoint gets 503 within the timeout; an endpoint refusing the gateway 503", async () => {
  const started = performance.now();
  await expectProblem(await fetch(`${gateway.url}/slow/x`, { headers: bearer("tok-active") }), 503);
  expect(performance.now() - started).toBeLessThan(7_000);
  await expectProblem(await fetch(`${gateway.url}/refused/x`, { headers: bearer("tok-active") }), 503);
});

test("OIDC discovery finds the introspection endpoint", async () => {
  const response = await fetch(`${gateway.url}/oidc/x`, { headers: bearer("tok-active") });
  expect(response.status).toBe(200);
  expect(((await response.json()) as { consumer: string }).consumer).toBe("user-7");
});

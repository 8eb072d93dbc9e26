/**
 * `auth` (any_of / all_of) and `authorize` (roles, scopes, claims, per method) through
 * the built binary, with API keys and HS256 JWTs made here.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { SignJWT } from "jose";
import { hashApiKey } from "../../auth/secrets.ts";
import { basics, startGateway, type Gateway } from "../../../test/helpers/gateway.ts";
import { expectProblem } from "../../../test/helpers/problem.ts";
import { startUpstream, type TestUpstream } from "../../../test/helpers/upstream.ts";

// Real processes on a shared, busy machine: generous per-test time.
setDefaultTimeout(60_000);

const SECRET = "another-shared-secret-for-hs256-tokens";
const ADMIN_KEY = "admin-key-0123456789abcdef";
const SVC_KEY = "svc-key-0123456789abcdef";
let upstream: TestUpstream;
let gateway: Gateway;

beforeAll(async () => {
  upstream = startUpstream((request) => Response.json({ consumer: request.headers.get("x-consumer-id"), roles: request.headers.get("x-consumer-roles") }));
  gateway = await startGateway(
    (ports) => `${basics(ports)}
consumers:
  - name: root
    roles: [admin]
    credentials: [{ type: api_key, key_hash: "${hashApiKey(ADMIN_KEY)}" }]
  - name: svc
    roles: [service]
    credentials:
      - { type: api_key, key_hash: "${hashApiKey(SVC_KEY)}" }
      - { type: jwt, subject: svc }
upstreams:
  backend: { targets: ["${upstream.url}"] }
routes:
  - name: any
    match: { paths: ["/any/*"] }
    upstream: backend
    policies:
      - type: auth
        config:
          any_of:
            - type: api-key
            - type: jwt
              config: { secret: "${SECRET}" }
      - type: authorize
        config:
          rules:
            - { methods: [GET], scopes: [orders:read] }
            - { methods: [GET, POST], roles: [admin] }
            - methods: [DELETE]
              claims: { tenant: acme, org.level: [1, 2], groups: { contains: ops } }
  - name: all
    match: { paths: ["/all/*"] }
    upstream: backend
    policies:
      - type: auth
        config:
          all_of:
            - type: api-key
            - type: jwt
              config: { secret: "${SECRET}" }
  - name: unauthenticated
    match: { paths: ["/bare/*"] }
    upstream: backend
    policies:
      - type: authorize
        config: { rules: [{ roles: [admin] }] }
`,
    { workers: 1 },
  );
});
afterAll(async () => {
  await gateway?.stop();
  upstream?.stop();
});

function jwt(claims: Record<string, unknown>): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setExpirationTime("5m").sign(new TextEncoder().encode(SECRET));
}

function call(path: string, method: string, headers: Record<string, string>): Promise<Response> {
  return fetch(`${gateway.url}${path}`, { method, headers });
}

test("any_of: no credentials gets one 401 with both challenges", async () => {
  const response = await call("/any/x", "GET", {});
  const body = await expectProblem(response, 401);
  expect(body.detail).toBe("This resource needs credentials.");
  const challenge = response.headers.get("www-authenticate")!;
  expect(challenge).toContain('ApiKey realm="turnpike"');
  expect(challenge).toContain('Bearer realm="turnpike"');
});

test("any_of: a wrong key is 'not valid'; either method alone lets a caller in", async () => {
  const wrong = await expectProblem(await call("/any/x", "GET", { apikey: "nope" }), 401);
  expect(wrong.detail).toBe("The credentials are not valid.");
  const byKey = await call("/any/x", "POST", { apikey: ADMIN_KEY });
  expect(byKey.status).toBe(200);
  expect(await byKey.json()).toEqual({ consumer: "root", roles: "admin" });
  const byToken = await call("/any/x", "GET", { authorization: `Bearer ${await jwt({ sub: "someone", scope: "orders:read" })}` });
  expect(byToken.status).toBe(200);
  expect(((await byToken.json()) as { consumer: string }).consumer).toBe("someone");
});

test("authorize: scopes per method, with RFC 6750 insufficient_scope for bearer callers", async () => {
  const reader = { authorization: `Bearer ${await jwt({ sub: "reader", scope: "orders:read" })}` };
  const nobody = { authorization: `Bearer ${await jwt({ sub: "nobody", scope: "profile" })}` };
  await expectProblem(await call("/any/x", "POST", reader), 403);
  const lacking = await call("/any/x", "GET", nobody);
  await expectProblem(lacking, 403);
  expect(lacking.headers.get("www-authenticate")).toBe('Bearer error="insufficient_scope", scope="orders:read"');
  const keyCaller = await call("/any/x", "PUT", { apikey: ADMIN_KEY });
  await expectProblem(keyCaller, 403);
  expect(keyCaller.headers.get("www-authenticate")).toBeNull();
});

test("authorize: claim conditions (equals, one of, contains, nested)", async () => {
  const ok = await jwt({ sub: "a", tenant: "acme", org: { level: 2 }, groups: ["dev", "ops"] });
  expect((await call("/any/x", "DELETE", { authorization: `Bearer ${ok}` })).status).toBe(200);
  for (const claims of [
    { sub: "a", tenant: "other", org: { level: 2 }, groups: ["ops"] },
    { sub: "a", tenant: "acme", org: { level: 3 }, groups: ["ops"] },
    { sub: "a", tenant: "acme", org: { level: "2" }, groups: ["ops"] },
    { sub: "a", tenant: "acme", org: { level: 1 }, groups: ["dev"] },
    { sub: "a", tenant: "acme", groups: ["ops"] },
  ]) {
    await expectProblem(await call("/any/x", "DELETE", { authorization: `Bearer ${await jwt(claims)}` }), 403);
  }
});

test("all_of: both methods must pass and name the same consumer", async () => {
  await expectProblem(await call("/all/x", "GET", { apikey: SVC_KEY }), 401);
  await expectProblem(await call("/all/x", "GET", { authorization: `Bearer ${await jwt({ sub: "svc" })}` }), 401);
  const both = await call("/all/x", "GET", { apikey: SVC_KEY, authorization: `Bearer ${await jwt({ sub: "svc" })}` });
  expect(both.status).toBe(200);
  expect(await both.json()).toEqual({ consumer: "svc", roles: "service" });
  const mismatch = await call("/all/x", "GET", { apikey: ADMIN_KEY, authorization: `Bearer ${await jwt({ sub: "svc" })}` });
  await expectProblem(mismatch, 401);
});

test("authorize with nobody identified answers 401", async () => {
  await expectProblem(await call("/bare/x", "GET", {}), 401);
});

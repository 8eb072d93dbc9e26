/**
 * `jwt` through the built binary, against a real JWKS server and OIDC discovery on
 * loopback with keys generated here: every algorithm family, the RFC 6750 challenges,
 * claims checks, claims → consumer, and bad input (garbage, alg none, algorithm
 * confusion, expired and future tokens, huge tokens, unknown kids, a JWKS server that
 * is slow or down).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { exportJWK, SignJWT, type JWK } from "jose";
import { basics, freePort, startGateway, type Gateway } from "../../../test/helpers/gateway.ts";
import { expectProblem } from "../../../test/helpers/problem.ts";
import { startUpstream, type TestUpstream } from "../../../test/helpers/upstream.ts";

// Real processes on a shared, busy machine: generous per-test time.
setDefaultTimeout(60_000);

const ISSUER = "https://issuer.test/";
const SECRET = "a-shared-secret-of-at-least-32-characters!";
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
const ed = generateKeyPairSync("ed25519");
const rotated = generateKeyPairSync("ec", { namedCurve: "P-256" });
const rsaPem = rsa.publicKey.export({ type: "spki", format: "pem" }) as string;

async function jwkOf(key: KeyObject, kid: string): Promise<JWK> {
  return { ...(await exportJWK(key)), kid };
}

let jwksKeys: JWK[] = [];
let jwksHits = 0;
let jwks: ReturnType<typeof Bun.serve>;
let upstream: TestUpstream;
let gateway: Gateway;

beforeAll(async () => {
  jwksKeys = [await jwkOf(rsa.publicKey, "rsa-1"), await jwkOf(ec.publicKey, "ec-1"), await jwkOf(ed.publicKey, "ed-1")];
  jwks = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      const path = new URL(request.url).pathname;
      if (path === "/jwks.json") {
        jwksHits++;
        return Response.json({ keys: jwksKeys }, { headers: { "cache-control": "public, max-age=300" } });
      }
      if (path === "/slow.json") {
        await Bun.sleep(8_000);
        return Response.json({ keys: jwksKeys });
      }
      if (path === "/oidc/.well-known/openid-configuration") {
        return Response.json({ issuer: `http://127.0.0.1:${jwks.port}/oidc`, jwks_uri: `http://127.0.0.1:${jwks.port}/jwks.json` });
      }
      if (path === "/impostor/.well-known/openid-configuration") {
        // Names another issuer than the one asked: must not be used.
        return Response.json({ issuer: "https://someone-else.test", jwks_uri: `http://127.0.0.1:${jwks.port}/jwks.json` });
      }
      return new Response("not found", { status: 404 });
    },
  });
  upstream = startUpstream((request) => Response.json({ headers: Object.fromEntries(request.headers) }));
  const base = `http://127.0.0.1:${jwks.port}`;
  gateway = await startGateway(
    (ports) => `${basics(ports)}
consumers:
  - name: mobile-app
    roles: [app]
    metadata: { tier: gold }
    credentials:
      - { type: jwt, claim: azp, value: mobile, issuer: "${ISSUER}" }
consumer_headers:
  claims: { X-User-Email: email }
upstreams:
  backend: { targets: ["${upstream.url}"] }
routes:
  - name: jwks
    match: { paths: ["/jwks/*"] }
    upstream: backend
    policies:
      - type: jwt
        config:
          jwks_url: ${base}/jwks.json
          issuer: "${ISSUER}"
          audience: orders
          required_claims: [sub]
          consumer: { roles_claim: realm_access.roles }
          jwks: { min_refresh_interval: 2s }
  - name: hs
    match: { paths: ["/hs/*"] }
    upstream: backend
    policies:
      - type: jwt
        config: { secret: "${SECRET}", forward_token: false }
  - name: pem
    match: { paths: ["/pem/*"] }
    upstream: backend
    policies:
      - type: jwt
        config: { keys: [{ file: rsa.pem }] }
  - name: slow
    match: { paths: ["/slow/*"] }
    upstream: backend
    policies:
      - type: jwt
        config: { jwks_url: ${base}/slow.json, jwks: { timeout: 1s } }
  - name: down
    match: { paths: ["/down/*"] }
    upstream: backend
    policies:
      - type: jwt
        config: { jwks_url: "http://127.0.0.1:${freePort()}/jwks.json", on_unavailable: 401 }
  - name: impostor
    match: { paths: ["/impostor/*"] }
    upstream: backend
    policies:
      - type: jwt
        config: { discovery: true, issuer: ${base}/impostor }
  - name: oidc
    match: { paths: ["/oidc/*"] }
    upstream: backend
    policies:
      - type: jwt
        config: { discovery: true, issuer: ${base}/oidc }
`,
    { workers: 1, files: { "rsa.pem": rsaPem } },
  );
});
afterAll(async () => {
  await gateway?.stop();
  upstream?.stop();
  jwks?.stop(true);
});

interface SignOptions {
  alg?: string;
  kid?: string;
  key?: KeyObject | Uint8Array;
  claims?: Record<string, unknown>;
  exp?: number;
  nbf?: number;
}

/** A token for the jwks route: valid unless options say otherwise. */
function sign(options: SignOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const header: Record<string, unknown> = { alg: options.alg ?? "RS256" };
  if (options.kid !== "") header.kid = options.kid ?? "rsa-1";
  const claims = { sub: "user-1", iss: ISSUER, aud: "orders", exp: options.exp ?? now + 600, ...(options.nbf ? { nbf: options.nbf } : {}), ...options.claims };
  for (const [name, value] of Object.entries(claims)) if (value === undefined) delete (claims as Record<string, unknown>)[name];
  return new SignJWT(claims).setProtectedHeader(header as never).setIssuedAt().sign(options.key ?? rsa.privateKey);
}

function call(path: string, token?: string, extra: Record<string, string> = {}): Promise<Response> {
  return fetch(`${gateway.url}${path}`, { headers: token === undefined ? extra : { authorization: `Bearer ${token}`, ...extra } });
}

async function expectInvalid(response: Response): Promise<void> {
  await expectProblem(response, 401);
  expect(response.headers.get("www-authenticate")).toBe('Bearer realm="turnpike", error="invalid_token", error_description="The access token is not valid"');
}

describe("valid tokens", () => {
  test("RS256, PS256, ES256 and EdDSA tokens from the JWKS are accepted", async () => {
    const tokens = [
      await sign(),
      await sign({ alg: "PS256" }),
      await sign({ alg: "ES256", kid: "ec-1", key: ec.privateKey }),
      await sign({ alg: "EdDSA", kid: "ed-1", key: ed.privateKey }),
    ];
    for (const token of tokens) {
      const response = await call("/jwks/x", token);
      expect(response.status).toBe(200);
      const { headers } = (await response.json()) as { headers: Record<string, string> };
      expect(headers["x-consumer-id"]).toBe("user-1");
      expect(headers.authorization).toBe(`Bearer ${token}`);
    }
  });

  test("claims map to a configured consumer, roles, scopes and claim headers", async () => {
    const token = await sign({ claims: { azp: "mobile", email: "ana@example.com", scope: "orders:read orders:write", realm_access: { roles: ["buyer"] } } });
    const response = await call("/jwks/x", token, { "x-user-email": "forged@example.com" });
    expect(response.status).toBe(200);
    const { headers } = (await response.json()) as { headers: Record<string, string> };
    expect(headers["x-consumer-id"]).toBe("mobile-app");
    expect(headers["x-consumer-roles"]).toBe("app,buyer");
    expect(headers["x-consumer-scopes"]).toBe("orders:read orders:write");
    expect(headers["x-user-email"]).toBe("ana@example.com");
  });

  test("HS256 with the shared secret, the token not forwarded; a PEM key file; OIDC discovery", async () => {
    const hs = await new SignJWT({ sub: "svc" }).setProtectedHeader({ alg: "HS256" }).setExpirationTime("5m").sign(new TextEncoder().encode(SECRET));
    const response = await call("/hs/x", hs);
    expect(response.status).toBe(200);
    const { headers } = (await response.json()) as { headers: Record<string, string> };
    expect(headers.authorization).toBeUndefined();
    expect(headers["x-consumer-id"]).toBe("svc");
    expect((await call("/pem/x", await sign({ kid: "" }))).status).toBe(200);
    const oidcToken = await sign({ claims: { iss: `http://127.0.0.1:${jwks.port}/oidc`, aud: undefined } });
    expect((await call("/oidc/x", oidcToken)).status).toBe(200);
  });
});

describe("refused tokens", () => {
  test("no token: 401 with a bare Bearer challenge; a malformed header: invalid_token", async () => {
    const none = await call("/jwks/x");
    await expectProblem(none, 401);
    expect(none.headers.get("www-authenticate")).toBe('Bearer realm="turnpike"');
    for (const authorization of ["Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer a b", "Bearer ä.b.c", "bearer"]) {
      await expectInvalid(await fetch(`${gateway.url}/jwks/x`, { headers: { authorization } }));
    }
  });

  test("garbage, truncated and huge tokens", async () => {
    const good = await sign();
    for (const token of ["garbage", "a.b.c", good.slice(0, -10), good.slice(0, good.lastIndexOf(".")), `${good}x`, "x".repeat(9000), `${good.split(".")[0]}.${"A".repeat(9000)}.sig`]) {
      await expectInvalid(await call("/jwks/x", token));
    }
  });

  test("alg none and algorithm confusion (HS256 signed with the RSA public key)", async () => {
    const none = `${Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url")}.${Buffer.from(JSON.stringify({ sub: "admin", iss: ISSUER, aud: "orders", exp: 9999999999 })).toString("base64url")}.`;
    await expectInvalid(await call("/jwks/x", none));
    await expectInvalid(await call("/pem/x", none));
    const confusedPem = await sign({ alg: "HS256", kid: "", key: new TextEncoder().encode(rsaPem) });
    await expectInvalid(await call("/pem/x", confusedPem));
    const confusedKid = await sign({ alg: "HS256", kid: "rsa-1", key: new TextEncoder().encode(rsaPem) });
    await expectInvalid(await call("/jwks/x", confusedKid));
    // An RS256 token is refused where only the HS secret is configured.
    await expectInvalid(await call("/hs/x", await sign()));
  });

  test("expired, not yet valid, wrong issuer or audience, missing required claim, wrong key", async () => {
    const now = Math.floor(Date.now() / 1000);
    const cases = [
      await sign({ exp: now - 120 }),
      await sign({ nbf: now + 600 }),
      await sign({ claims: { iss: "https://evil.test/" } }),
      await sign({ claims: { aud: "other" } }),
      await sign({ claims: { sub: undefined } }),
      await sign({ key: generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey }),
    ];
    for (const token of cases) await expectInvalid(await call("/jwks/x", token));
    // Within the 30 s clock skew an expired token still passes.
    expect((await call("/jwks/x", await sign({ exp: now - 5 }))).status).toBe(200);
  });

  test("answers never say which part was wrong", async () => {
    const bodies = new Set<string>();
    for (const token of [await sign({ exp: 1 }), await sign({ claims: { aud: "x" } }), "garbage"]) {
      const body = await expectProblem(await call("/jwks/x", token), 401);
      bodies.add(String(body.detail));
    }
    expect([...bodies]).toEqual(["The credentials are not valid."]);
  });
});

describe("the JWKS server", () => {
  test("a flood of unknown kids fetches the JWKS at most once per refresh interval", async () => {
    await call("/jwks/x", await sign());
    const before = jwksHits;
    const tokens = await Promise.all(Array.from({ length: 30 }, (_, i) => sign({ kid: `unknown-${i}` })));
    const responses = await Promise.all(tokens.map((token) => call("/jwks/x", token)));
    for (const response of responses) await expectInvalid(response);
    expect(jwksHits - before).toBeLessThanOrEqual(1);
  });

  test("a rotated key (new kid) is picked up by a refetch", async () => {
    jwksKeys = [...jwksKeys, await jwkOf(rotated.publicKey, "ec-2")];
    await Bun.sleep(2_200); // past the 2 s refresh floor
    const before = jwksHits;
    const response = await call("/jwks/x", await sign({ alg: "ES256", kid: "ec-2", key: rotated.privateKey }));
    expect(response.status).toBe(200);
    expect(jwksHits - before).toBe(1);
  });

  test("a slow JWKS server gets 503 within the fetch timeout; a dead one 401 as configured", async () => {
    const started = performance.now();
    const slow = await call("/slow/x", await sign());
    await expectProblem(slow, 503);
    expect(performance.now() - started).toBeLessThan(7_000);
    const down = await call("/down/x", await sign());
    await expectProblem(down, 401);
  });

  test("a discovery document naming another issuer is not used: 503", async () => {
    const token = await sign({ claims: { iss: `http://127.0.0.1:${jwks.port}/impostor`, aud: undefined } });
    await expectProblem(await call("/impostor/x", token), 503);
  });
});

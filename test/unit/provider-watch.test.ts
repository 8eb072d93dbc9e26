/**
 * Identity provider log lines: one warning per endpoint per interval however many calls
 * fail, again after the interval, one info line on recovery; and the introspection
 * policy reports an unreachable endpoint through its context's logger, without the token.
 */
import { expect, test } from "bun:test";
import { ProviderWatch } from "../../src/auth/provider-watch.ts";
import { createLogger } from "../../src/observability/logger.ts";
import { oauth2IntrospectionPolicy } from "../../src/policies/oauth2-introspection/index.ts";
import { exchangeFor, policyContext } from "../helpers/exchange.ts";
import { freePort } from "../helpers/gateway.ts";

function collectingLogger() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({}, "debug", (line) => lines.push(JSON.parse(line)));
  return { log, lines };
}

test("one warning per endpoint and interval, one info line when it works again", () => {
  const { log, lines } = collectingLogger();
  let now = 0;
  const watch = new ProviderWatch(log, "routes.0.policies.0", 60_000, () => now);
  const a = "https://user:pw@idp.test/jwks.json?key=s3cret";
  for (let i = 0; i < 10; i++) watch.failed(a, new Error(`cannot reach ${a}: refused`));
  watch.failed("https://other.test/jwks", new Error("timeout"));
  expect(lines.map((l) => [l.level, l.url])).toEqual([
    ["warn", "https://idp.test/jwks.json"],
    ["warn", "https://other.test/jwks"],
  ]);
  expect(JSON.stringify(lines)).not.toContain("s3cret");
  expect(JSON.stringify(lines)).not.toContain("pw@");
  now = 60_000;
  watch.failed(a, new Error("refused"));
  expect(lines).toHaveLength(3);
  watch.succeeded(a);
  watch.succeeded(a);
  expect(lines.slice(3)).toEqual([expect.objectContaining({ level: "info", msg: "identity provider available again", policy: "routes.0.policies.0", url: "https://idp.test/jwks.json" })]);
});

test("oauth2-introspection: an unreachable endpoint is one warning from the policy's logger, the token is not in it", async () => {
  const { log, lines } = collectingLogger();
  const endpoint = `http://127.0.0.1:${freePort()}/introspect`;
  const policy = oauth2IntrospectionPolicy.create(
    { endpoint, client_id: "gw", client_secret: "ClientSecret77", negative_ttl: 0 },
    { ...policyContext(), path: "routes.3.policies.1", log },
  );
  for (const token of ["TokenOne123", "TokenTwo456", "TokenThree789"]) {
    const answer = await policy.onRequest!(exchangeFor("http://gw.test/api", { headers: { authorization: `Bearer ${token}` } }));
    expect(answer?.status).toBe(503);
  }
  expect(lines).toEqual([expect.objectContaining({ level: "warn", policy: "routes.3.policies.1", url: endpoint })]);
  const text = JSON.stringify(lines);
  for (const secret of ["TokenOne", "TokenTwo", "TokenThree", "ClientSecret77"]) expect(text).not.toContain(secret);
});

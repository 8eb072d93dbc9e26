/**
 * basic-auth's verified-credential cache: a credential verified once is not hashed
 * again while cached (the point of the cache: argon2id costs tens of ms and 64 MiB),
 * while `cache_ttl: 0` and a wrong password verify every time.
 */
import { afterAll, afterEach, expect, spyOn, test } from "bun:test";
import { compileConsumers } from "../../src/auth/consumers.ts";
import { basicAuthPolicy } from "../../src/policies/basic-auth/index.ts";
import { exchangeFor, policyContext } from "../helpers/exchange.ts";

const hash = await Bun.password.hash("correct horse", { algorithm: "argon2id" });
const { directory, errors } = compileConsumers([{ name: "ana", credentials: [{ type: "basic", username: "ana", password_hash: hash }] }]);
const header = (password: string) => `Basic ${Buffer.from(`ana:${password}`).toString("base64")}`;

/** Counts real Bun.password.verify calls (the original still runs). */
const verify = spyOn(Bun.password, "verify");
afterEach(() => verify.mockClear());
afterAll(() => verify.mockRestore());

async function statusOf(policy: ReturnType<typeof basicAuthPolicy.create>, password: string): Promise<number> {
  const exchange = exchangeFor("http://gw.test/admin", { headers: { authorization: header(password) } });
  const answer = await policy.onRequest!(exchange);
  if (answer) return answer.status;
  expect(exchange.consumer?.name).toBe("ana");
  return 200;
}

test("a cached credential is not verified a second time", async () => {
  expect(errors).toEqual([]);
  const policy = basicAuthPolicy.create({}, policyContext(directory));
  expect(await statusOf(policy, "correct horse")).toBe(200);
  expect(verify).toHaveBeenCalledTimes(1);
  for (let i = 0; i < 5; i++) expect(await statusOf(policy, "correct horse")).toBe(200);
  expect(verify).toHaveBeenCalledTimes(1);
});

test("with cache_ttl 0, and for a wrong password, every request is verified", async () => {
  const uncached = basicAuthPolicy.create({ cache_ttl: 0 }, policyContext(directory));
  for (let i = 0; i < 3; i++) expect(await statusOf(uncached, "correct horse")).toBe(200);
  expect(verify).toHaveBeenCalledTimes(3);
  verify.mockClear();
  const cached = basicAuthPolicy.create({}, policyContext(directory));
  for (let i = 0; i < 3; i++) expect(await statusOf(cached, "wrong")).toBe(401);
  expect(verify).toHaveBeenCalledTimes(3);
});
